// Snapshot archives (docs/format.md §2).
#include "datacap/archive.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "archive/archive_internal.hpp"
#include "archive/file_reads.hpp"
#include "codec/reader.hpp"
#include "common/replacement_file.hpp"
#include "common/thread_pool.hpp"
#include "datacap/error.hpp"
#include "slab/slot_tree.hpp"
#include "tree/merkle.hpp"

namespace datacap {

using detail::PageNode;
using detail::put_le32;
using detail::put_le64;
using detail::SszReader;

namespace {

constexpr char MAGIC[8] = {'D', 'C', 'A', 'P', 'A', 'R', 'C', '\0'};
constexpr std::uint32_t VERSION = 1;
constexpr std::size_t HEADER_SIZE = PAGE_SIZE;
constexpr std::size_t HEADER_HASHED = 104;          // the header hash covers bytes [0, 104)
constexpr std::uint32_t REF_ZERO = 0xffffffffu;     // a Loaded all-zero page (overlay only)
constexpr std::uint32_t REF_MISSING = 0x80000000u;  // | index into the missing-hash table
constexpr std::uint64_t MAX_PAYLOADS = 0x7fffffffu;

struct Entry {
  std::uint32_t page_index;
  std::uint32_t ref;
};

struct Header {
  Digest digest = Digest::sha256;
  bool dirty = false;
  std::uint64_t content_len = 0;
  std::uint64_t payload_count = 0;
  std::uint64_t backing_count = 0;
  std::uint64_t overlay_count = 0;
  std::uint64_t missing_count = 0;
  std::uint64_t tables_offset = 0;
  Hash32 root{};
};

std::string system_message() { return std::strerror(errno); }

void encode_header(std::uint8_t* out, const Header& h) {
  std::memset(out, 0, HEADER_SIZE);
  std::memcpy(out, MAGIC, 8);
  put_le32(out + 8, VERSION);
  out[12] = static_cast<std::uint8_t>(h.digest);
  out[13] = h.dirty ? 1 : 0;
  put_le64(out + 16, h.content_len);
  put_le64(out + 24, HEADER_SIZE);  // payload_offset
  put_le64(out + 32, h.payload_count);
  put_le64(out + 40, h.backing_count);
  put_le64(out + 48, h.overlay_count);
  put_le64(out + 56, h.missing_count);
  put_le64(out + 64, h.tables_offset);
  std::memcpy(out + 72, h.root.data(), 32);
  const Hash32 check = digest_bytes(h.digest, std::span<const std::uint8_t>(out, HEADER_HASHED));
  std::memcpy(out + HEADER_HASHED, check.data(), 32);
}

// ---- writing ---------------------------------------------------------------------------------

// Archives are written at offsets (the header last) through a replacement file, so the
// destination must be a regular file (or a new one): an existing device, FIFO or socket is
// refused rather than replaced by a rename.
detail::OutputTarget archive_target(const std::string& path) {
  if (path.empty()) throw InvalidArgument("archive path is empty");
  detail::OutputTarget target = detail::resolve_output(path);
  if (!target.replaceable()) {
    throw IoError(path,
                  "not a regular file (an archive is written to a regular file, never over a "
                  "device, FIFO or directory)");
  }
  return target;
}

void count_flushed(ArchiveInfo& info, std::uint32_t ref) {
  ++((ref & REF_MISSING) != 0 ? info.flushed_missing_pages : info.flushed_loaded_pages);
}

// What every writer shares: payload dedup, the tables, and the final layout.
class ArchiveBuilder {
 public:
  ArchiveBuilder(const std::string& path, Digest digest)
      : file_(archive_target(path)), digest_(digest) {}

  Digest digest() const { return digest_; }
  [[nodiscard]] const std::string& temp_path() const noexcept { return file_.temp_path(); }

  std::uint32_t payload(const std::uint8_t* page, const Hash32& root) {
    if (auto it = payloads_.find(root); it != payloads_.end()) return it->second;
    if (payload_hashes_.size() >= MAX_PAYLOADS)
      throw OutOfRange("archive: more than 2^31 - 1 distinct pages");
    const auto index = static_cast<std::uint32_t>(payload_hashes_.size());
    file_.write_at(HEADER_SIZE + std::uint64_t{index} * PAGE_SIZE, page, PAGE_SIZE);
    payload_hashes_.push_back(root);
    payloads_.emplace(root, index);
    return index;
  }
  std::uint32_t missing(const Hash32& hash) {
    missing_.push_back(hash);
    return REF_MISSING | static_cast<std::uint32_t>(missing_.size() - 1);
  }
  std::vector<Entry>& backing() { return backing_; }
  std::vector<Entry>& overlay() { return overlay_; }

