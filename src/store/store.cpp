// The store-independent half of PageStore: hashing, cap records, streaming saves, loading,
// hydration, the default verify; and the memory store (make_memory_store).
#include <algorithm>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "datacap/error.hpp"
#include "datacap/merkle.hpp"
#include "datacap/store.hpp"
#include "slab/slot_tree.hpp"
#include "store/record.hpp"
#include "store/store_access.hpp"

namespace datacap {

using detail::PageNode;
using detail::SlabAccess;

// datacap/store.hpp quotes the batches in MiB.
static_assert(PageStore::SAVE_BATCH_PAGES * PAGE_SIZE == (std::size_t{128} << 20));
static_assert(PageStore::EXPORT_BATCH_PAGES * PAGE_SIZE == (std::size_t{16} << 20));

namespace {

// The cap root a builder fed with a cap's pages gives, for any size: the builder rounds a size
// up to at least one page, but a cap of size 0 (DataCap::empty()) has its own root.
Hash32 finish_root(CapRootBuilder& builder, std::uint64_t content_len) {
  if (content_len == 0) return hash_pair(Digest::sha256, size_root(0), Hash32{});
  return builder.finish(content_len);
}

void ensure_roots(std::span<const PageRef> pages) { detail::ensure_page_roots(pages); }

}  // namespace

void detail::ensure_page_roots(std::span<const PageRef> pages) {
  std::vector<PageNode*> todo;
  for (const PageRef& page : pages) {
    PageNode* node = PageNode::node_of(page);
    Hash32 ignored;
    if (!node->cached_root(Digest::sha256, ignored)) todo.push_back(node);
  }
  detail::hash_page_roots(todo, Digest::sha256);
}

Hash32 detail::cap_record_root(const CapRecordView& view) {
  CapRootBuilder builder(Digest::sha256);
  for (std::uint64_t k = 0; k < view.entry_count; ++k) {
    builder.append_zero_pages(view.entry_index(k) - builder.page_count());
    builder.append_page_root(view.entry_root(k));
  }
  builder.append_zero_pages(view.content_len / PAGE_SIZE - builder.page_count());
  return finish_root(builder, view.content_len);
}

PageStore::~PageStore() = default;

std::string PageStore::name() const { return "page store"; }

Hash32 PageStore::put(const PageRef& page) {
  Hash32 root;
  put_many(std::span<const PageRef>(&page, 1), std::span<Hash32>(&root, 1));
  return root;
}

void PageStore::put_many(std::span<const PageRef> pages, std::span<Hash32> roots) {
  if (is_read_only()) throw InvalidArgument(name() + ": put: the store was opened read-only");
  if (pages.size() != roots.size()) {
    throw InvalidArgument("PageStore::put_many: " + std::to_string(pages.size()) + " pages but " +
                          std::to_string(roots.size()) + " roots");
  }
  for (std::size_t k = 0; k < pages.size(); ++k) {
    if (!pages[k])
      throw InvalidArgument("PageStore::put_many: pages[" + std::to_string(k) + "] is null");
  }
  ensure_roots(pages);
  std::vector<PageRecord> records;
  records.reserve(pages.size());
  for (std::size_t k = 0; k < pages.size(); ++k) {
    roots[k] = pages[k].root(Digest::sha256);
    records.push_back({roots[k], pages[k]});
  }
  do_put_pages(records);
}

PageRef PageStore::get(const Hash32& root) const {
  PageRef out;
  do_get_pages(std::span<const Hash32>(&root, 1), std::span<PageRef>(&out, 1));
  return out;
}

void PageStore::get_many(std::span<const Hash32> roots, std::span<PageRef> out) const {
  if (roots.size() != out.size()) {
    throw InvalidArgument("PageStore::get_many: " + std::to_string(roots.size()) + " roots but " +
                          std::to_string(out.size()) + " outputs");
  }
  do_get_pages(roots, out);
}

bool PageStore::has(const Hash32& root) const { return do_has_page(root); }

std::vector<bool> PageStore::has_many(std::span<const Hash32> roots) const {
  std::vector<bool> out(roots.size(), false);
  do_has_pages(roots, out);
  return out;
}
std::uint64_t PageStore::page_count() const { return do_page_count(); }
bool PageStore::has_cap(const Hash32& cap_root) const { return do_has_cap(cap_root); }

void PageStore::record_page_roots(std::span<const std::uint8_t> record, std::vector<Hash32>& out,
                                  std::string_view store, const Hash32* cap_root) {
  const detail::CapRecordView view = detail::parse_cap_record(record, store, cap_root);
  for (std::uint64_t k = 0; k < view.entry_count; ++k) out.push_back(view.entry_root(k));
}

SavedCap PageStore::record_summary(const Hash32& cap_root, std::span<const std::uint8_t> record,
                                   std::string_view store) {
  const detail::CapRecordView view = detail::parse_cap_record(record, store, &cap_root);
  return SavedCap{cap_root, view.content_len, view.entry_count};
}

std::vector<SavedCap> PageStore::list_caps() const {
  std::vector<SavedCap> out;
  const std::string store = name();
  do_for_each_cap([&](const Hash32& root, std::span<const std::uint8_t> record) {
    out.push_back(record_summary(root, record, store));
  });
  return out;
}

GcReport PageStore::gc(std::span<const Hash32> keep) {
  const auto held = do_lock(true);
  return do_gc(keep);
}

// ---- checking ----------------------------------------------------------------------------------

StoreVerifyReport PageStore::verify() const { return do_verify(); }

void PageStore::check_structure() const { do_check_structure(); }

bool PageStore::is_read_only() const noexcept { return false; }

void PageStore::do_check_structure() const {}

StoreVerifyReport PageStore::do_verify() const {
  StoreVerifyReport report;
  const std::string store = name();
  // The roots first, the records one at a time after: no hook is called from inside another.
  std::vector<Hash32> caps;
  do_for_each_cap([&](const Hash32& root, std::span<const std::uint8_t>) { caps.push_back(root); });
  std::vector<std::uint8_t> record;
  std::vector<Hash32> roots;
  std::vector<bool> present;
  for (const Hash32& cap_root : caps) {
    if (!do_get_cap(cap_root, record)) continue;  // removed by a gc since it was listed
    ++report.caps;
    detail::CapRecordView view;
    try {
      view = detail::parse_cap_record(record, store, &cap_root);
    } catch (const DecodeError& err) {
      ++report.bad_caps;
      report.add_problem(StoreProblem::Kind::bad_cap, cap_root, err.what());
      continue;
    }
    const Hash32 actual = detail::cap_record_root(view);
    if (actual != cap_root) {
      ++report.bad_caps;
      report.add_problem(
          StoreProblem::Kind::bad_cap, cap_root,
          store + ": cap " + to_hex(cap_root) + ": its page table gives root " + to_hex(actual));
      continue;
    }
    std::uint64_t absent = 0;
    for (std::uint64_t first = 0; first < view.entry_count; first += EXPORT_BATCH_PAGES) {
      const std::uint64_t n = std::min<std::uint64_t>(EXPORT_BATCH_PAGES, view.entry_count - first);
      roots.resize(n);
      for (std::uint64_t k = 0; k < n; ++k) roots[k] = view.entry_root(first + k);
      present.assign(n, false);
      do_has_pages(roots, present);
      absent += static_cast<std::uint64_t>(std::count(present.begin(), present.end(), false));
    }
    if (absent != 0) {
      report.absent_page_refs += absent;
      ++report.caps_with_absent_pages;
    }
  }
  report.pages = do_page_count();
  return report;
}

// ---- streaming save ----------------------------------------------------------------------------

struct PageStore::CapWriter::State {
  struct Pending {
    std::uint64_t page_index;
    PageRef page;  // null: Missing
    Hash32 hash;   // Missing: its hash
  };
  explicit State(PageStore& s) : store(s), held(s.do_lock(false)) {}

