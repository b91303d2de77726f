#include "datacap/cap.hpp"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "datacap/error.hpp"
#include "slab/slot_tree.hpp"
#include "tree/merkle.hpp"

namespace datacap {

using detail::PageNode;

namespace {

// Size in bytes of a cap holding `len` bytes: rounded up to a page, at least one page.
std::uint64_t rounded_content_len(std::uint64_t len, const char* context) {
  const std::uint64_t pages = len / PAGE_SIZE + (len % PAGE_SIZE != 0 ? 1 : 0);
  if (pages > MAX_PAGE_COUNT) {
    throw OutOfRange(std::string(context) + ": size " + std::to_string(len) +
                     " exceeds 2^32 pages");
  }
  return std::max<std::uint64_t>(pages, 1) * PAGE_SIZE;
}

std::string range_text(std::uint64_t off, std::uint64_t len) {
  return "[" + std::to_string(off) + ", " + std::to_string(off) + " + " + std::to_string(len) + ")";
}

bool all_zero(std::span<const std::uint8_t> bytes) noexcept {
  return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

}  // namespace

// ---- lifetime ----------------------------------------------------------------------------

DataCap::DataCap(const DataCap& other) noexcept
    : backing_(other.backing_), overlay_(other.overlay_), overlay_count_(other.overlay_count_) {
  detail::tree_retain(overlay_);
}

DataCap::DataCap(DataCap&& other) noexcept
    : backing_(std::move(other.backing_)),
      overlay_(std::exchange(other.overlay_, nullptr)),
      overlay_count_(std::exchange(other.overlay_count_, 0)) {}

DataCap& DataCap::operator=(const DataCap& other) noexcept {
  detail::tree_retain(other.overlay_);
  detail::tree_release(overlay_);
  backing_ = other.backing_;
  overlay_ = other.overlay_;
  overlay_count_ = other.overlay_count_;
  return *this;
}

DataCap& DataCap::operator=(DataCap&& other) noexcept {
  if (this != &other) {
    detail::tree_release(overlay_);
    backing_ = std::move(other.backing_);
    overlay_ = std::exchange(other.overlay_, nullptr);
    overlay_count_ = std::exchange(other.overlay_count_, 0);
  }
  return *this;
}

DataCap::~DataCap() { detail::tree_release(overlay_); }

// ---- construction ------------------------------------------------------------------------

DataCap DataCap::zeroed(std::uint64_t content_len) { return from_backing(PageSlab(content_len)); }

DataCap DataCap::from_backing(PageSlab backing) noexcept {
  DataCap cap;
  cap.backing_ = std::move(backing);
  return cap;
}

DataCap DataCap::from_bytes(std::span<const std::uint8_t> content) {
  return from_bytes_sized(content, 0);
}

DataCap DataCap::from_bytes_sized(std::span<const std::uint8_t> content, std::uint64_t target) {
  const std::uint64_t len =
      rounded_content_len(std::max<std::uint64_t>(target, content.size()), "from_bytes_sized");
  PageSlab slab(len);
  for (std::size_t off = 0; off < content.size(); off += PAGE_SIZE) {
    const auto chunk = content.subspan(off, std::min(PAGE_SIZE, content.size() - off));
    if (all_zero(chunk)) continue;
    slab.set_page_slot(off / PAGE_SIZE, PageSlot::loaded(PageRef::copy_of(chunk)));
  }
  return from_backing(std::move(slab));
}

DataCap DataCap::from_sparse_pages(std::uint64_t content_len, std::span<const SparsePage> pages) {
  const std::uint64_t len = rounded_content_len(content_len, "from_sparse_pages");
  const std::uint64_t page_count = len / PAGE_SIZE;
  std::vector<std::uint32_t> indices;
  indices.reserve(pages.size());
  for (std::size_t k = 0; k < pages.size(); ++k) {
    const SparsePage& p = pages[k];
    if (p.page_index >= page_count) {
      throw OutOfRange("from_sparse_pages: pages[" + std::to_string(k) + "].page_index " +
                       std::to_string(p.page_index) + " >= page_count " +
                       std::to_string(page_count));
    }
    if (p.bytes.size() > PAGE_SIZE) {
      throw OutOfRange("from_sparse_pages: pages[" + std::to_string(k) + "] has " +
                       std::to_string(p.bytes.size()) + " bytes, more than a page (4096)");
    }
    indices.push_back(p.page_index);
  }
  std::sort(indices.begin(), indices.end());
  if (auto dup = std::adjacent_find(indices.begin(), indices.end()); dup != indices.end()) {
    throw InvalidArgument("from_sparse_pages: page_index " + std::to_string(*dup) +
                          " is named more than once");
  }
  PageSlab slab(len);
  for (const SparsePage& p : pages) {
    if (all_zero(p.bytes)) continue;
    slab.set_page_slot(p.page_index, PageSlot::loaded(PageRef::copy_of(p.bytes)));
  }
  return from_backing(std::move(slab));
}

// ---- reads -------------------------------------------------------------------------------

bool DataCap::is_dirty(std::uint64_t page_index) const noexcept {
  return overlay_ != nullptr && page_index < page_count() &&
         detail::tree_get(overlay_, backing_.levels(), page_index) != nullptr;
}

void DataCap::for_each_dirty(const std::function<void(std::uint32_t, const PageSlot&)>& fn) const {
  detail::tree_for_each(overlay_, backing_.levels(), 0, page_count(),
                        [&](std::uint64_t i, PageNode* node) {
                          const PageSlot slot = PageNode::share_slot(node);
                          fn(static_cast<std::uint32_t>(i), slot);
                        });
}

void DataCap::for_each_page(const std::function<void(std::uint32_t, const PageSlot&)>& fn) const {
  detail::tree_for_each_either(overlay_, detail::SlabAccess::root(backing_), backing_.levels(),
                               [&](std::uint64_t i, PageNode* node) {
                                 const PageSlot slot = PageNode::share_slot(node);
                                 fn(static_cast<std::uint32_t>(i), slot);
                               });
}

namespace {
// The effective node of a page: the overlay's if present, else the backing's (null: Empty).
inline PageNode* effective_node(const detail::TreeNode* overlay, const detail::TreeNode* backing,
                                unsigned levels, std::uint64_t page_index) noexcept {
  if (overlay == nullptr) return detail::tree_get(backing, levels, page_index);
  return detail::tree_get_either(overlay, backing, levels, page_index);
}
}  // namespace

PageSlot DataCap::page_slot(std::uint64_t page_index) const {
  if (page_index >= page_count()) {
    throw OutOfRange("page_slot: page_index " + std::to_string(page_index) + " >= page_count " +
                     std::to_string(page_count()));
  }
  PageNode* node =
      effective_node(overlay_, detail::SlabAccess::root(backing_), backing_.levels(), page_index);
  return PageNode::share_slot(node);
}

PageResolution DataCap::page_at(std::uint64_t off) const {
  if (off >= content_len()) {
    throw OutOfRange("page_at: offset " + std::to_string(off) + " >= content_len " +
                     std::to_string(content_len()));
  }
  PageResolution r;
  r.page_index = static_cast<std::uint32_t>(off / PAGE_SIZE);
  PageNode* node =
      effective_node(overlay_, detail::SlabAccess::root(backing_), backing_.levels(), r.page_index);
  if (node == nullptr) {
    r.kind = PageResolution::Kind::zero;
    r.data = zero_page();
  } else if (node->is_missing()) {
    r.kind = PageResolution::Kind::missing;
    r.missing_hash = node->missing_hash();
  } else {
    r.kind = PageResolution::Kind::bytes;
    r.data = node->data;
  }
  return r;
}

void DataCap::copy_into(std::uint64_t start, std::span<std::uint8_t> out) const {
  if (start > content_len() || out.size() > content_len() - start) {
    throw OutOfRange("copy_into: range " + range_text(start, out.size()) +
                     " ends past content_len " + std::to_string(content_len()));
  }
  std::size_t done = 0;
  while (done < out.size()) {
    const std::uint64_t off = start + done;
    const std::uint64_t page_index = off / PAGE_SIZE;
    const std::size_t in_page = static_cast<std::size_t>(off % PAGE_SIZE);
    const std::size_t n = std::min(PAGE_SIZE - in_page, out.size() - done);
    PageNode* node =
        effective_node(overlay_, detail::SlabAccess::root(backing_), backing_.levels(), page_index);
    if (node == nullptr) {
      std::memset(out.data() + done, 0, n);
    } else if (node->is_missing()) {
      throw MissingPage("copy_into", static_cast<std::uint32_t>(page_index), node->missing_hash());
    } else {
      std::memcpy(out.data() + done, node->data + in_page, n);
    }
    done += n;
  }
}

// ---- writes ------------------------------------------------------------------------------

namespace {
void check_page_write(const char* context, std::uint64_t off, std::size_t len,
                      std::uint64_t content_len) {
  if (off >= content_len) {
    throw OutOfRange(std::string(context) + ": offset " + std::to_string(off) + " >= content_len " +
                     std::to_string(content_len));
  }
  if (len > PAGE_SIZE) {
    throw OutOfRange(std::string(context) + ": content of " + std::to_string(len) +
                     " bytes is longer than a page (4096)");
  }
}
}  // namespace

void DataCap::put_page(std::uint64_t off, std::span<const std::uint8_t> content) {
  check_page_write("put_page", off, content.size(), content_len());
  PageSlot slot;
  if (!all_zero(content)) slot = PageSlot::loaded(PageRef::copy_of(content));
  backing_.set_page_slot(off / PAGE_SIZE, std::move(slot));
}

void DataCap::write_page(std::uint64_t off, std::span<const std::uint8_t> content) {
  check_page_write("write_page", off, content.size(), content_len());
  // The whole page is replaced (content zero-padded), so whatever was there — even a Missing
  // page — is never read: a full-page write() does exactly that.
  alignas(64) std::uint8_t page[PAGE_SIZE];
  if (!content.empty()) std::memcpy(page, content.data(), content.size());
  std::memset(page + content.size(), 0, PAGE_SIZE - content.size());
  write(off - off % PAGE_SIZE, std::span<const std::uint8_t>(page, PAGE_SIZE));
}

void DataCap::write(std::uint64_t off, std::span<const std::uint8_t> bytes) {
  if (off > content_len() || bytes.size() > content_len() - off) {
    throw OutOfRange("write: range " + range_text(off, bytes.size()) + " ends past content_len " +
                     std::to_string(content_len()));
  }
  if (bytes.empty()) return;
  const unsigned levels = backing_.levels();
  const std::uint64_t first_page = off / PAGE_SIZE;
  const std::uint64_t last_page = (off + bytes.size() - 1) / PAGE_SIZE;
  // Only the first and last page can be partly covered; check them before changing anything.
  // The effective pages of those two, kept for the copy below (a partial page is copied from
  // its effective page; nothing changes them before then).
  PageNode* edge_base[2] = {nullptr, nullptr};
  for (int e = 0; e < 2; ++e) {
    const std::uint64_t p = e == 0 ? first_page : last_page;
    const std::uint64_t lo = std::max(off, p * PAGE_SIZE);
    const std::uint64_t hi = std::min(off + bytes.size(), (p + 1) * PAGE_SIZE);
    if (hi - lo < PAGE_SIZE) {
      PageNode* node = effective_node(overlay_, detail::SlabAccess::root(backing_), levels, p);
      if (node != nullptr && node->is_missing()) {
        throw MissingPage("write: partial write of range " + range_text(off, bytes.size()),
                          static_cast<std::uint32_t>(p), node->missing_hash());
      }
      edge_base[e] = node;
    }
    if (first_page == last_page) break;
  }
  // Pages the overlay owns alone are patched in place; every other page gets a fresh copy. A
  // write of several pages allocates all of its copies (and the overlay paths to them) before
  // the first byte changes, so running out of memory leaves the content as it was; a one-page
  // write is that order already.
  const auto patch = [&](std::uint64_t p, void*& link, PageNode* fresh) {
    const std::uint64_t lo = std::max(off, p * PAGE_SIZE);
    const std::uint64_t hi = std::min(off + bytes.size(), (p + 1) * PAGE_SIZE);
    const std::size_t in_page = static_cast<std::size_t>(lo - p * PAGE_SIZE);
    const std::size_t n = static_cast<std::size_t>(hi - lo);
    const std::uint8_t* src = bytes.data() + (lo - off);
    auto* current = static_cast<PageNode*>(link);
    if (fresh == nullptr) {  // the overlay owns this page alone: patch it in place
      current->invalidate_roots();
      std::memcpy(current->data + in_page, src, n);
      return;
    }
    if (n == PAGE_SIZE) {
      std::memcpy(fresh->data, src, PAGE_SIZE);
    } else {
      PageNode* base = edge_base[p == first_page ? 0 : 1];
      const std::uint8_t* from = base == nullptr ? zero_page() : base->data;
      // Copy around the patch, not under it.
      std::memcpy(fresh->data, from, in_page);
      std::memcpy(fresh->data + in_page, src, n);
      std::memcpy(fresh->data + in_page + n, from + in_page + n, PAGE_SIZE - in_page - n);
    }
    link = fresh;
    if (current != nullptr) {
      current->release();
    } else {
      ++overlay_count_;
    }
  };
  // Null when the page at `link` is written in place, else a fresh page to copy into.
  const auto prepare = [](void* link) -> PageNode* {
    auto* current = static_cast<PageNode*>(link);
    if (current != nullptr && current->writable() && current->unique()) return nullptr;
    return PageNode::allocate();
  };
  // What a failed allocation leaves: the overlay nodes made for pages not yet written.
  const auto undo_paths = [&](std::uint64_t to_page) noexcept {
    for (std::uint64_t p = first_page; p <= to_page; ++p)
      detail::tree_prune_path(overlay_, levels, p);
  };
  if (first_page == last_page) {
    try {
      void*& link = detail::tree_link_for_write(overlay_, levels, first_page);
      patch(first_page, link, prepare(link));
    } catch (...) {
      undo_paths(first_page);
      throw;
    }
    return;
  }
  std::vector<PageNode*> fresh;
  fresh.reserve(static_cast<std::size_t>(last_page - first_page + 1));
  try {
    for (std::uint64_t p = first_page; p <= last_page; ++p) {
      fresh.push_back(prepare(detail::tree_link_for_write(overlay_, levels, p)));
    }
  } catch (...) {
    for (PageNode* node : fresh) {
      if (node != nullptr) node->release();
    }
    undo_paths(last_page);
    throw;
  }
  // The paths are unique and complete now: finding each link again allocates nothing.
  for (std::uint64_t p = first_page; p <= last_page; ++p) {
    patch(p, detail::tree_link_for_write(overlay_, levels, p), fresh[p - first_page]);
  }
}

void DataCap::insert_overlay_page(std::uint64_t page_index, PageSlot slot) {
  if (page_index >= page_count()) {
    throw OutOfRange("insert_overlay_page: page_index " + std::to_string(page_index) +
                     " >= page_count " + std::to_string(page_count()));
  }
  const bool was_dirty = is_dirty(page_index);
  PageNode* node = PageNode::release_slot(slot);
  detail::tree_set(overlay_, backing_.levels(), page_index, node);
  if (node != nullptr && !was_dirty) ++overlay_count_;
  if (node == nullptr && was_dirty) --overlay_count_;
}

void DataCap::elide_pages(std::span<const std::uint64_t> page_indices) {
  for (const std::uint64_t page_index : page_indices) {
    if (page_index >= page_count()) {
      throw OutOfRange("elide_pages: page_index " + std::to_string(page_index) + " >= page_count " +
                       std::to_string(page_count()));
    }
  }
  // Built aside and committed at the end (strong guarantee: a failed allocation, or a lazily
  // verified archive page that turns out damaged when hashed, leaves the cap as it was). The
  // copies share every node, so only the paths to the elided pages are copied.
  PageSlab backing = backing_;
  detail::TreeHolder overlay(overlay_);
  for (const std::uint64_t page_index : page_indices) {
    const bool dirty = detail::tree_get(overlay.root, backing.levels(), page_index) != nullptr;
    const detail::TreeNode* tree = dirty ? overlay.root : detail::SlabAccess::root(backing);
    PageNode* node = detail::tree_get(tree, backing.levels(), page_index);
    if (node == nullptr || node->is_missing()) continue;
    PageNode* missing = PageNode::missing(node->root(Digest::sha256));
    if (dirty) {
      detail::tree_set(overlay.root, backing.levels(), page_index, missing);
    } else {
      detail::tree_replace_same_root(detail::SlabAccess::root(backing), backing.levels(),
                                     page_index, missing, Digest::sha256);
    }
  }
  backing_ = std::move(backing);
  std::swap(overlay_, overlay.root);  // the holder releases the old overlay
}

std::vector<std::uint64_t> DataCap::missing_pages() const {
  std::vector<std::uint64_t> out;
  if (overlay_ == nullptr) {
    detail::tree_missing(detail::SlabAccess::root(backing_), backing_.levels(), 0, page_count(),
                         out);
    return out;
  }
  detail::tree_missing(overlay_, backing_.levels(), 0, page_count(), out);
  std::vector<std::uint64_t> below;
  detail::tree_missing(detail::SlabAccess::root(backing_), backing_.levels(), 0, page_count(),
                       below);
  for (const std::uint64_t page_index : below) {
    if (!is_dirty(page_index)) out.push_back(page_index);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void DataCap::resolve_missing(std::span<const ResolvedPage> pages) {
  // Check everything before changing anything.
  std::vector<std::uint64_t> seen;
  seen.reserve(pages.size());
  for (const ResolvedPage& resolved : pages) {
    const std::uint64_t page_index = resolved.page_index;
    if (page_index >= page_count()) {
      throw OutOfRange("resolve_missing: page_index " + std::to_string(page_index) +
                       " >= page_count " + std::to_string(page_count()));
    }
    if (!resolved.page) {
      throw InvalidArgument("resolve_missing: page " + std::to_string(page_index) +
                            " has no bytes (null PageRef)");
    }
    const PageNode* node = detail::tree_get_either(overlay_, detail::SlabAccess::root(backing_),
                                                   backing_.levels(), page_index);
    if (node == nullptr || !node->is_missing()) {
      throw InvalidArgument("resolve_missing: page " + std::to_string(page_index) + " is " +
                            (node == nullptr ? "Empty" : "Loaded") + ", not Missing");
    }
    const Hash32 actual = resolved.page.root(Digest::sha256);
    if (actual != node->missing_hash()) {
      throw IntegrityError("resolve_missing", page_index, node->missing_hash(), actual);
    }
    seen.push_back(page_index);
  }
  std::sort(seen.begin(), seen.end());
  if (const auto dup = std::adjacent_find(seen.begin(), seen.end()); dup != seen.end()) {
    throw InvalidArgument("resolve_missing: page " + std::to_string(*dup) + " is named twice");
  }
  // Built aside and committed at the end, as in elide_pages.
  PageSlab backing = backing_;
  detail::TreeHolder overlay(overlay_);
  for (const ResolvedPage& resolved : pages) {
    PageNode* page = PageNode::node_of(resolved.page);
    page->retain();
    if (is_dirty(resolved.page_index)) {
      detail::tree_set(overlay.root, backing.levels(), resolved.page_index, page);
    } else {
      detail::tree_replace_same_root(detail::SlabAccess::root(backing), backing.levels(),
                                     resolved.page_index, page, Digest::sha256);
    }
  }
  backing_ = std::move(backing);
  std::swap(overlay_, overlay.root);
}

namespace {

// Places src pages [s, s + count) of `src` at pages [d, d + count) of `dst` (both backings).
// Where both ranges are aligned to a node's span (64^(g+1) pages) the whole node is shared —
// one reference, and its cached hashes come along; elsewhere the stored pages are placed one by
// one (and the destination's old pages in the range cleared).
void place_range(PageSlab& dst, const PageSlab& src, std::uint64_t d, std::uint64_t s,
                 std::uint64_t count, detail::TreeNode*& dst_root,
                 const detail::TreeNode* src_root) {
  while (count > 0) {
    int g = -1;
    for (unsigned level = 0; level < std::min(dst.levels(), src.levels()); ++level) {
      const std::uint64_t span = std::uint64_t{1} << (detail::FANOUT_LOG2 * (level + 1));
      if (span > count || d % span != 0 || s % span != 0) break;
      g = static_cast<int>(level);
    }
    if (g < 0) break;
    const auto level = static_cast<unsigned>(g);
    const std::uint64_t span = std::uint64_t{1} << (detail::FANOUT_LOG2 * (level + 1));
    while (count >= span) {
      auto* node =
          const_cast<detail::TreeNode*>(detail::tree_node_at(src_root, src.levels(), s, level));
      if (node != nullptr) node->retain();
      detail::tree_set_subtree(dst_root, dst.levels(), d, level, node);
      d += span;
      s += span;
      count -= span;
    }
  }
  if (count == 0) return;
  // The unaligned rest, page by page over what is stored.
  std::vector<std::uint64_t> cleared;
  detail::tree_for_each(dst_root, dst.levels(), d, d + count,
                        [&](std::uint64_t i, PageNode*) { cleared.push_back(i); });
  for (std::uint64_t i : cleared) detail::tree_set(dst_root, dst.levels(), i, nullptr);
  detail::tree_for_each(src_root, src.levels(), s, s + count, [&](std::uint64_t i, PageNode* node) {
    node->retain();
    detail::tree_set(dst_root, dst.levels(), d + (i - s), node);
  });
}

}  // namespace

void DataCap::place_shared(std::uint64_t dst_off, const DataCap& src) {
  if (dst_off % PAGE_SIZE != 0) {
    throw InvalidArgument("place_shared: dst_off " + std::to_string(dst_off) +
                          " is not a multiple of PAGE_SIZE (4096)");
  }
  const std::uint64_t dst_page = dst_off / PAGE_SIZE;
  if (dst_page >= page_count()) return;  // every page falls past the end
  const std::uint64_t n = std::min(src.page_count(), page_count() - dst_page);
  const DataCap source = src;  // O(1); also makes place_shared(…, *this) safe
  PageSlab next = backing_;    // built aside, committed at the end (strong guarantee)
  // The source backing is canonical already; its overlay pages are folded in canonically.
  place_range(next, source.backing_, dst_page, 0, n, detail::SlabAccess::root(next),
              detail::SlabAccess::root(source.backing_));
  detail::tree_for_each(source.overlay_, source.backing_.levels(), 0, n,
                        [&](std::uint64_t i, PageNode* node) {
                          next.set_page_slot(dst_page + i, PageNode::share_slot(node));
                        });
  backing_ = std::move(next);
}

// ---- settle ------------------------------------------------------------------------------

namespace {

// What a backing takes for an overlay page: canonical (a zero page becomes Empty), with a
// reference of its own.
PageNode* adopt_for_backing(std::uint64_t, PageNode* node) {
  if (!node->is_missing() && detail::is_zero_page(node->data)) return nullptr;
  node->retain();
  return node;
}

}  // namespace

// Both fold the overlay into the backing in one walk: each backing node on the way is
// path-copied once.
DataCap DataCap::flush() const& {
  DataCap out = DataCap::from_backing(backing_);
  detail::tree_merge(detail::SlabAccess::root(out.backing_), out.backing_.levels(), overlay_,
                     adopt_for_backing);
  return out;
}

DataCap DataCap::flush() && {
  DataCap out = DataCap::from_backing(std::move(backing_));
  detail::TreeNode* overlay = std::exchange(overlay_, nullptr);
  overlay_count_ = 0;
  // The overlay is this cap's to give up: it is freed during the merge (released on failure).
  detail::tree_merge_consume(detail::SlabAccess::root(out.backing_), out.backing_.levels(), overlay,
                             adopt_for_backing);
  return out;
}

Hash32 DataCap::hash_tree_root(Digest digest) const {
  if (overlay_count_ != 0) {
    throw DirtyCap("hash_tree_root: cap has " + std::to_string(overlay_count_) +
                   " dirty pages; flush() first");
  }
  return backing_.root(digest);
}

}  // namespace datacap