  ArchiveInfo finish(std::uint64_t content_len, const Hash32& root) {
    Header h;
    h.digest = digest_;
    h.dirty = !overlay_.empty();
    h.content_len = content_len;
    h.payload_count = payload_hashes_.size();
    h.backing_count = backing_.size();
    h.overlay_count = overlay_.size();
    h.missing_count = missing_.size();
    h.tables_offset = HEADER_SIZE + h.payload_count * PAGE_SIZE;
    h.root = root;
    std::vector<std::uint8_t> tables(32 * (payload_hashes_.size() + missing_.size()) +
                                     8 * (backing_.size() + overlay_.size()));
    std::uint8_t* p = tables.data();
    for (const Hash32& x : payload_hashes_) p = std::copy(x.begin(), x.end(), p);
    for (const Hash32& x : missing_) p = std::copy(x.begin(), x.end(), p);
    for (const auto* table : {&backing_, &overlay_}) {
      for (const Entry& e : *table) {
        put_le32(p, e.page_index);
        put_le32(p + 4, e.ref);
        p += 8;
      }
    }
    file_.write_at(h.tables_offset, tables.data(), tables.size());
    std::uint8_t header[HEADER_SIZE];
    encode_header(header, h);
    file_.write_at(0, header, HEADER_SIZE);
    file_.commit();
    ArchiveInfo info;
    info.digest = digest_;
    info.content_len = content_len;
    info.page_count = content_len / PAGE_SIZE;
    info.unique_pages = h.payload_count;
    info.dirty_pages = h.overlay_count;
    std::uint64_t missing_entries = 0;
    for (const auto* table : {&backing_, &overlay_}) {
      for (const Entry& e : *table)
        missing_entries += e.ref != REF_ZERO && (e.ref & REF_MISSING) != 0;
    }
    info.missing_pages = missing_entries;
    info.stored_pages = h.backing_count + h.overlay_count - missing_entries;
    // The flushed cap: an overlay entry shadows the backing's; an overlay zero page is Empty.
    std::size_t b = 0;
    for (const Entry& o : overlay_) {
      for (; b < backing_.size() && backing_[b].page_index < o.page_index; ++b)
        count_flushed(info, backing_[b].ref);
      if (b < backing_.size() && backing_[b].page_index == o.page_index) ++b;
      if (o.ref != REF_ZERO) count_flushed(info, o.ref);
    }
    for (; b < backing_.size(); ++b) count_flushed(info, backing_[b].ref);
    info.file_size = h.tables_offset + tables.size();
    info.root = root;
    return info;
  }

