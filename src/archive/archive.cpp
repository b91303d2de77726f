// Snapshot archives (docs/format.md §2).
#include "datacap/archive.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "archive/archive_internal.hpp"
#include "codec/reader.hpp"
#include "common/thread_pool.hpp"
#include "datacap/error.hpp"
#include "slab/slot_tree.hpp"
#include "tree/merkle.hpp"

namespace datacap {

using detail::PageNode;
using detail::put_u32;
using detail::put_u64;
using detail::SszReader;

namespace {

constexpr char MAGIC[8] = {'D', 'C', 'A', 'P', 'A', 'R', 'C', '\0'};
constexpr std::uint32_t VERSION = 1;
constexpr std::size_t HEADER_SIZE = PAGE_SIZE;
constexpr std::size_t HEADER_HASHED = 104;  // the header hash covers bytes [0, 104)
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
  put_u32(out + 8, VERSION);
  out[12] = static_cast<std::uint8_t>(h.digest);
  out[13] = h.dirty ? 1 : 0;
  put_u64(out + 16, h.content_len);
  put_u64(out + 24, HEADER_SIZE);  // payload_offset
  put_u64(out + 32, h.payload_count);
  put_u64(out + 40, h.backing_count);
  put_u64(out + 48, h.overlay_count);
  put_u64(out + 56, h.missing_count);
  put_u64(out + 64, h.tables_offset);
  std::memcpy(out + 72, h.root.data(), 32);
  const Hash32 check = digest_bytes(h.digest, std::span<const std::uint8_t>(out, HEADER_HASHED));
  std::memcpy(out + HEADER_HASHED, check.data(), 32);
}

// ---- writing ---------------------------------------------------------------------------------

// A file written beside its final path and renamed into place only when complete.
class PendingFile {
 public:
  explicit PendingFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp-" + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw IoError(tmp_, "cannot create: " + system_message());
  }
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  ~PendingFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  void write_at(std::uint64_t off, const void* data, std::size_t len) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (len > 0) {
      const ssize_t n = ::pwrite(fd_, p, len, static_cast<off_t>(off));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw IoError(tmp_, "write failed: " + system_message());
      }
      p += n;
      off += static_cast<std::uint64_t>(n);
      len -= static_cast<std::size_t>(n);
    }
  }
  void commit() {
    if (::fsync(fd_) != 0) throw IoError(tmp_, "fsync failed: " + system_message());
    ::close(fd_);
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) throw IoError(path_, "cannot rename into place: " + system_message());
    committed_ = true;
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

struct HashKey {
  std::size_t operator()(const Hash32& h) const noexcept {
    std::size_t v;
    std::memcpy(&v, h.data(), sizeof v);
    return v;
  }
};

// What every writer shares: payload dedup, the tables, and the final layout.
class ArchiveBuilder {
 public:
  ArchiveBuilder(const std::string& path, Digest digest) : file_(path), digest_(digest) {}

  Digest digest() const { return digest_; }