  PageStore& store;
  std::unique_ptr<PageStore::Lock> held;
  std::vector<Pending> pending;
  // The previous batch's write, running while the next batch is hashed (hashing is on every
  // core, writing mostly waits for the disk: overlapped, a save costs about the larger of the
  // two rather than their sum). Joined before the next write, in finish() and on destruction.
  std::future<void> writing;
  std::vector<std::uint8_t> record;
  std::uint64_t entries = 0;
  std::uint64_t next_index = 0;  // pages below this are appended to the root builder
  bool started = false;
  bool finished = false;
  CapRootBuilder builder{Digest::sha256};

  void check_index(const char* context, std::uint64_t page_index) const {
    if (finished) throw InvalidArgument(std::string(context) + ": the writer has finished");
    if (page_index >= MAX_PAGE_COUNT) {
      throw OutOfRange(std::string(context) + ": page_index " + std::to_string(page_index) +
                       " is beyond 2^32 pages");
    }
    if (started && page_index < next_index) {
      throw InvalidArgument(std::string(context) + ": page_index " + std::to_string(page_index) +
                            " is not above the previous page");
    }
  }

  void add(Pending entry) {
    next_index = entry.page_index + 1;
    started = true;
    pending.push_back(std::move(entry));
    if (pending.size() >= PageStore::SAVE_BATCH_PAGES) flush();
  }