 private:
  detail::ReplacementFile file_;
  Digest digest_;
  std::unordered_map<Hash32, std::uint32_t, Hash32Hasher> payloads_;
  std::vector<Hash32> payload_hashes_;
  std::vector<Hash32> missing_;
  std::vector<Entry> backing_, overlay_;
};

}  // namespace

ArchiveInfo write_archive(const DataCap& cap, const std::string& path, Digest digest) {
  // The format holds 1 to 2^32 pages (every reader rejects content_len 0): refused before a
  // temporary file exists.
  if (cap.content_len() == 0) {
    throw InvalidArgument(
        "write_archive: the cap has size 0 (the empty cap); an archive holds 1 "
        "to 2^32 pages");
  }
  ArchiveBuilder b(path, digest);
  auto add = [&](std::vector<Entry>& table, std::uint32_t i, const PageSlot& slot) {
    if (slot.is_missing()) {
      table.push_back(Entry{i, b.missing(slot.missing_hash())});
      return;
    }
    const PageRef page = slot.page();
    if (page.is_zero()) {
      table.push_back(Entry{i, REF_ZERO});  // only the overlay holds Loaded zero pages
      return;
    }
    table.push_back(Entry{i, b.payload(page.data(), page.root(digest))});
  };
  cap.backing().for_each_stored(
      [&](std::uint32_t i, const PageSlot& s) { add(b.backing(), i, s); });
  cap.for_each_dirty([&](std::uint32_t i, const PageSlot& s) { add(b.overlay(), i, s); });
  return b.finish(cap.content_len(), cap.flush().hash_tree_root(digest));
}

// ---- streaming writer ------------------------------------------------------------------------

struct ArchiveWriter::State {
  State(const std::string& path, Digest digest) : builder(path, digest), root(digest) {}
  ArchiveBuilder builder;
  CapRootBuilder root;
  std::uint64_t pages = 0;
};

ArchiveWriter::ArchiveWriter(const std::string& path, Digest digest)
    : state_(std::make_unique<State>(path, digest)) {}
ArchiveWriter::~ArchiveWriter() = default;

const std::string& ArchiveWriter::temp_path() const noexcept { return state_->builder.temp_path(); }

void ArchiveWriter::append_pages(std::span<const std::uint8_t> bytes) {
  State& s = *state_;
  const Digest digest = s.builder.digest();
  alignas(64) std::uint8_t last[PAGE_SIZE];
  std::vector<const std::uint8_t*> pages;
  for (std::size_t off = 0; off < bytes.size(); off += PAGE_SIZE) {
    const std::size_t n = std::min(PAGE_SIZE, bytes.size() - off);
    if (n == PAGE_SIZE) {
      pages.push_back(bytes.data() + off);
    } else {
      std::memcpy(last, bytes.data() + off, n);
      std::memset(last + n, 0, PAGE_SIZE - n);
      pages.push_back(last);
    }
  }
  std::vector<Hash32> roots(pages.size());
  std::vector<std::uint8_t> zero(pages.size());
  for (std::size_t i = 0; i < pages.size(); ++i) zero[i] = detail::is_zero_page(pages[i]);
  constexpr std::size_t TASK = 64;
  detail::parallel_for((pages.size() + TASK - 1) / TASK, [&](std::size_t t) {
    for (std::size_t i = t * TASK; i < std::min(pages.size(), (t + 1) * TASK); ++i) {
      if (!zero[i]) detail::page_roots(digest, &pages[i], 1, &roots[i]);
    }
  });
  for (std::size_t i = 0; i < pages.size(); ++i) {
    if (s.pages >= MAX_PAGE_COUNT) throw OutOfRange("ArchiveWriter: more than 2^32 pages");
    if (zero[i]) {
      s.root.append_page_root(Hash32{});
    } else {
      s.builder.backing().push_back(
          Entry{static_cast<std::uint32_t>(s.pages), s.builder.payload(pages[i], roots[i])});
      s.root.append_page_root(roots[i]);
    }
    ++s.pages;
  }
}

void ArchiveWriter::append_zero_pages(std::uint64_t count) {
  state_->root.append_zero_pages(count);
  state_->pages += count;
}

ArchiveInfo ArchiveWriter::finish(std::uint64_t size) {
  State& s = *state_;
  std::uint64_t pages = size / PAGE_SIZE + (size % PAGE_SIZE != 0 ? 1 : 0);
  pages = std::max<std::uint64_t>(std::max(pages, s.pages), 1);
  if (pages > MAX_PAGE_COUNT)
    throw OutOfRange("ArchiveWriter: size " + std::to_string(size) + " exceeds 2^32 pages");
  const Hash32 root = s.root.finish(pages * PAGE_SIZE);
  return s.builder.finish(pages * PAGE_SIZE, root);
}

// ---- reading ---------------------------------------------------------------------------------

namespace {

// The tables of an archive whose structure has been checked, in memory.
struct Tables {
  const std::uint8_t* hashes = nullptr;          // payload_count recorded payload roots
  const std::uint8_t* missing_hashes = nullptr;  // missing_count hashes
  const std::uint8_t* entries = nullptr;         // backing_count + overlay_count entries
  std::uint64_t missing_entries = 0;             // Missing entries, backing and overlay
  std::uint64_t flushed_loaded = 0;              // non-Empty, non-Missing pages of the flushed cap
  std::uint64_t flushed_missing = 0;             // Missing pages of the flushed cap
};

std::uint64_t tables_size(const Header& h) {
  // Every count is bounded by parse_header, so this cannot overflow.
  return 32 * (h.payload_count + h.missing_count) + 8 * (h.backing_count + h.overlay_count);
}

// Checks the header (the first HEADER_SIZE bytes of a file of `file_size` bytes) and returns it.
// `r` reads `head` and names the input in its errors.
Header parse_header(SszReader& r, std::span<const std::uint8_t> head, std::uint64_t file_size) {
  if (file_size < HEADER_SIZE || head.size() < HEADER_SIZE) {
    r.fail("header", 0,
           "file of " + std::to_string(file_size) + " bytes is shorter than the 4096-byte header");
  }
  if (std::memcmp(head.data(), MAGIC, 8) != 0) r.fail("magic", 0, "not a datacap archive");
  (void)r.take("magic", 8);
  const std::uint32_t version = r.u32("version");
  if (version != VERSION)
    r.fail("version", 8, "format version " + std::to_string(version) + " (this library reads 1)");
  Header h;
  const std::uint8_t digest_id = r.u8("digest");
  if (digest_id > 1) r.fail("digest", 12, "unknown digest id " + std::to_string(digest_id));
  h.digest = static_cast<Digest>(digest_id);
  const std::uint8_t flags = r.u8("flags");
  if (flags > 1) r.fail("flags", 13, "unknown flags " + std::to_string(flags));
  h.dirty = flags == 1;
  if (r.u8("reserved") != 0 || r.u8("reserved") != 0)
    r.fail("reserved", 14, "reserved bytes are not zero");
  // The header hash first: no other field is trusted before it matches.
  const Hash32 check = digest_bytes(h.digest, head.first(HEADER_HASHED));
  if (std::memcmp(check.data(), head.data() + HEADER_HASHED, 32) != 0) {
    r.fail("header_hash", HEADER_HASHED, "does not match the header (damaged header)");
  }
  h.content_len = r.u64("content_len");
  const std::uint64_t payload_offset = r.u64("payload_offset");
  h.payload_count = r.u64("payload_count");
  h.backing_count = r.u64("backing_count");
  h.overlay_count = r.u64("overlay_count");
  h.missing_count = r.u64("missing_count");
  h.tables_offset = r.u64("tables_offset");
  const auto root_bytes = r.take("root", 32);
  std::memcpy(h.root.data(), root_bytes.data(), 32);
  if (h.content_len % PAGE_SIZE != 0 || h.content_len == 0 ||
      h.content_len / PAGE_SIZE > MAX_PAGE_COUNT) {
    r.fail("content_len", 16, std::to_string(h.content_len) + " is not 1 .. 2^32 whole pages");
  }
  if (payload_offset != HEADER_SIZE)
    r.fail("payload_offset", 24, std::to_string(payload_offset) + " != 4096");
  if (h.payload_count > MAX_PAYLOADS)
    r.fail("payload_count", 32, std::to_string(h.payload_count) + " exceeds 2^31 - 1");
  if (h.missing_count > MAX_PAYLOADS)
    r.fail("missing_count", 56, std::to_string(h.missing_count) + " exceeds 2^31 - 1");
  const std::uint64_t page_count = h.content_len / PAGE_SIZE;
  if (h.backing_count > page_count)
    r.fail("backing_count", 40,
           std::to_string(h.backing_count) + " > page_count " + std::to_string(page_count));
  if (h.overlay_count > page_count)
    r.fail("overlay_count", 48,
           std::to_string(h.overlay_count) + " > page_count " + std::to_string(page_count));
  if (h.dirty != (h.overlay_count != 0))
    r.fail("flags", 13, "the dirty flag disagrees with overlay_count");
  if (h.tables_offset != HEADER_SIZE + h.payload_count * PAGE_SIZE) {
    r.fail("tables_offset", 64,
           std::to_string(h.tables_offset) + " != 4096 + 4096 × payload_count");
  }
  const std::uint64_t expected_size = h.tables_offset + tables_size(h);
  if (file_size != expected_size) {
    r.fail("file", std::min(file_size, expected_size),
           "file is " + std::to_string(file_size) + " bytes; its header describes " +
               std::to_string(expected_size));
  }
  return h;
}

static_assert(std::endian::native == std::endian::little, "archive entries are read in place");

Entry entry_at(const Tables& t, std::uint64_t k) {
  Entry e;
  e.page_index = detail::get_le32(t.entries + 8 * k);
  e.ref = detail::get_le32(t.entries + 8 * k + 4);
  return e;
}

bool is_missing_ref(std::uint32_t ref) { return ref != REF_ZERO && (ref & REF_MISSING) != 0; }

// Calls fn(page_index, ref) in ascending order for every page the flushed cap holds
// (non-Empty): an overlay entry shadows the backing entry of its page, and an overlay zero page
// is Empty once flushed (SPEC: flush folds a zero page in as Empty).
template <typename Fn>
void for_each_flushed(const Header& h, const Tables& t, Fn&& fn) {
  std::uint64_t b = 0, o = 0;
  while (b < h.backing_count || o < h.overlay_count) {
    const Entry be = b < h.backing_count ? entry_at(t, b) : Entry{0, 0};
    const Entry oe = o < h.overlay_count ? entry_at(t, h.backing_count + o) : Entry{0, 0};
    const bool take_overlay =
        o < h.overlay_count && (b >= h.backing_count || oe.page_index <= be.page_index);
    if (take_overlay) {
      if (b < h.backing_count && be.page_index == oe.page_index) ++b;
      ++o;
      if (oe.ref != REF_ZERO) fn(std::uint64_t{oe.page_index}, oe.ref);
    } else {
      ++b;
      fn(std::uint64_t{be.page_index}, be.ref);
    }
  }
}

// Checks every table entry (`tables` holds tables_size(h) bytes read from h.tables_offset).
Tables parse_tables(SszReader& r, const Header& h, const std::uint8_t* tables) {
  Tables t;
  t.hashes = tables;
  t.missing_hashes = tables + 32 * h.payload_count;
  t.entries = t.missing_hashes + 32 * h.missing_count;
  const std::uint64_t entries_offset = h.tables_offset + 32 * (h.payload_count + h.missing_count);
  const std::uint64_t page_count = h.content_len / PAGE_SIZE;
  for (int which = 0; which < 2; ++which) {
    const std::uint64_t first = which == 0 ? 0 : h.backing_count;
    const std::uint64_t count = which == 0 ? h.backing_count : h.overlay_count;
    const char* table = which == 0 ? "backing" : "overlay";
    std::uint64_t previous = 0;
    for (std::uint64_t k = 0; k < count; ++k) {
      const Entry e = entry_at(t, first + k);
      const std::uint64_t at = entries_offset + 8 * (first + k);
      // The field's name is built only on failure: this loop runs once per page.
      const auto field = [&] { return std::string(table) + "[" + std::to_string(k) + "]"; };
      if (e.page_index >= page_count)
        r.fail(field(), at,
               "page_index " + std::to_string(e.page_index) + " >= page_count " +
                   std::to_string(page_count));
      if (k > 0 && e.page_index <= previous)
        r.fail(field(), at,
               "page_index " + std::to_string(e.page_index) + " is not above the previous entry's");
      previous = e.page_index;
      if (e.ref == REF_ZERO) {
        if (which == 0) r.fail(field(), at + 4, "a backing page cannot be an explicit zero page");
      } else if ((e.ref & REF_MISSING) != 0) {
        if ((e.ref & ~REF_MISSING) >= h.missing_count)
          r.fail(field(), at + 4,
                 "missing index " + std::to_string(e.ref & ~REF_MISSING) + " >= missing_count");
        ++t.missing_entries;
      } else if (e.ref >= h.payload_count) {
        r.fail(field(), at + 4,
               "payload " + std::to_string(e.ref) + " >= payload_count " +
                   std::to_string(h.payload_count));
      }
    }
  }
  // A payload is never all zeros (zero pages are elided): a recorded hash that says so is refused
  // here, without reading the payload, so lazy verification cannot accept what full rejects.
  const Hash32& zero_page_root = zero_hash(h.digest, PAGE_DEPTH);
  for (std::uint64_t i = 0; i < h.payload_count; ++i) {
    if (std::memcmp(t.hashes + 32 * i, zero_page_root.data(), 32) == 0) {
      r.fail("payload_hashes[" + std::to_string(i) + "]", h.tables_offset + 32 * i,
             "payload " + std::to_string(i) +
                 " is recorded as an all-zero page (zero pages are elided)");
    }
  }
  for_each_flushed(h, t, [&](std::uint64_t, std::uint32_t ref) {
    ++(is_missing_ref(ref) ? t.flushed_missing : t.flushed_loaded);
  });
  return t;
}

ArchiveInfo info_of(const Header& h, const Tables& t, std::uint64_t file_size) {
  ArchiveInfo info;
  info.digest = h.digest;
  info.content_len = h.content_len;
  info.page_count = h.content_len / PAGE_SIZE;
  info.unique_pages = h.payload_count;
  info.missing_pages = t.missing_entries;
  info.dirty_pages = h.overlay_count;
  info.stored_pages = h.backing_count + h.overlay_count - t.missing_entries;
  info.flushed_loaded_pages = t.flushed_loaded;
  info.flushed_missing_pages = t.flushed_missing;
  info.file_size = file_size;
  info.root = h.root;
  return info;
}

Hash32 recorded_hash(const Tables& t, std::uint32_t ref) {
  Hash32 out;
  std::memcpy(out.data(),
              is_missing_ref(ref) ? t.missing_hashes + 32 * (ref & ~REF_MISSING)
                                  : t.hashes + 32 * std::uint64_t{ref},
              32);
  return out;
}

// The root of the flushed cap from the recorded hashes alone: O(entries) pair hashes at most,
// O(log pages) memory, no tree. Equal to the cap's root when every payload matches its hash.
Hash32 flushed_root_from_tables(const Header& h, const Tables& t) {
  CapRootBuilder b(h.digest);
  std::uint64_t next = 0;
  for_each_flushed(h, t, [&](std::uint64_t index, std::uint32_t ref) {
    b.append_zero_pages(index - next);
    b.append_page_root(recorded_hash(t, ref));
    next = index + 1;
  });
  return b.finish(h.content_len);
}

// Tree nodes a 64-way radix tree over the ascending `indices` needs (every level but the root
// node's, which is counted once).
class NodeCounter {
 public:
  explicit NodeCounter(std::uint64_t page_count) {
    levels_ = 1;
    while (levels_ < detail::MAX_LEVELS &&
           (std::uint64_t{1} << (detail::FANOUT_LOG2 * levels_)) < page_count)
      ++levels_;
  }
  void add(std::uint64_t index) {
    for (unsigned l = 0; l < levels_; ++l) {
      const std::uint64_t prefix = index >> (detail::FANOUT_LOG2 * (l + 1));
      if (seen_ && prefix == last_[l]) break;  // this node and every one above it are counted
      last_[l] = prefix;
      ++nodes_;
    }
    // Levels above the first shared one keep their last prefix, which is still right.
    seen_ = true;
  }
  [[nodiscard]] std::uint64_t nodes() const { return nodes_; }