  std::uint32_t payload(const std::uint8_t* page, const Hash32& root) {
    if (auto it = payloads_.find(root); it != payloads_.end()) return it->second;
    if (payload_hashes_.size() >= MAX_PAYLOADS) throw OutOfRange("archive: more than 2^31 - 1 distinct pages");
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
    std::vector<std::uint8_t> tables(32 * (payload_hashes_.size() + missing_.size()) + 8 * (backing_.size() + overlay_.size()));
    std::uint8_t* p = tables.data();
    for (const Hash32& x : payload_hashes_) p = std::copy(x.begin(), x.end(), p);
    for (const Hash32& x : missing_) p = std::copy(x.begin(), x.end(), p);
    for (const auto* table : {&backing_, &overlay_}) {
      for (const Entry& e : *table) {
        put_u32(p, e.page_index);
        put_u32(p + 4, e.ref);
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
    info.missing_pages = h.missing_count;
    info.dirty_pages = h.overlay_count;
    info.stored_pages = h.backing_count + h.overlay_count - h.missing_count;
    info.file_size = h.tables_offset + tables.size();
    info.root = root;
    return info;
  }

 private:
  PendingFile file_;
  Digest digest_;
  std::unordered_map<Hash32, std::uint32_t, HashKey> payloads_;
  std::vector<Hash32> payload_hashes_;
  std::vector<Hash32> missing_;
  std::vector<Entry> backing_, overlay_;
};

}  // namespace

ArchiveInfo write_archive(const DataCap& cap, const std::string& path, Digest digest) {
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
  cap.backing().for_each_stored([&](std::uint32_t i, const PageSlot& s) { add(b.backing(), i, s); });
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
      s.builder.backing().push_back(Entry{static_cast<std::uint32_t>(s.pages), s.builder.payload(pages[i], roots[i])});
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
  if (pages > MAX_PAGE_COUNT) throw OutOfRange("ArchiveWriter: size " + std::to_string(size) + " exceeds 2^32 pages");
  const Hash32 root = s.root.finish(pages * PAGE_SIZE);
  return s.builder.finish(pages * PAGE_SIZE, root);
}

// ---- reading ---------------------------------------------------------------------------------

namespace detail {

OpenedArchive open_archive_image(MappedFile* file, ArchiveVerify verify) {
  const std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(file->base), file->len);
  SszReader r(bytes, "Archive");
  if (bytes.size() < HEADER_SIZE) {
    r.fail("header", 0, "file of " + std::to_string(bytes.size()) + " bytes is shorter than the 4096-byte header");
  }
  if (std::memcmp(bytes.data(), MAGIC, 8) != 0) r.fail("magic", 0, "not a datacap archive");
  (void)r.take("magic", 8);
  const std::uint32_t version = r.u32("version");
  if (version != VERSION) r.fail("version", 8, "format version " + std::to_string(version) + " (this library reads 1)");
  Header h;
  const std::uint8_t digest_id = r.u8("digest");
  if (digest_id > 1) r.fail("digest", 12, "unknown digest id " + std::to_string(digest_id));
  h.digest = static_cast<Digest>(digest_id);
  const std::uint8_t flags = r.u8("flags");
  if (flags > 1) r.fail("flags", 13, "unknown flags " + std::to_string(flags));
  h.dirty = flags == 1;
  if (r.u8("reserved") != 0 || r.u8("reserved") != 0) r.fail("reserved", 14, "reserved bytes are not zero");
  // The header hash first: no other field is trusted before it matches.
  const Hash32 check = digest_bytes(h.digest, bytes.first(HEADER_HASHED));
  if (std::memcmp(check.data(), bytes.data() + HEADER_HASHED, 32) != 0) {
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
  if (h.content_len % PAGE_SIZE != 0 || h.content_len == 0 || h.content_len / PAGE_SIZE > MAX_PAGE_COUNT) {
    r.fail("content_len", 16, std::to_string(h.content_len) + " is not 1 .. 2^32 whole pages");
  }
  if (payload_offset != HEADER_SIZE) r.fail("payload_offset", 24, std::to_string(payload_offset) + " != 4096");
  if (h.payload_count > MAX_PAYLOADS) r.fail("payload_count", 32, std::to_string(h.payload_count) + " exceeds 2^31 - 1");
  if (h.missing_count > MAX_PAYLOADS) r.fail("missing_count", 56, std::to_string(h.missing_count) + " exceeds 2^31 - 1");
  const std::uint64_t page_count = h.content_len / PAGE_SIZE;
  if (h.backing_count > page_count) r.fail("backing_count", 40, std::to_string(h.backing_count) + " > page_count " + std::to_string(page_count));
  if (h.overlay_count > page_count) r.fail("overlay_count", 48, std::to_string(h.overlay_count) + " > page_count " + std::to_string(page_count));
  if (h.dirty != (h.overlay_count != 0)) r.fail("flags", 13, "the dirty flag disagrees with overlay_count");
  if (h.tables_offset != HEADER_SIZE + h.payload_count * PAGE_SIZE) {
    r.fail("tables_offset", 64, std::to_string(h.tables_offset) + " != 4096 + 4096 × payload_count");
  }
  // Every count is bounded above, so these sums cannot overflow.
  const std::uint64_t expected_size = h.tables_offset + 32 * (h.payload_count + h.missing_count) +
                                      8 * (h.backing_count + h.overlay_count);
  if (bytes.size() != expected_size) {
    r.fail("file", bytes.size() < expected_size ? bytes.size() : expected_size,
           "file is " + std::to_string(bytes.size()) + " bytes; its header describes " + std::to_string(expected_size));
  }

  // Tables.
  const std::uint8_t* hashes = bytes.data() + h.tables_offset;
  const std::uint8_t* missing_hashes = hashes + 32 * h.payload_count;
  const std::uint8_t* entries = missing_hashes + 32 * h.missing_count;
  static_assert(std::endian::native == std::endian::little, "archive entries are read in place");
  auto entry_at = [&](std::uint64_t k) {
    Entry e;
    std::memcpy(&e.page_index, entries + 8 * k, 4);
    std::memcpy(&e.ref, entries + 8 * k + 4, 4);
    return e;
  };
  std::uint64_t missing_entries = 0;
  for (int t = 0; t < 2; ++t) {
    const std::uint64_t first = t == 0 ? 0 : h.backing_count;
    const std::uint64_t count = t == 0 ? h.backing_count : h.overlay_count;
    const char* table = t == 0 ? "backing" : "overlay";
    std::uint64_t previous = 0;
    for (std::uint64_t k = 0; k < count; ++k) {
      const Entry e = entry_at(first + k);
      const std::uint64_t at = static_cast<std::uint64_t>(entries - bytes.data()) + 8 * (first + k);
      // The field's name is built only on failure: this loop runs once per page.
      const auto field = [&] { return std::string(table) + "[" + std::to_string(k) + "]"; };
      if (e.page_index >= page_count) r.fail(field(), at, "page_index " + std::to_string(e.page_index) + " >= page_count " + std::to_string(page_count));
      if (k > 0 && e.page_index <= previous) r.fail(field(), at, "page_index " + std::to_string(e.page_index) + " is not above the previous entry's");
      previous = e.page_index;
      if (e.ref == REF_ZERO) {
        if (t == 0) r.fail(field(), at + 4, "a backing page cannot be an explicit zero page");
      } else if ((e.ref & REF_MISSING) != 0) {
        if ((e.ref & ~REF_MISSING) >= h.missing_count) r.fail(field(), at + 4, "missing index " + std::to_string(e.ref & ~REF_MISSING) + " >= missing_count");
        ++missing_entries;
      } else if (e.ref >= h.payload_count) {
        r.fail(field(), at + 4, "payload " + std::to_string(e.ref) + " >= payload_count " + std::to_string(h.payload_count));
      }
    }
  }

  // Content (full): every payload against its recorded hash, in batches on all cores.
  const std::uint8_t* payloads = bytes.data() + HEADER_SIZE;
  std::vector<Hash32> verified;
  if (verify == ArchiveVerify::full) {
    verified.resize(h.payload_count);
    constexpr std::size_t TASK = 64;
    parallel_for((h.payload_count + TASK - 1) / TASK, [&](std::size_t t) {
      const std::size_t begin = t * TASK, end = std::min<std::size_t>(h.payload_count, begin + TASK);
      std::vector<const std::uint8_t*> pages;
      for (std::size_t i = begin; i < end; ++i) pages.push_back(payloads + i * PAGE_SIZE);
      page_roots(h.digest, pages.data(), pages.size(), verified.data() + begin);
    });
    const Hash32& zero_page_root = zero_hash(h.digest, PAGE_DEPTH);
    for (std::uint64_t i = 0; i < h.payload_count; ++i) {
      const std::uint64_t at = h.tables_offset + 32 * i;
      if (std::memcmp(verified[i].data(), hashes + 32 * i, 32) != 0) {
        r.fail("payload_hashes[" + std::to_string(i) + "]", at, "payload " + std::to_string(i) + " does not match its recorded hash");
      }
      if (verified[i] == zero_page_root) r.fail("payload_hashes[" + std::to_string(i) + "]", at, "payload " + std::to_string(i) + " is all zeros (zero pages are elided)");
    }
  }

  if (verify == ArchiveVerify::structure) {
    // Lazy verification: each payload is checked against its recorded root when first hashed.
    file->payloads = payloads;
    file->recorded_roots = hashes;
    file->recorded_roots_offset = h.tables_offset;
    file->recorded_digest = h.digest;
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
    ~ReturnUnused() { file->refs.fetch_sub(static_cast<std::uint32_t>(taken - used), std::memory_order_relaxed); }
  } return_unused{file, h.payload_count, borrowed_count};
  // nodes[i] is borrowed: its first use hands the creation reference to the tree, later uses
  // add one each, so no reference is left to drop (and a throw leaves only tree-owned pages).
  // (Building subtrees on several threads was measured slower: a compare-and-swap per page and
  // cross-thread pool traffic cost more than the split saves.)
  std::vector<PageNode*> nodes(h.payload_count, nullptr);
  auto slot_node = [&](std::uint32_t ref) -> PageNode* {
    if ((ref & REF_MISSING) != 0 && ref != REF_ZERO) {
      Hash32 hm;
      std::memcpy(hm.data(), missing_hashes + 32 * (ref & ~REF_MISSING), 32);
      return PageNode::missing(hm);
    }
    PageNode*& n = nodes[ref];
    if (n == nullptr) {
      n = PageNode::borrowed(file, payloads + std::uint64_t{ref} * PAGE_SIZE, /*retain_file=*/false);
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
    const Entry e = entry_at(k);
    if (leaf == nullptr || e.page_index - leaf_first >= FANOUT) {
      leaf = tree_leaf_for_write(root, slab.levels(), e.page_index);
      leaf_first = e.page_index & ~std::uint64_t{FANOUT - 1};
    }
    leaf->child[e.page_index - leaf_first] = slot_node(e.ref);
  }
  DataCap cap = DataCap::from_backing(std::move(slab));
  for (std::uint64_t k = 0; k < h.overlay_count; ++k) {
    const Entry e = entry_at(h.backing_count + k);
    cap.insert_overlay_page(e.page_index, e.ref == REF_ZERO ? PageSlot::loaded(PageRef::copy_of({}))
                                                            : PageNode::adopt_slot(slot_node(e.ref)));
  }
  if (verify == ArchiveVerify::full) {
    const Hash32 actual = cap.flush().hash_tree_root(h.digest);
    if (actual != h.root) r.fail("root", 72, "recorded root does not match the content's root " + to_hex(actual));
  }
  OpenedArchive out;
  out.info.digest = h.digest;
  out.info.content_len = h.content_len;
  out.info.page_count = page_count;
  out.info.unique_pages = h.payload_count;
  out.info.missing_pages = missing_entries;
  out.info.dirty_pages = h.overlay_count;
  out.info.stored_pages = h.backing_count + h.overlay_count - out.info.missing_pages;
  out.info.file_size = bytes.size();
  out.info.root = h.root;
  out.cap = std::move(cap);
  return out;
}

}  // namespace detail

OpenedArchive open_archive(const std::string& path, ArchiveVerify verify) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(path, "cannot open: " + system_message());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw IoError(path, "cannot stat: " + system_message());
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw IoError(path, "not a regular file");
  }
  const auto len = static_cast<std::size_t>(st.st_size);
  if (len < HEADER_SIZE) {
    ::close(fd);
    throw DecodeError("Archive.header", 0, "file of " + std::to_string(len) + " bytes is shorter than the 4096-byte header");
  }
  detail::MappedFile* file = nullptr;
  try {
    file = detail::MappedFile::map_readonly(fd, len, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  const detail::MappedFile::Holder drop{file};
  try {
    return detail::open_archive_image(file, verify);
  } catch (const DecodeError& e) {
    throw DecodeError(path + ": " + e.field(), e.offset(), std::string(e.what()).substr(std::string(e.what()).find(": ") + 2));
  }
}

ArchiveInfo verify_archive(const std::string& path) { return open_archive(path, ArchiveVerify::full).info; }

}  // namespace datacap