  void flush() {
    std::vector<PageRef> loaded;
    for (const Pending& p : pending) {
      if (p.page) loaded.push_back(p.page);
    }
    ensure_roots(loaded);
    std::vector<PageRecord> records;
    records.reserve(loaded.size());
    const Hash32& zero_page_root = zero_hash(Digest::sha256, 7);
    for (const Pending& p : pending) {
      const Hash32 root = p.page ? p.page.root(Digest::sha256) : p.hash;
      if (p.page && root == zero_page_root) continue;  // a zero page is Empty
      builder.append_zero_pages(p.page_index - builder.page_count());
      builder.append_page_root(root);
      detail::append_cap_record_entry(record, static_cast<std::uint32_t>(p.page_index), root);
      ++entries;
      if (p.page) records.push_back({root, p.page});
    }
    pending.clear();
    wait_for_write();
    if (!records.empty()) {
      writing = std::async(std::launch::async,
                           [this, batch = std::move(records)] { store.do_put_pages(batch); });
    }
  }

  // Rethrows the previous write's error, if any.
  void wait_for_write() {
    if (writing.valid()) writing.get();
  }

  ~State() {
    if (writing.valid()) writing.wait();  // an error here was already superseded by another
  }
};

PageStore::CapWriter::CapWriter(PageStore& store) : state_(std::make_unique<State>(store)) {
  detail::begin_cap_record(state_->record, 0);
}

PageStore::CapWriter::~CapWriter() = default;

void PageStore::CapWriter::add_page(std::uint64_t page_index, const PageRef& page) {
  state_->check_index("CapWriter::add_page", page_index);
  if (!page)
    throw InvalidArgument("CapWriter::add_page: page " + std::to_string(page_index) + " is null");
  if (page.is_zero()) {  // Empty: no entry (cheaper to see than to hash)
    state_->next_index = page_index + 1;
    state_->started = true;
    return;
  }
  state_->add({page_index, page, {}});
}

void PageStore::CapWriter::add_missing(std::uint64_t page_index, const Hash32& hash) {
  state_->check_index("CapWriter::add_missing", page_index);
  state_->add({page_index, PageRef(), hash});
}

Hash32 PageStore::CapWriter::finish(std::uint64_t content_len) {
  State& s = *state_;
  if (s.finished) throw InvalidArgument("CapWriter::finish: called twice");
  if (content_len % PAGE_SIZE != 0 || content_len / PAGE_SIZE > MAX_PAGE_COUNT ||
      content_len / PAGE_SIZE < s.next_index) {
    throw OutOfRange("CapWriter::finish: content_len " + std::to_string(content_len) +
                     " is not a page multiple within 2^32 pages covering the " +
                     std::to_string(s.next_index) + " pages added");
  }
  s.flush();
  s.wait_for_write();
  s.builder.append_zero_pages(content_len / PAGE_SIZE - s.builder.page_count());
  const Hash32 root = finish_root(s.builder, content_len);
  detail::put_le64(s.record.data() + 8, content_len);
  detail::end_cap_record(s.record, s.entries);
  s.store.do_put_cap(root, s.record);
  s.finished = true;
  s.held.reset();
  return root;
}

// ---- caps --------------------------------------------------------------------------------------

Hash32 PageStore::save_cap(const DataCap& cap) {
  if (!cap.is_clean()) {
    throw DirtyCap("PageStore::save_cap: cap has " + std::to_string(cap.dirty_page_count()) +
                   " dirty pages; flush it first");
  }
  // Refused before anything else: a cap already saved must not make a write to a read-only
  // store look allowed.
  if (is_read_only()) throw InvalidArgument(name() + ": save_cap: the store was opened read-only");
  // With its root known, a cap saved before is found at once. Otherwise the writer hashes the
  // pages batch by batch while the previous batch is written.
  if (detail::tree_root_cached(SlabAccess::root(cap.backing()), Digest::sha256) &&
      has_cap(cap.hash_tree_root(Digest::sha256))) {
    return cap.hash_tree_root(Digest::sha256);
  }
  CapWriter writer(*this);
  cap.backing().for_each_stored([&](std::uint32_t page_index, const PageSlot& slot) {
    if (slot.is_missing()) {
      writer.add_missing(page_index, slot.missing_hash());
    } else {
      writer.add_page(page_index, slot.page());
    }
  });
  const Hash32 written = writer.finish(cap.content_len());
  // The page roots are cached now: the cap's own root costs only its internal nodes, and it
  // must agree with the root the writer computed from the page table.
  const Hash32 root = cap.hash_tree_root(Digest::sha256);
  if (written != root) throw IntegrityError("PageStore::save_cap: cap record", 0, root, written);
  return root;
}

SavedCap PageStore::saved_cap(const Hash32& cap_root) const {
  std::vector<std::uint8_t> record;
  if (!do_get_cap(cap_root, record)) throw NotFound(name(), "cap", cap_root);
  return record_summary(cap_root, record, name());
}

namespace {

// export_cap's work on a record already read and parsed (load_cap reads it once for both the
// size and the pages: a 1 GiB cap's record is 9 MiB, a round trip and a copy on a network store).
void export_record(const PageStore& store, const std::string& name, const Hash32& cap_root,
                   const detail::CapRecordView& view,
                   const std::function<void(std::uint64_t, const PageSlot&)>& fn) {
  constexpr std::uint64_t BATCH = PageStore::EXPORT_BATCH_PAGES;
  constexpr std::size_t AHEAD = 2;  // batches fetched ahead of the one being checked
  struct Batch {
    std::vector<Hash32> roots;
    std::vector<PageRef> pages;
  };
  const auto fetch = [&store, &view](std::uint64_t first) {
    const std::uint64_t n =
        std::min<std::uint64_t>(PageStore::EXPORT_BATCH_PAGES, view.entry_count - first);
    Batch batch;
    batch.roots.resize(n);
    batch.pages.assign(n, PageRef());
    for (std::uint64_t k = 0; k < n; ++k) batch.roots[k] = view.entry_root(first + k);
    detail::StoreAccess::get_pages(store, batch.roots, batch.pages);
    return batch;
  };
  // The next AHEAD batches are fetched on other threads while this one is hashed and checked (a
  // network store's round trips, a local store's copying and the hashing overlap; with one batch
  // ahead the checking thread still waited for the fetch a third of the time: a tiered load
  // from its local tier took 290 ms instead of 250). do_get_pages may run on any thread.
  // Declared after everything they read, so an exception waits for them before those go.
  std::deque<std::future<Batch>> ahead;
  std::uint64_t launched = 0;  // batches fetched or being fetched start below this entry
  const auto launch_until = [&](std::size_t in_flight) {
    while (ahead.size() < in_flight && launched < view.entry_count) {
      ahead.push_back(std::async(std::launch::async, fetch, launched));
      launched += BATCH;
    }
  };
  launch_until(AHEAD + 1);
  // The record must be the one its key names before any page of it reaches fn: its roots alone
  // give the cap root (no page bytes needed), so a damaged record fails here with nothing
  // delivered, not after the pages of a table nobody saved. (Checked while the first batches
  // are fetched.)
  if (const Hash32 actual = detail::cap_record_root(view); actual != cap_root) {
    throw DecodeError(name + ": cap " + to_hex(cap_root), 0,
                      "the record's page table has root " + to_hex(actual));
  }
  std::vector<PageRef> present;
  for (std::uint64_t first = 0; first < view.entry_count; first += BATCH) {
    Batch batch = ahead.front().get();
    ahead.pop_front();
    launch_until(AHEAD);
    const std::vector<Hash32>& roots = batch.roots;
    const std::vector<PageRef>& pages = batch.pages;
    const std::uint64_t n = roots.size();
    present.clear();
    for (const PageRef& p : pages) {
      if (p) present.push_back(p);
    }
    ensure_roots(present);
    for (std::uint64_t k = 0; k < n; ++k) {
      const std::uint32_t page_index = view.entry_index(first + k);
      if (pages[k]) {
        const Hash32 actual = pages[k].root(Digest::sha256);
        if (actual != roots[k])
          throw IntegrityError(name + ": cap " + to_hex(cap_root), page_index, roots[k], actual);
      }
    }
    for (std::uint64_t k = 0; k < n; ++k) {
      fn(view.entry_index(first + k),
         pages[k] ? PageSlot::loaded(pages[k]) : PageSlot::missing(roots[k]));
    }
  }
}

}  // namespace

void PageStore::export_cap(const Hash32& cap_root,
                           const std::function<void(std::uint64_t, const PageSlot&)>& fn) const {
  std::vector<std::uint8_t> record;
  if (!do_get_cap(cap_root, record)) throw NotFound(name(), "cap", cap_root);
  const std::string store = name();
  export_record(*this, store, cap_root, detail::parse_cap_record(record, store, &cap_root), fn);
}

DataCap PageStore::load_cap(const Hash32& cap_root) const {
  std::vector<std::uint8_t> record;
  if (!do_get_cap(cap_root, record)) throw NotFound(name(), "cap", cap_root);
  const std::string store = name();
  const detail::CapRecordView view = detail::parse_cap_record(record, store, &cap_root);
  PageSlab slab(view.content_len);
  // Every Loaded page comes checked against its root, which it caches: a zero page (Empty in a
  // backing) is known by that root, without reading its bytes again as set_page_slot would.
  const Hash32& zero_page_root = zero_hash(Digest::sha256, 7);
  export_record(*this, store, cap_root, view, [&](std::uint64_t page_index, const PageSlot& slot) {
    if (slot.is_loaded() && slot.root(Digest::sha256) == zero_page_root) return;
    PageSlot placed = slot;
    detail::tree_set(SlabAccess::root(slab), slab.levels(), page_index,
                     PageNode::release_slot(placed));
  });
  return DataCap::from_backing(std::move(slab));
}

// ---- hydration ---------------------------------------------------------------------------------

namespace {

HydrateReport hydrate_indices(DataCap& cap, const PageStore& store,
                              const std::vector<std::uint64_t>& missing) {
  HydrateReport report;
  if (missing.empty()) return report;
  std::vector<Hash32> hashes;
  hashes.reserve(missing.size());
  for (const std::uint64_t page_index : missing)
    hashes.push_back(cap.page_slot(page_index).missing_hash());
  std::vector<PageRef> fetched(missing.size());
  store.get_many(hashes, fetched);
  std::vector<DataCap::ResolvedPage> resolved;
  std::vector<PageRef> present;
  for (std::size_t k = 0; k < missing.size(); ++k) {
    if (!fetched[k]) {
      ++report.still_missing;
      continue;
    }
    present.push_back(fetched[k]);
    resolved.push_back({missing[k], fetched[k]});
  }
  ensure_roots(present);
  cap.resolve_missing(resolved);  // checks every page first; throws with nothing changed
  report.hydrated = resolved.size();
  return report;
}

}  // namespace

HydrateReport hydrate(DataCap& cap, const PageStore& store) {
  return hydrate_indices(cap, store, cap.missing_pages());
}

HydrateReport hydrate(DataCap& cap, const PageStore& store,
                      std::span<const std::uint64_t> page_indices) {
  std::vector<std::uint64_t> missing;
  for (const std::uint64_t page_index : page_indices) {
    if (page_index >= cap.page_count()) {
      throw OutOfRange("hydrate: page_index " + std::to_string(page_index) + " >= page_count " +
                       std::to_string(cap.page_count()));
    }
    if (cap.page_slot(page_index).is_missing()) missing.push_back(page_index);
  }
  std::sort(missing.begin(), missing.end());
  missing.erase(std::unique(missing.begin(), missing.end()), missing.end());
  return hydrate_indices(cap, store, missing);
}

// ---- the memory store --------------------------------------------------------------------------

namespace {

struct MemoryLock final : PageStore::Lock {
  explicit MemoryLock(std::shared_mutex& m, bool exclusive) : mutex(m), exclusive(exclusive) {
    if (exclusive) {
      mutex.lock();
    } else {
      mutex.lock_shared();
    }
  }
  ~MemoryLock() override {
    if (exclusive) {
      mutex.unlock();
    } else {
      mutex.unlock_shared();
    }
  }
  std::shared_mutex& mutex;
  bool exclusive;
};

// Pages kept in memory, shared by reference with the caps that put them (no copies); records
// copied. One reader-writer mutex guards the data; another is the save/gc lock.
class MemoryStore final : public PageStore {
 public:
  [[nodiscard]] std::string name() const override { return "memory store"; }