 private:
  unsigned levels_;
  bool seen_ = false;
  std::uint64_t last_[detail::MAX_LEVELS] = {};
  std::uint64_t nodes_ = 0;
};

// Memory a cap opened from these tables takes at most once its root is computed: tree nodes of
// the backing, the overlay and the flushed cap, each with one digest's cached hashes, and a page
// object per entry. The payload bytes themselves are not counted (they stay in the file image).
std::uint64_t tree_memory_estimate(const Header& h, const Tables& t) {
  const std::uint64_t page_count = h.content_len / PAGE_SIZE;
  NodeCounter backing(page_count), overlay(page_count), flushed(page_count);
  for (std::uint64_t k = 0; k < h.backing_count; ++k) backing.add(entry_at(t, k).page_index);
  for (std::uint64_t k = 0; k < h.overlay_count; ++k)
    overlay.add(entry_at(t, h.backing_count + k).page_index);
  for_each_flushed(h, t, [&](std::uint64_t index, std::uint32_t) { flushed.add(index); });
  const std::uint64_t per_node = sizeof(detail::TreeNode) + sizeof(detail::NodeHashes);
  return (backing.nodes() + overlay.nodes() + flushed.nodes()) * per_node +
         (h.backing_count + h.overlay_count) * sizeof(PageNode);
}

std::string mib(std::uint64_t bytes) {
  return std::to_string(bytes) + " bytes (" + std::to_string((bytes + (1 << 19)) >> 20) + " MiB)";
}

[[noreturn]] void over_limit(const std::string& path, const std::string& what, std::uint64_t need,
                             std::uint64_t limit) {
  throw MemoryLimitExceeded(path + ": " + what + " needs about " + mib(need) +
                                " of memory, over the limit of " + mib(limit) + " (max_memory)",
                            need, limit);
}

// Hashes `count` pages whose bytes are at `pages` (PAGE_SIZE apart) on all cores.
void hash_pages(Digest digest, const std::uint8_t* pages, std::size_t count, Hash32* out) {
  constexpr std::size_t TASK = 64;
  detail::parallel_for((count + TASK - 1) / TASK, [&](std::size_t task) {
    const std::size_t begin = task * TASK, end = std::min(count, begin + TASK);
    const std::uint8_t* ptrs[TASK];
    for (std::size_t i = begin; i < end; ++i) ptrs[i - begin] = pages + i * PAGE_SIZE;
    detail::page_roots(digest, ptrs, end - begin, out + begin);
  });
}

// Throws unless payload `index`'s bytes hash to `actual` = its recorded hash and are not zero.
void check_payload(SszReader& r, const Header& h, const Tables& t, std::uint64_t index,
                   const Hash32& actual) {
  const std::uint64_t at = h.tables_offset + 32 * index;
  if (std::memcmp(actual.data(), t.hashes + 32 * index, 32) != 0) {
    r.fail("payload_hashes[" + std::to_string(index) + "]", at,
           "payload " + std::to_string(index) + " does not match its recorded hash");
  }
  if (actual == zero_hash(h.digest, PAGE_DEPTH)) {
    r.fail("payload_hashes[" + std::to_string(index) + "]", at,
           "payload " + std::to_string(index) + " is all zeros (zero pages are elided)");
  }
}

// Reads exactly `len` bytes at `pos` of a file fstat said was `file_size` bytes long.
void read_exact(int fd, std::uint8_t* buf, std::size_t len, std::uint64_t pos,
                std::uint64_t file_size, const std::string& path) {
  const std::size_t got = detail::read_fully(fd, buf, len, static_cast<std::int64_t>(pos), path);
  if (got != len) {
    throw IoError(path, "file shrank while being read (" + std::to_string(file_size) +
                            " bytes, then " + std::to_string(pos + got) + ")");
  }
}

struct OpenFile {
  int fd = -1;
  std::uint64_t size = 0;
  explicit OpenFile(const std::string& path) {
    if (path.empty()) throw InvalidArgument("archive path is empty");
    // O_NONBLOCK: opening a FIFO nobody writes must not block; only a regular file is read.
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw IoError(path, "cannot open: " + system_message());
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const std::string why = system_message();
      ::close(fd);
      throw IoError(path, "cannot stat: " + why);
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw IoError(path, "not a regular file");
    }
    size = static_cast<std::uint64_t>(st.st_size);
  }
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  ~OpenFile() {
    if (fd >= 0) ::close(fd);
  }
};

// The whole file read once into private anonymous memory: a MappedFile whose bytes no later
// change of the file can reach. A file that is shorter or longer than fstat said is an error.
detail::MappedFile* read_private(const OpenFile& f, const std::string& path) {
  void* base = ::mmap(nullptr, f.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED)
    throw IoError(path,
                  "cannot allocate " + mib(f.size) + " to read the file: " + system_message());
  auto* file = new detail::MappedFile();
  file->base = base;
  file->len = f.size;
  const detail::MappedFile::Holder drop_on_throw{file};
  read_exact(f.fd, static_cast<std::uint8_t*>(base), f.size, 0, f.size, path);
  std::uint8_t extra = 0;
  if (detail::read_fully(f.fd, &extra, 1, static_cast<std::int64_t>(f.size), path) != 0) {
    throw IoError(path, "file grew while being read (it was " + std::to_string(f.size) + " bytes)");
  }
  ::mprotect(base, f.size, PROT_READ);  // read-only from here on, as a file mapping would be
  file->retain();                       // the caller's reference; drop_on_throw's goes now
  return file;
}

// Lazy verification: a payload of the file is compared with its recorded root the first time
// its root is computed under the archive's digest (other digests have nothing to compare).
class RecordedRootCheck final : public detail::BorrowedPageCheck {
 public:
  RecordedRootCheck(const std::uint8_t* payloads, const std::uint8_t* recorded_roots,
                    std::uint64_t recorded_roots_offset, Digest digest, std::string name)
      : payloads_(payloads),
        recorded_roots_(recorded_roots),
        recorded_roots_offset_(recorded_roots_offset),
        digest_(digest),
        name_(std::move(name)) {}

  void check(const std::uint8_t* page, Digest digest, const Hash32& root) const override {
    if (digest != digest_) return;
    const auto index = static_cast<std::uint64_t>(page - payloads_) / PAGE_SIZE;
    if (std::memcmp(recorded_roots_ + 32 * index, root.data(), 32) != 0) {
      throw DecodeError(name_ + ".payload_hashes[" + std::to_string(index) + "]",
                        recorded_roots_offset_ + 32 * index,
                        "payload " + std::to_string(index) +
                            " does not match its recorded hash (found on first use)");
    }
  }

 private:
  const std::uint8_t* payloads_;
  const std::uint8_t* recorded_roots_;
  std::uint64_t recorded_roots_offset_;  // file offset of recorded_roots, for messages
  Digest digest_;
  std::string name_;  // "PATH: Archive"
};

}  // namespace

namespace detail {

OpenedArchive open_archive_image(MappedFile* file, ArchiveVerify verify, const std::string& name,
                                 std::uint64_t max_memory, std::uint64_t held) {
  const std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(file->base),
                                            file->len);
  SszReader r(bytes, name);
  const Header h = parse_header(r, bytes, bytes.size());
  const Tables t = parse_tables(r, h, bytes.data() + h.tables_offset);
  if (max_memory != 0) {
    const std::uint64_t need = held + tree_memory_estimate(h, t);
    if (need > max_memory) {
      over_limit(name,
                 "a cap of " + std::to_string(h.backing_count + h.overlay_count) + " table entries",
                 need, max_memory);
    }
  }