 protected:
  void do_put_pages(std::span<const PageRecord> pages) override {
    std::unique_lock guard(data_mutex_);
    for (const PageRecord& r : pages) pages_.try_emplace(r.root, r.page);
  }

  void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const override {
    std::shared_lock guard(data_mutex_);
    for (std::size_t k = 0; k < roots.size(); ++k) {
      const auto it = pages_.find(roots[k]);
      out[k] = it == pages_.end() ? PageRef() : it->second;
    }
  }

  bool do_has_page(const Hash32& root) const override {
    std::shared_lock guard(data_mutex_);
    return pages_.count(root) != 0;
  }

  void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const override {
    std::shared_lock guard(data_mutex_);
    for (std::size_t k = 0; k < roots.size(); ++k) out[k] = pages_.count(roots[k]) != 0;
  }

  std::uint64_t do_page_count() const override {
    std::shared_lock guard(data_mutex_);
    return pages_.size();
  }

  void do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) override {
    std::unique_lock guard(data_mutex_);
    caps_.try_emplace(cap_root, record.begin(), record.end());
  }

  bool do_has_cap(const Hash32& cap_root) const override {
    std::shared_lock guard(data_mutex_);
    return caps_.count(cap_root) != 0;
  }

  bool do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const override {
    std::shared_lock guard(data_mutex_);
    const auto it = caps_.find(cap_root);
    if (it == caps_.end()) return false;
    record = it->second;
    return true;
  }