  // Content (full): every payload against its recorded hash, on all cores.
  const std::uint8_t* payloads = bytes.data() + HEADER_SIZE;
  std::vector<Hash32> verified;
  if (verify == ArchiveVerify::full) {
    verified.resize(h.payload_count);
    hash_pages(h.digest, payloads, h.payload_count, verified.data());
    for (std::uint64_t i = 0; i < h.payload_count; ++i) check_payload(r, h, t, i, verified[i]);
  } else {
    // Lazy verification: each payload is checked against its recorded root when first hashed.
    file->check =
        std::make_unique<RecordedRootCheck>(payloads, t.hashes, h.tables_offset, h.digest, name);
  }
  // Build: one page object per payload, shared by every entry that names it. The mapping's
  // references are taken in one step, for every payload, before any page object exists (so a
  // throw below releases only references that were taken); the unused ones go back at the end.
  file->refs.fetch_add(static_cast<std::uint32_t>(h.payload_count), std::memory_order_relaxed);
  std::uint64_t borrowed_count = 0;
  struct ReturnUnused {  // on every exit, normal or not
    MappedFile* file;
    std::uint64_t taken;
    const std::uint64_t& used;
    ~ReturnUnused() {
      file->refs.fetch_sub(static_cast<std::uint32_t>(taken - used), std::memory_order_relaxed);
    }
  } return_unused{file, h.payload_count, borrowed_count};
  // nodes[i] is borrowed: its first use hands the creation reference to the tree, later uses
  // add one each, so no reference is left to drop (and a throw leaves only tree-owned pages).
  // (Building subtrees on several threads was measured slower: a compare-and-swap per page and
  // cross-thread pool traffic cost more than the split saves.)
  std::vector<PageNode*> nodes(h.payload_count, nullptr);
  auto slot_node = [&](std::uint32_t ref) -> PageNode* {
    if (is_missing_ref(ref)) return PageNode::missing(recorded_hash(t, ref));
    PageNode*& n = nodes[ref];
    if (n == nullptr) {
      n = PageNode::borrowed(file, payloads + std::uint64_t{ref} * PAGE_SIZE,
                             /*retain_file=*/false);
      ++borrowed_count;
      if (verify == ArchiveVerify::full) n->publish_root(h.digest, verified[ref]);
      return n;
    }
    n->retain();
    return n;
  };
  PageSlab slab(h.content_len);
  TreeNode*& root = SlabAccess::root(slab);
  // Entries ascend, so each leaf is found once and its slots filled directly.
  TreeNode* leaf = nullptr;
  std::uint64_t leaf_first = 0;
  for (std::uint64_t k = 0; k < h.backing_count; ++k) {
    const Entry e = entry_at(t, k);
    if (leaf == nullptr || e.page_index - leaf_first >= FANOUT) {
      leaf = tree_leaf_for_write(root, slab.levels(), e.page_index);
      leaf_first = e.page_index & ~std::uint64_t{FANOUT - 1};
    }
    leaf->child[e.page_index - leaf_first] = slot_node(e.ref);
  }
  DataCap cap = DataCap::from_backing(std::move(slab));
  // Every explicit zero page of the overlay shares one page: 8 bytes of file must not cost 4 KiB.
  const PageRef zero_page = h.overlay_count != 0 ? PageRef::copy_of({}) : PageRef();
  for (std::uint64_t k = 0; k < h.overlay_count; ++k) {
    const Entry e = entry_at(t, h.backing_count + k);
    cap.insert_overlay_page(e.page_index, e.ref == REF_ZERO
                                              ? PageSlot::loaded(zero_page)
                                              : PageNode::adopt_slot(slot_node(e.ref)));
  }
  if (verify == ArchiveVerify::full) {
    const Hash32 actual = cap.flush().hash_tree_root(h.digest);
    if (actual != h.root)
      r.fail("root", 72, "recorded root does not match the content's root " + to_hex(actual));
  }
  OpenedArchive out;
  out.info = info_of(h, t, bytes.size());
  out.cap = std::move(cap);
  return out;
}

}  // namespace detail