  void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const override {
    std::shared_lock guard(data_mutex_);
    for (const auto& [root, record] : caps_) fn(root, record);
  }

  GcReport do_gc(std::span<const Hash32> keep) override {
    std::unique_lock guard(data_mutex_);
    for (const Hash32& root : keep) {
      if (caps_.count(root) == 0) throw NotFound(name() + ": gc: keep", "cap", root);
    }
    const std::set<Hash32> kept(keep.begin(), keep.end());
    std::unordered_set<Hash32, Hash32Hasher> referenced;
    std::vector<Hash32> roots;
    for (const Hash32& root : kept) {
      roots.clear();
      record_page_roots(caps_.at(root), roots, name(), &root);
      referenced.insert(roots.begin(), roots.end());
    }
    GcReport report;
    for (auto it = caps_.begin(); it != caps_.end();) {
      if (kept.count(it->first) != 0) {
        ++report.caps_kept;
        ++it;
      } else {
        ++report.caps_removed;
        it = caps_.erase(it);
      }
    }
    for (auto it = pages_.begin(); it != pages_.end();) {
      if (referenced.count(it->first) != 0) {
        ++report.pages_kept;
        ++it;
      } else {
        ++report.pages_removed;
        it = pages_.erase(it);
      }
    }
    return report;
  }

  std::unique_ptr<Lock> do_lock(bool exclusive) const override {
    return std::make_unique<MemoryLock>(save_gc_mutex_, exclusive);
  }

 private:
  mutable std::shared_mutex data_mutex_;
  std::unordered_map<Hash32, PageRef, Hash32Hasher> pages_;
  std::map<Hash32, std::vector<std::uint8_t>> caps_;
  mutable std::shared_mutex save_gc_mutex_;  // saves shared, gc exclusive
};

}  // namespace

std::unique_ptr<PageStore> make_memory_store() { return std::make_unique<MemoryStore>(); }

}  // namespace datacap