OpenedArchive open_archive(const std::string& path, const ArchiveOpenOptions& options) {
  const OpenFile f(path);
  if (f.size < HEADER_SIZE) {
    throw DecodeError(
        path + ": Archive.header", 0,
        "file of " + std::to_string(f.size) + " bytes is shorter than the 4096-byte header");
  }
  detail::MappedFile* file = nullptr;
  if (options.access == FileAccess::copy) {
    if (options.max_memory != 0 && f.size > options.max_memory)
      over_limit(path, "reading the archive", f.size, options.max_memory);
    file = read_private(f, path);
  } else {
    file = detail::MappedFile::map_readonly(f.fd, f.size, path);
  }
  const detail::MappedFile::Holder drop{file};
  const std::uint64_t copied = options.access == FileAccess::copy ? f.size : 0;  // held already
  return detail::open_archive_image(file, options.verify, path + ": Archive", options.max_memory,
                                    copied);
}

OpenedArchive open_archive(const std::string& path, ArchiveVerify verify) {
  ArchiveOpenOptions options;
  options.verify = verify;
  return open_archive(path, options);
}

// ---- streamed reading ------------------------------------------------------------------------

struct ArchiveReader::State {
  std::string path;
  OpenFile file;
  std::vector<std::uint8_t> tables_bytes;
  Header header;
  Tables tables;
  ArchiveInfo info;
  explicit State(const std::string& p) : path(p), file(p) {}
  [[nodiscard]] SszReader reader() const { return SszReader({}, path + ": Archive"); }
};

ArchiveReader::ArchiveReader(const std::string& path, std::uint64_t max_memory)
    : state_(std::make_unique<State>(path)) {
  State& s = *state_;
  std::vector<std::uint8_t> head(HEADER_SIZE);
  if (s.file.size >= HEADER_SIZE)
    read_exact(s.file.fd, head.data(), HEADER_SIZE, 0, s.file.size, path);
  SszReader r(head, path + ": Archive");
  s.header = parse_header(r, head, s.file.size);
  const std::uint64_t len = tables_size(s.header);
  if (max_memory != 0 && len > max_memory)
    over_limit(path, "reading the archive's tables", len, max_memory);
  s.tables_bytes.resize(len);
  read_exact(s.file.fd, s.tables_bytes.data(), len, s.header.tables_offset, s.file.size, path);
  s.tables = parse_tables(r, s.header, s.tables_bytes.data());
  s.info = info_of(s.header, s.tables, s.file.size);
}

ArchiveReader::~ArchiveReader() = default;
ArchiveReader::ArchiveReader(ArchiveReader&&) noexcept = default;
ArchiveReader& ArchiveReader::operator=(ArchiveReader&&) noexcept = default;

const ArchiveInfo& ArchiveReader::info() const noexcept { return state_->info; }

void ArchiveReader::check_root() const {
  const State& s = *state_;
  const Hash32 root = flushed_root_from_tables(s.header, s.tables);
  if (root != s.header.root) {
    s.reader().fail(
        "root", 72,
        "recorded root does not match the root of the recorded page hashes " + to_hex(root));
  }
}

void ArchiveReader::verify() const {
  const State& s = *state_;
  SszReader r = s.reader();
  check_root();
  constexpr std::size_t BATCH = 256;  // pages per read: 1 MiB
  const auto buffer = std::make_unique<std::uint8_t[]>(BATCH * PAGE_SIZE);
  std::vector<Hash32> roots(BATCH);
  for (std::uint64_t first = 0; first < s.header.payload_count; first += BATCH) {
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(BATCH, s.header.payload_count - first));
    read_exact(s.file.fd, buffer.get(), n * PAGE_SIZE, HEADER_SIZE + first * PAGE_SIZE, s.file.size,
               s.path);
    hash_pages(s.header.digest, buffer.get(), n, roots.data());
    for (std::size_t i = 0; i < n; ++i) check_payload(r, s.header, s.tables, first + i, roots[i]);
  }
}

void ArchiveReader::for_each_page(
    const std::function<void(std::uint64_t, const std::uint8_t*)>& fn) const {
  const State& s = *state_;
  SszReader r = s.reader();
  if (s.tables.flushed_missing != 0) {
    std::uint64_t index = 0;
    Hash32 hash{};
    bool found = false;
    for_each_flushed(s.header, s.tables, [&](std::uint64_t i, std::uint32_t ref) {
      if (!found && is_missing_ref(ref)) {
        found = true;
        index = i;
        hash = recorded_hash(s.tables, ref);
      }
    });
    throw MissingPage(s.path, static_cast<std::uint32_t>(index), hash);
  }
  // Pages go out in batches: each distinct payload of a batch read once (consecutive payloads
  // in one read), hashed, checked, then handed to fn for every page that names it — the bytes
  // fn sees are the bytes that were checked, and a payload named by many pages (a crafted
  // archive can name one payload 2^32 times) is read and hashed once per batch, not per page.
  constexpr std::size_t BATCH = 256;
  const auto buffer = std::make_unique<std::uint8_t[]>(BATCH * PAGE_SIZE);
  std::vector<Hash32> roots(BATCH);
  std::vector<std::pair<std::uint64_t, std::uint32_t>> batch;  // (page index, payload)
  std::vector<std::uint32_t> distinct;                         // payloads in buffer order
  std::vector<std::size_t> slot_of;                            // batch entry → buffer slot
  batch.reserve(BATCH);
  const auto flush = [&] {
    distinct.clear();
    slot_of.clear();
    for (const auto& [index, ref] : batch) {
      (void)index;
      // Entries ascend by page, so repeats of a payload are usually adjacent; a short look back
      // finds them without a map.
      std::size_t slot = distinct.size();
      for (std::size_t back = 0; back < std::min<std::size_t>(distinct.size(), 8); ++back) {
        if (distinct[distinct.size() - 1 - back] == ref) slot = distinct.size() - 1 - back;
      }
      if (slot == distinct.size()) distinct.push_back(ref);
      slot_of.push_back(slot);
    }
    for (std::size_t i = 0; i < distinct.size();) {
      std::size_t run = 1;
      while (i + run < distinct.size() && distinct[i + run] == distinct[i] + run) ++run;
      read_exact(s.file.fd, buffer.get() + i * PAGE_SIZE, run * PAGE_SIZE,
                 HEADER_SIZE + std::uint64_t{distinct[i]} * PAGE_SIZE, s.file.size, s.path);
      i += run;
    }
    hash_pages(s.header.digest, buffer.get(), distinct.size(), roots.data());
    for (std::size_t i = 0; i < distinct.size(); ++i)
      check_payload(r, s.header, s.tables, distinct[i], roots[i]);
    for (std::size_t i = 0; i < batch.size(); ++i)
      fn(batch[i].first, buffer.get() + slot_of[i] * PAGE_SIZE);
    batch.clear();
  };
  for_each_flushed(s.header, s.tables, [&](std::uint64_t index, std::uint32_t ref) {
    batch.emplace_back(index, ref);
    if (batch.size() == BATCH) flush();
  });
  if (!batch.empty()) flush();
}

ArchiveInfo verify_archive(const std::string& path) {
  const ArchiveReader reader(path);
  reader.verify();
  return reader.info();
}

}  // namespace datacap
