// The LMDB store (open_lmdb_store): pages, cap records and a format marker in one LMDB
// environment.
//
// Databases: "pages", "caps" (cap root → record, see store/record.hpp), "meta" ("format" →
// FORMAT). A page is its bytes trimmed of trailing zeros, split at PAGE_HEAD: the key is its
// root followed by the bytes past PAGE_HEAD (none to 16), the value the first ≤ PAGE_HEAD bytes.
// LMDB stores a value larger than half a page on its own overflow pages behind a 16-byte page
// header, so a whole 4096-byte value would take two 4 KiB pages; split, it takes one, and the
// tail rides in the key at no extra lookup. A page is found by its root with a range search
// (the first key at or after the root, checked to start with it).
//
// LMDB maps data.mdb and trusts it (no checksums); what the store checks around that, and what
// it cannot, is in docs/format.md §3 "What LMDB cannot detect" and store/lmdb_file.hpp.
#include <fcntl.h>
#include <lmdb.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <shared_mutex>
#include <thread>
#include <unordered_set>

#include "datacap/error.hpp"
#include "datacap/store.hpp"
#include "page/page_node.hpp"
#include "store/lmdb_file.hpp"
#include "store/record.hpp"

namespace datacap {

using detail::PageNode;

namespace {

// What open_lmdb_store returns; its behavior is documented there (datacap/store.hpp).
class LmdbStore final : public PageStore {
 public:
  LmdbStore(const std::string& path, LmdbOptions options);
  ~LmdbStore() override;

  [[nodiscard]] std::string name() const override;  // the directory
  [[nodiscard]] bool is_read_only() const noexcept override;

 protected:
  void do_put_pages(std::span<const PageRecord> pages) override;
  void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const override;
  bool do_has_page(const Hash32& root) const override;
  void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const override;
  std::uint64_t do_page_count() const override;
  void do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) override;
  bool do_has_cap(const Hash32& cap_root) const override;
  bool do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const override;
  void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const override;
  GcReport do_gc(std::span<const Hash32> keep) override;
  std::unique_ptr<Lock> do_lock(bool exclusive) const override;
  StoreVerifyReport do_verify() const override;
  void do_check_structure() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

constexpr std::size_t PAGE_HEAD = PAGE_SIZE - 16;  // one LMDB overflow page after its header
constexpr std::string_view FORMAT = "datacap-page-store-1";

MDB_val val_of(const void* data, std::size_t size) {
  return MDB_val{size, const_cast<void*>(data)};
}
MDB_val key_of(const Hash32& h) { return val_of(h.data(), h.size()); }

Hash32 hash_of(const MDB_val& v) {
  Hash32 h{};
  if (v.mv_size == h.size()) std::memcpy(h.data(), v.mv_data, h.size());
  return h;
}

}  // namespace

// ---- data.mdb before LMDB maps it (store/lmdb_file.hpp) ---------------------------------------

namespace {

// LMDB 0.9's layout on 64-bit little-endian builds (mdb.c: MDB_page, MDB_meta, MDB_db, MDB_node).
constexpr std::size_t LMDB_PAGE_HEADER = 16;  // pgno u64, pad u16, flags u16, lower u16, upper u16
constexpr std::size_t LMDB_META_LEN = 136;    // sizeof(MDB_meta)
constexpr std::size_t META_MAGIC = 0, META_VERSION = 4, META_DBS = 24, META_LAST_PGNO = 120,
                      META_TXNID = 128;
constexpr std::size_t DB_LEN = 48, DB_PAD = 0,
                      DB_ROOT = 40;  // MDB_db; the free tree's pad is the page size
constexpr std::uint16_t P_BRANCH = 0x01, P_LEAF = 0x02, P_OVERFLOW = 0x04, P_META = 0x08,
                        P_DIRTY = 0x10, P_LEAF2 = 0x20;
constexpr std::uint16_t F_BIGDATA = 0x01;  // a leaf node whose value is on overflow pages
constexpr std::uint32_t LMDB_MAGIC = 0xBEEFC0DE;
constexpr std::uint32_t LMDB_DATA_VERSION = 1;
constexpr std::uint64_t P_INVALID = ~std::uint64_t{0};  // the root of an empty tree
constexpr std::uint64_t NUM_METAS = 2;
constexpr std::string_view FREE_TREE = "free";  // the name TreeWalker::walk knows FREE_DBI by
constexpr int LMDB_MAX_DEPTH = 32;              // CURSOR_STACK: LMDB refuses deeper trees
// LMDB uses the OS page size, at most 32 KiB (MAX_PAGESIZE) and in any case below 64 KiB
// (node offsets are 16-bit); accepting [512, 65536] rejects only impossible sizes.
constexpr std::uint32_t LMDB_MIN_PAGE = 512, LMDB_MAX_PAGE = 65536;
// A file may end before its last page only by pages freed in the transaction that allocated
// them, a handful; past this many, the walk is not worth it: the file was truncated.
constexpr std::uint64_t MAX_UNWRITTEN_PAGES = std::uint64_t{1} << 20;

constexpr bool LMDB_LAYOUT_KNOWN =
    sizeof(std::size_t) == 8 && sizeof(void*) == 8 && std::endian::native == std::endian::little;

// A field of one of LMDB's structs, which LMDB writes in the host's byte order (not the
// little-endian wire format of common/little_endian.hpp): read only where LMDB_LAYOUT_KNOWN.
template <typename T>
T load(const std::uint8_t* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::string hex_of(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// data.mdb opened for pread.
class DataFile {
 public:
  explicit DataFile(const std::string& file) : file_(file) {
    // O_NONBLOCK: a FIFO in data.mdb's place would block the open until a writer came (and
    // LMDB's own open after it); it is refused below instead. pread ignores the flag.
    fd_ = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) {
      if (errno == ENOENT) return;
      throw IoError(file, std::string("cannot open: ") + std::strerror(errno));
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      const int err = errno;
      ::close(fd_);
      throw IoError(file, std::string("cannot stat: ") + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      fd_ = -1;
      throw IoError(file, "not a regular file (LMDB's data file must be one)");
    }
    len_ = static_cast<std::uint64_t>(st.st_size);
  }
  // The length now: a file read after another process's commit holds at least that commit's
  // pages (LMDB writes them before the meta page that names them).
  void refresh_len() {
    struct stat st {};
    if (::fstat(fd_, &st) != 0)
      throw IoError(file_, std::string("cannot stat: ") + std::strerror(errno));
    len_ = static_cast<std::uint64_t>(st.st_size);
  }
  ~DataFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  DataFile(const DataFile&) = delete;
  DataFile& operator=(const DataFile&) = delete;

  [[nodiscard]] bool exists() const noexcept { return fd_ >= 0; }
  [[nodiscard]] std::uint64_t len() const noexcept { return len_; }
  [[nodiscard]] const std::string& file() const noexcept { return file_; }

  // Bytes [at, at + n): a DecodeError when they lie past the end of the file.
  void read(std::uint64_t at, void* out, std::size_t n, const std::string& what) const {
    if (at > len_ || n > len_ - at) {
      throw DecodeError(
          file_ + ": " + what, at,
          "ends past the end of the file (" + std::to_string(len_) + " bytes): truncated");
    }
    auto* p = static_cast<std::uint8_t*>(out);
    while (n > 0) {
      const ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(at));
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) throw IoError(file_, std::string("cannot read: ") + std::strerror(errno));
      if (got == 0)
        throw DecodeError(file_ + ": " + what, at, "the file ended while being read: truncated");
      p += got;
      at += static_cast<std::uint64_t>(got);
      n -= static_cast<std::size_t>(got);
    }
  }

 private:
  std::string file_;
  int fd_ = -1;
  std::uint64_t len_ = 0;
};

// MDB_db: the record of one B-tree (in a meta page for the free-page and main trees, in the
// main tree for a named database).
struct DbRecord {
  std::uint16_t flags = 0, depth = 0;
  std::uint64_t branch_pages = 0, leaf_pages = 0, overflow_pages = 0, entries = 0;
  std::uint64_t root = P_INVALID;
};
constexpr std::size_t DB_FLAGS = 4, DB_DEPTH = 6, DB_BRANCH = 8, DB_LEAF = 16, DB_OVERFLOW = 24,
                      DB_ENTRIES = 32;
constexpr std::uint16_t MDB_INTEGERKEY_FLAG = 0x08;  // the free-page tree's txnid keys
// REVERSEKEY, DUPSORT, DUPFIXED, INTEGERDUP, REVERSEDUP: how a tree's keys and values are read.
constexpr std::uint16_t TREE_SHAPE_FLAGS = 0x02 | 0x04 | 0x10 | 0x20 | 0x40;
constexpr std::uint16_t F_SUBDATA = 0x02, F_DUPDATA = 0x04;

DbRecord parse_db(const std::uint8_t* p) {
  DbRecord db;
  db.flags = load<std::uint16_t>(p + DB_FLAGS);
  db.depth = load<std::uint16_t>(p + DB_DEPTH);
  db.branch_pages = load<std::uint64_t>(p + DB_BRANCH);
  db.leaf_pages = load<std::uint64_t>(p + DB_LEAF);
  db.overflow_pages = load<std::uint64_t>(p + DB_OVERFLOW);
  db.entries = load<std::uint64_t>(p + DB_ENTRIES);
  db.root = load<std::uint64_t>(p + DB_ROOT);
  return db;
}

struct MetaPage {
  std::string fault;  // empty when valid
  std::uint32_t page_size = 0;
  std::uint64_t last_pgno = 0, txnid = 0;
  DbRecord free_db, main_db;
};

// Meta page `index` as mdb_env_read_header checks it (P_META, magic, data version), plus what
// LMDB takes on trust and would follow into the map: its own page number, the page size, the
// last page number and the two tree roots.
MetaPage parse_meta(const std::uint8_t* page, std::uint64_t index) {
  MetaPage m;
  const std::uint8_t* meta = page + LMDB_PAGE_HEADER;
  const std::uint64_t pgno = load<std::uint64_t>(page);
  const std::uint16_t flags = load<std::uint16_t>(page + 10);
  const std::uint32_t magic = load<std::uint32_t>(meta + META_MAGIC);
  const std::uint32_t version = load<std::uint32_t>(meta + META_VERSION);
  m.page_size = load<std::uint32_t>(meta + META_DBS + DB_PAD);
  m.free_db = parse_db(meta + META_DBS);
  m.main_db = parse_db(meta + META_DBS + DB_LEN);
  m.last_pgno = load<std::uint64_t>(meta + META_LAST_PGNO);
  m.txnid = load<std::uint64_t>(meta + META_TXNID);
  const auto root_ok = [&](std::uint64_t root) {
    return root == P_INVALID || (root >= NUM_METAS && root <= m.last_pgno);
  };
  if ((flags & P_META) == 0) {
    m.fault = "not a meta page (flags " + hex_of(flags) + ")";
  } else if (magic != LMDB_MAGIC) {
    m.fault = "magic " + hex_of(magic) + " is not LMDB's 0xbeefc0de";
  } else if (version != LMDB_DATA_VERSION) {
    m.fault = "LMDB data version " + std::to_string(version) + ", expected 1";
  } else if (pgno != index) {
    m.fault = "holds page number " + std::to_string(pgno);
  } else if (!std::has_single_bit(m.page_size) || m.page_size < LMDB_MIN_PAGE ||
             m.page_size > LMDB_MAX_PAGE) {
    m.fault = "page size " + std::to_string(m.page_size) + " is not a power of two in [512, 65536]";
  } else if (m.last_pgno < NUM_METAS - 1 || m.last_pgno > (std::uint64_t{1} << 48)) {
    m.fault = "last page number " + std::to_string(m.last_pgno) + " is out of range";
  } else if ((m.free_db.flags & (TREE_SHAPE_FLAGS | MDB_INTEGERKEY_FLAG)) != MDB_INTEGERKEY_FLAG ||
             (m.main_db.flags & (TREE_SHAPE_FLAGS | MDB_INTEGERKEY_FLAG)) != 0) {
    // LMDB believes the flags that say how a tree is read (a DUPSORT bit on the free-page tree
    // trips an assertion in the next write's cursor). mdb_env_init_meta gives the free-page
    // tree INTEGERKEY and none of the others (its other bits are the environment's options,
    // e.g. NOSUBDIR from mdb_copy: harmless); the main tree gets none.
    m.fault = "tree flags (free " + hex_of(m.free_db.flags) + ", main " + hex_of(m.main_db.flags) +
              ") say the trees are not LMDB's own kind";
  } else if (!root_ok(m.free_db.root) || !root_ok(m.main_db.root)) {
    m.fault = "a tree root (free " + std::to_string(m.free_db.root) + ", main " +
              std::to_string(m.main_db.root) + ") is not a page in [2, " +
              std::to_string(m.last_pgno) + "]";
  }
  return m;
}

struct Metas {
  MetaPage meta[NUM_METAS];
  int newest = 0;
};

// Both meta pages, valid (LMDB 0.9 refuses a file unless both are: MDB_INVALID).
Metas read_metas(const DataFile& in) {
  const std::string& file = in.file();
  if (in.len() < LMDB_PAGE_HEADER + LMDB_META_LEN) {
    throw DecodeError(file, in.len(),
                      "the file is " + std::to_string(in.len()) +
                          " bytes, shorter than LMDB's meta page: truncated");
  }
  Metas out;
  std::uint8_t buf[LMDB_PAGE_HEADER + LMDB_META_LEN];
  in.read(0, buf, sizeof buf, "meta page 0");
  out.meta[0] = parse_meta(buf, 0);
  if (!out.meta[0].fault.empty()) throw DecodeError(file + ": meta page 0", 0, out.meta[0].fault);
  // LMDB reads meta page 1 at meta page 0's page size.
  const std::uint32_t page_size = out.meta[0].page_size;
  if (in.len() < NUM_METAS * page_size) {
    throw DecodeError(file, in.len(),
                      "the file is " + std::to_string(in.len()) +
                          " bytes, shorter than LMDB's two meta pages of " +
                          std::to_string(page_size) + " bytes: truncated");
  }
  in.read(page_size, buf, sizeof buf, "meta page 1");
  out.meta[1] = parse_meta(buf, 1);
  if (out.meta[1].fault.empty() && out.meta[1].page_size != page_size) {
    out.meta[1].fault = "page size " + std::to_string(out.meta[1].page_size) +
                        ", meta page 0 says " + std::to_string(page_size);
  }
  if (!out.meta[1].fault.empty())
    throw DecodeError(file + ": meta page 1", page_size, out.meta[1].fault);
  out.newest = out.meta[0].txnid < out.meta[1].txnid ? 1 : 0;  // mdb_env_pick_meta
  return out;
}

// An entry of a leaf page. An F_BIGDATA value is read from its overflow pages only when the
// walk reads values (else `value` is empty); value_len is its length either way.
struct TreeEntry {
  std::span<const std::uint8_t> key;
  std::span<const std::uint8_t> value;
  std::uint64_t value_len = 0;
  std::uint16_t node_flags = 0;
  std::uint64_t overflow_pgno = 0;  // an F_BIGDATA value's first page
};

// Reads B-trees of one snapshot with pread and checks every page before following a pointer
// out of it: its own page number, its kind against its level, the bounds of every node, at
// least two keys on a branch page (but in the free-page tree), child and overflow page numbers
// inside the snapshot (overflow pages inside the file), key order, and the page and entry
// counts of the tree's record. A page may be reached once across all the trees walked: a
// second reach (a cycle, a page in two places) is damage. Damage goes to `fault` and the walk
// goes on past it (skipping what it cannot trust); only an unreadable file (IoError) throws.
class TreeWalker {
 public:
  // REQUIRES: last_pgno < the file's pages + MAX_UNWRITTEN_PAGES (check_lmdb_file passed), so
  // the map of used pages is bounded by the file.
  TreeWalker(const DataFile& in, std::uint32_t page_size, std::uint64_t last_pgno)
      : in_(in), page_size_(page_size), last_pgno_(last_pgno), used_(last_pgno + 1, false) {}

  [[nodiscard]] std::uint32_t page_size() const noexcept { return page_size_; }
  [[nodiscard]] std::uint64_t last_pgno() const noexcept { return last_pgno_; }
  [[nodiscard]] bool used(std::uint64_t pgno) const { return used_[pgno]; }

  // OVPAGES: LMDB allocates exactly the pages a value and one page header need.
  [[nodiscard]] std::uint64_t overflow_pages(std::uint64_t value_len) const noexcept {
    return (LMDB_PAGE_HEADER - 1 + value_len) / page_size_ + 1;
  }

  // The header of the first overflow page of entry `e` (an F_BIGDATA entry of tree `name`,
  // from walk(): its pages lie inside the snapshot), read with pread: as overflow_header_sound,
  // or fault(message) and false. What mdb_cursor_del reads before freeing the value
  // (mdb_ovpage_free): a damaged page count frees pages still in use or asks for an absurd
  // allocation; P_DIRTY sends it through this transaction's own page lists (an assertion).
  template <typename Fault>
  bool check_overflow_header(const std::string& name, const TreeEntry& e, Fault&& fault) const {
    std::uint8_t header[LMDB_PAGE_HEADER];
    const std::uint64_t count = overflow_pages(e.value_len);
    if (read(e.overflow_pgno * page_size_, header, sizeof header) &&
        overflow_header_sound(header, e.overflow_pgno, count)) {
      return true;
    }
    fault("tree '" + name + "': page " + std::to_string(e.overflow_pgno) + ": not the first of " +
          std::to_string(count) + " overflow pages of a value of " + std::to_string(e.value_len) +
          " bytes");
    return false;
  }

  // Calls entry(const TreeEntry&) for every entry of tree `db` in key order, fault(message)
  // for every damage found. True when the tree is sound. `name` is "free" for the free-page
  // tree (LMDB's FREE_DBI), "main" for the main tree, else a named database's.
  template <typename Entry, typename Fault>
  bool walk(const std::string& name, const DbRecord& db, bool read_values, Entry&& entry,
            Fault&& fault) {
    bool sound = true;
    const bool free_tree = name == FREE_TREE;
    const auto bad = [&](std::uint64_t pgno, const std::string& what) {
      sound = false;
      fault("tree '" + name + "': page " + std::to_string(pgno) + ": " + what);
    };
    if (db.root == P_INVALID) {
      if (db.depth != 0 || db.entries != 0)
        bad(db.root, "an empty tree whose record says depth " + std::to_string(db.depth));
      return sound;
    }
    if (db.root < NUM_METAS || db.root > last_pgno_ || db.depth == 0 || db.depth > LMDB_MAX_DEPTH) {
      bad(db.root, "not the root of a tree of depth " + std::to_string(db.depth));
      return sound;
    }
    DbRecord counted;
    std::vector<std::pair<std::uint64_t, int>> stack = {{db.root, 1}};
    std::vector<std::uint8_t> page(page_size_), overflow;
    std::vector<std::uint8_t> previous;
    bool have_previous = false;
    const bool integer_keys = (db.flags & MDB_INTEGERKEY_FLAG) != 0;
    while (!stack.empty()) {
      const auto [pgno, level] = stack.back();
      stack.pop_back();
      if (!claim(pgno, 1)) {
        bad(pgno, "reached twice (a cycle, or a page in two places)");
        continue;
      }
      if (!read(pgno * page_size_, page.data(), page_size_)) {
        bad(pgno, "lies past the end of the file");
        continue;
      }
      const std::uint16_t flags = load<std::uint16_t>(page.data() + 10);
      const std::uint16_t lower = load<std::uint16_t>(page.data() + 12);
      const std::uint16_t upper = load<std::uint16_t>(page.data() + 14);
      const bool branch = (flags & P_BRANCH) != 0;
      if (load<std::uint64_t>(page.data()) != pgno) {
        bad(pgno, "holds page number " + std::to_string(load<std::uint64_t>(page.data())));
        continue;
      }
      // P_DIRTY is never written (mdb_page_flush clears it): on a mapped page it makes a write
      // modify the page in place (mdb_page_touch) — in LMDB's read-only map, a SIGSEGV.
      if (branch == ((flags & P_LEAF) != 0) ||
          (flags & (P_OVERFLOW | P_META | P_LEAF2 | P_DIRTY)) != 0) {
        bad(pgno, "not a branch or leaf page (flags " + hex_of(flags) + ")");
        continue;
      }
      if (branch == (level == db.depth)) {
        bad(pgno, std::string(branch ? "a branch" : "a leaf") + " page at level " +
                      std::to_string(level) + " of a tree of depth " + std::to_string(db.depth));
        continue;
      }
      if (lower <= LMDB_PAGE_HEADER || lower > upper || upper > page_size_ || lower % 2 != 0) {
        bad(pgno, "free space [" + std::to_string(lower) + ", " + std::to_string(upper) +
                      ") leaves no nodes inside the page");
        continue;
      }
      const std::size_t nodes = (lower - LMDB_PAGE_HEADER) / 2;  // NUMKEYS
      if (!nodes_tile(page.data(), nodes, upper, branch)) {
        // LMDB keeps a page's nodes packed from `upper` to its end; overlapping nodes make its
        // deletes move bytes past the page (a heap overflow inside mdb_cursor_del).
        bad(pgno, "its nodes overlap, leave gaps or end outside the page");
        continue;
      }
      if (branch && nodes < 2 && !free_tree) {
        // mdb_page_search_root asserts NUMKEYS(mp) > 1 on every branch page a search passes
        // through, root or not, in every tree but FREE_DBI (there it may pass a branch page
        // mid-rebalance, ITS#8336): LMDB collapses a root branch left with one child and merges
        // or refills any other branch page below two keys (mdb_rebalance). The page is still
        // read: its one child is walked.
        bad(pgno,
            "a branch page with " + std::to_string(nodes) +
                " key (LMDB asserts that a branch page outside the free-page tree has at least 2)");
      }
      ++(branch ? counted.branch_pages : counted.leaf_pages);
      std::vector<std::uint64_t> children;
      for (std::size_t i = 0; i < nodes; ++i) {
        const std::string node_name = "node " + std::to_string(i);
        const std::size_t at = load<std::uint16_t>(page.data() + LMDB_PAGE_HEADER + 2 * i);
        if (at < upper || at + 8 > page_size_) {
          bad(pgno, node_name + " lies outside the page");
          continue;
        }
        const std::uint8_t* node = page.data() + at;
        const std::uint64_t lo = load<std::uint16_t>(node), hi = load<std::uint16_t>(node + 2);
        const std::uint16_t node_flags = load<std::uint16_t>(node + 4);
        const std::size_t key_len = load<std::uint16_t>(node + 6);
        if (at + 8 + key_len > page_size_) {
          bad(pgno, node_name + "'s key ends outside the page");
          continue;
        }
        if (branch) {
          const std::uint64_t child = lo | hi << 16 | std::uint64_t{node_flags} << 32;
          if (child < NUM_METAS || child > last_pgno_) {
            bad(pgno, node_name + " points to page " + std::to_string(child));
            continue;
          }
          children.push_back(child);
          continue;
        }
        TreeEntry e;
        e.key = std::span<const std::uint8_t>(node + 8, key_len);
        e.value_len = lo | hi << 16;
        e.node_flags = node_flags;
        const std::size_t value_at = at + 8 + key_len;
        if ((node_flags & F_DUPDATA) != 0) {
          bad(pgno, node_name + " holds duplicate data (no datacap tree uses MDB_DUPSORT)");
          continue;
        }
        if ((node_flags & F_BIGDATA) != 0) {
          if (value_at + 8 > page_size_) {
            bad(pgno, node_name + "'s overflow page number ends outside the page");
            continue;
          }
          const std::uint64_t first = load<std::uint64_t>(page.data() + value_at);
          e.overflow_pgno = first;
          const std::uint64_t count = overflow_pages(e.value_len);
          if (first < NUM_METAS || first > last_pgno_ || count - 1 > last_pgno_ - first) {
            bad(pgno, node_name + "'s value is said to be on pages " + std::to_string(first) +
                          " to " + std::to_string(first + count - 1));
            continue;
          }
          if (!claim(first, count)) {
            bad(first, "an overflow page reached twice (a page in two places)");
            continue;
          }
          counted.overflow_pages += count;
          // The file may end before the snapshot's last page only on free pages (check_lmdb_file):
          // a value there is read past the end of LMDB's map, a SIGBUS.
          if ((first + count) * page_size_ > in_.len()) {
            bad(first, "overflow pages lie past the end of the file");
            continue;
          }
          if (read_values) {
            overflow.resize(LMDB_PAGE_HEADER + e.value_len);
            if (!read(first * page_size_, overflow.data(), overflow.size())) {
              bad(first, "overflow pages lie past the end of the file");
              continue;
            }
            if (!overflow_header_sound(overflow.data(), first, count)) {
              bad(first, "not the first of " + std::to_string(count) + " overflow pages of " +
                             node_name + " of page " + std::to_string(pgno));
              continue;
            }
            e.value =
                std::span<const std::uint8_t>(overflow.data() + LMDB_PAGE_HEADER, e.value_len);
          }
        } else {
          if (value_at + e.value_len > page_size_) {
            bad(pgno, node_name + "'s value ends outside the page");
            continue;
          }
          e.value = std::span<const std::uint8_t>(page.data() + value_at, e.value_len);
        }
        if (have_previous && !ascending(previous, e.key, integer_keys)) {
          bad(pgno,
              node_name + "'s key is not above the previous key (LMDB's searches would miss keys)");
        }
        previous.assign(e.key.begin(), e.key.end());
        have_previous = true;
        ++counted.entries;
        entry(e);
      }
      // Depth first, left to right: keys come in order.
      for (auto it = children.rbegin(); it != children.rend(); ++it)
        stack.emplace_back(*it, level + 1);
    }
    if (sound && (counted.branch_pages != db.branch_pages || counted.leaf_pages != db.leaf_pages ||
                  counted.overflow_pages != db.overflow_pages || counted.entries != db.entries)) {
      bad(db.root, "the tree holds " + std::to_string(counted.branch_pages) + " branch, " +
                       std::to_string(counted.leaf_pages) + " leaf, " +
                       std::to_string(counted.overflow_pages) + " overflow pages and " +
                       std::to_string(counted.entries) + " entries; its record says " +
                       std::to_string(db.branch_pages) + ", " + std::to_string(db.leaf_pages) +
                       ", " + std::to_string(db.overflow_pages) + " and " +
                       std::to_string(db.entries));
    }
    return sound;
  }

 private:
  bool claim(std::uint64_t first, std::uint64_t count) {
    bool fresh = true;
    for (std::uint64_t p = first; p < first + count; ++p) {
      if (used_[p]) fresh = false;
      used_[p] = true;
    }
    return fresh;
  }
  bool read(std::uint64_t at, void* out, std::size_t n) const {
    if (at > in_.len() || n > in_.len() - at) return false;
    in_.read(at, out, n, "page");
    return true;
  }
  // An overflow page's header as LMDB writes it: its own page number, P_OVERFLOW (and not
  // P_DIRTY, which mdb_page_flush clears), the page count of the value it starts.
  static bool overflow_header_sound(const std::uint8_t* header, std::uint64_t first,
                                    std::uint64_t count) {
    const std::uint16_t flags = load<std::uint16_t>(header + 10);
    return load<std::uint64_t>(header) == first && (flags & (P_OVERFLOW | P_DIRTY)) == P_OVERFLOW &&
           load<std::uint32_t>(header + 12) == count;
  }
  // Whether the nodes (each NODESIZE + key + value or overflow page number, rounded up to even)
  // fill [upper, page_size) exactly, without overlap.
  bool nodes_tile(const std::uint8_t* page, std::size_t nodes, std::size_t upper, bool branch) {
    extents_.clear();
    for (std::size_t i = 0; i < nodes; ++i) {
      const std::size_t at = load<std::uint16_t>(page + LMDB_PAGE_HEADER + 2 * i);
      if (at < upper || at + 8 > page_size_) return false;
      const std::uint8_t* node = page + at;
      std::size_t len = 8 + std::size_t{load<std::uint16_t>(node + 6)};
      if (!branch) {
        len += (load<std::uint16_t>(node + 4) & F_BIGDATA) != 0
                   ? 8
                   : (std::size_t{load<std::uint16_t>(node)} |
                      std::size_t{load<std::uint16_t>(node + 2)} << 16);
      }
      extents_.emplace_back(at, at + len + (len & 1));
    }
    std::sort(extents_.begin(), extents_.end());
    std::size_t end = upper;
    for (const auto& [first, last] : extents_) {
      if (first != end) return false;
      end = last;
    }
    return end == page_size_;
  }

  // mdb_cmp_memn (bytes, then length), or mdb_cmp_int for the free-page tree's txnids.
  static bool ascending(const std::vector<std::uint8_t>& a, std::span<const std::uint8_t> b,
                        bool integer_keys) {
    if (integer_keys && a.size() == 8 && b.size() == 8)
      return load<std::uint64_t>(a.data()) < load<std::uint64_t>(b.data());
    const int c = std::memcmp(a.data(), b.data(), std::min(a.size(), b.size()));
    return c < 0 || (c == 0 && a.size() < b.size());
  }

  const DataFile& in_;
  std::uint32_t page_size_;
  std::uint64_t last_pgno_;
  std::vector<bool> used_;
  std::vector<std::pair<std::size_t, std::size_t>> extents_;
};

// Calls fn(pgno) for every page number the free-page tree lists (an ID list per entry: its
// length, then the page numbers, each a u64).
template <typename Fn, typename Fault>
bool walk_free_list(TreeWalker& walker, const DbRecord& free_db, Fn&& fn, Fault&& fault) {
  bool sound = true;
  const bool tree_sound = walker.walk(
      std::string(FREE_TREE), free_db, true,
      [&](const TreeEntry& e) {
        if (e.value.size() < 8 || e.value.size() % 8 != 0 ||
            load<std::uint64_t>(e.value.data()) != e.value.size() / 8 - 1) {
          sound = false;
          fault("tree 'free': an entry of " + std::to_string(e.value.size()) +
                " bytes is not a list of page numbers");
          return;
        }
        for (std::size_t k = 8; k < e.value.size(); k += 8)
          fn(load<std::uint64_t>(e.value.data() + k));
      },
      fault);
  return sound && tree_sound;
}

// The free list's pages, as a map over the snapshot; a page number outside it is damage.
template <typename Fault>
std::vector<bool> free_page_map(TreeWalker& walker, const DbRecord& free_db, Fault&& fault) {
  std::vector<bool> free(walker.last_pgno() + 1, false);
  walk_free_list(
      walker, free_db,
      [&](std::uint64_t pgno) {
        if (pgno < NUM_METAS || pgno > walker.last_pgno()) {
          fault("tree 'free': lists page " + std::to_string(pgno) +
                ", outside the snapshot (pages 2 to " + std::to_string(walker.last_pgno()) + ")");
        } else {
          free[pgno] = true;
        }
      },
      fault);
  return free;
}

// A page both in a tree walked and on the free list will be handed out again by the next write,
// which overwrites what the tree still holds.
template <typename Fault>
void check_free_overlap(const TreeWalker& walker, const std::vector<bool>& free, Fault&& fault) {
  for (std::uint64_t pgno = NUM_METAS; pgno <= walker.last_pgno(); ++pgno) {
    if (free[pgno] && walker.used(pgno)) {
      fault("page " + std::to_string(pgno) + " is both in a tree and on the free list");
    }
  }
}

// Counts damages and keeps the first message.
struct FaultCount {
  std::uint64_t count = 0;
  std::string first;
  void operator()(const std::string& what) {
    if (count++ == 0) first = what;
  }
  [[nodiscard]] std::string summary() const {
    return first + (count > 1 ? " (and " + std::to_string(count - 1) + " more)" : "");
  }
};

}  // namespace

namespace {

detail::LmdbFileCheck check_lmdb_file_once(const std::string& file) {
  detail::LmdbFileCheck out;
  DataFile in(file);
  if (!in.exists()) return out;
  out.exists = true;
  out.file_len = in.len();
  if constexpr (!LMDB_LAYOUT_KNOWN) return out;  // other layouts are not checked
  const Metas metas = read_metas(in);
  in.refresh_len();  // after the meta pages: it holds every page they name
  out.file_len = in.len();
  const MetaPage& m = metas.meta[metas.newest];
  out.page_size = m.page_size;
  out.newest_meta = metas.newest;
  out.txnid = m.txnid;
  out.last_pgno = m.last_pgno;
  const std::uint64_t pages_in_file = in.len() / m.page_size;
  if (pages_in_file > m.last_pgno) return out;
  // The file ends before the snapshot's last page. LMDB does not write a page that the
  // transaction which allocated it also freed, so such pages may lie past the end; any other
  // page there is the truncation that makes LMDB's first access a SIGBUS.
  const std::uint64_t absent = m.last_pgno + 1 - pages_in_file;
  const std::string truncated =
      "the file ends here, but its newest meta page (" + std::to_string(metas.newest) + ", txn " +
      std::to_string(m.txnid) + ") uses pages up to " + std::to_string(m.last_pgno) + " (" +
      std::to_string((m.last_pgno + 1) * m.page_size) + " bytes): the file was truncated";
  if (absent > MAX_UNWRITTEN_PAGES) throw DecodeError(file, in.len(), truncated);
  std::vector<bool> free(absent, false);
  std::uint64_t covered = 0;
  std::string first_fault;
  TreeWalker walker(in, m.page_size, m.last_pgno);
  const bool sound = walk_free_list(
      walker, m.free_db,
      [&](std::uint64_t pgno) {
        if (pgno >= pages_in_file && pgno <= m.last_pgno && !free[pgno - pages_in_file]) {
          free[pgno - pages_in_file] = true;
          ++covered;
        }
      },
      [&](const std::string& what) {
        if (first_fault.empty()) first_fault = what;
      });
  if (!sound)
    throw DecodeError(file, in.len(),
                      truncated + " (and its free-page list is damaged: " + first_fault + ")");
  if (covered != absent) throw DecodeError(file, in.len(), truncated);
  out.unwritten_free_pages = absent;
  return out;
}

}  // namespace

detail::LmdbFileCheck detail::check_lmdb_file(const std::string& file) {
  try {
    return check_lmdb_file_once(file);
  } catch (const DecodeError&) {
    // Another process's commit may have been writing a meta page as it was read: once more.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return check_lmdb_file_once(file);
  }
}

std::vector<std::uint64_t> detail::lmdb_free_pages(const std::string& file) {
  std::vector<std::uint64_t> out;
  if constexpr (!LMDB_LAYOUT_KNOWN) return out;
  const LmdbFileCheck checked = check_lmdb_file(file);  // bounds last_pgno by the file
  if (!checked.exists) throw IoError(file, "no such file");
  const DataFile in(file);
  const Metas metas = read_metas(in);
  const MetaPage& m = metas.meta[metas.newest];
  TreeWalker walker(in, m.page_size, m.last_pgno);
  std::string first_fault;
  const bool sound = walk_free_list(
      walker, m.free_db, [&](std::uint64_t pgno) { out.push_back(pgno); },
      [&](const std::string& what) {
        if (first_fault.empty()) first_fault = what;
      });
  if (!sound) throw DecodeError(file, 0, first_fault);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

namespace {

// LMDB calls this on a failed internal consistency check (a damaged file: it has no checksums)
// and then aborts the process; nothing may unwind through its C frames, so this only names the
// store on stderr before the abort.
void on_lmdb_assert(MDB_env* env, const char* msg) {
  const auto* path = static_cast<const std::string*>(mdb_env_get_userctx(env));
  std::fprintf(
      stderr,
      "datacap: %s/data.mdb is damaged: LMDB's consistency check failed (%s); LMDB aborts\n",
      path != nullptr ? path->c_str() : "?", msg);
}

}  // namespace

// The records of the store's named databases in a snapshot's main tree.
struct NamedTrees {
  std::optional<DbRecord> pages, caps, meta;
};

// Thrown inside a write transaction that ran out of map space; write() grows the map and
// runs the transaction again. Never leaves this file.
struct MapFull {};

struct LmdbStore::Impl {
  std::string path;
  MDB_env* env = nullptr;
  MDB_dbi pages = 0, caps = 0, meta = 0;
  bool read_only = false;
  bool unlocked = false;  // read-only without lock.mdb (MDB_NOLOCK): see LmdbOptions::read_only
  // Transactions hold it shared; changing the map size (which LMDB allows only while this
  // process has no transaction) holds it exclusively.
  mutable std::shared_mutex map_mutex;

  [[noreturn]] void fail(const std::string& what, int rc) const {
    if (rc == MDB_MAP_FULL) throw MapFull{};
    // LMDB's own findings of damage are about the file's bytes, not a refusal by the system.
    if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
        rc == MDB_VERSION_MISMATCH) {
      throw DecodeError(path + "/data.mdb", 0,
                        what + ": " + mdb_strerror(rc) + " (the file is damaged; see verify)");
    }
    throw IoError(path, what + ": " + mdb_strerror(rc));
  }
  void check(int rc, const char* what) const {
    if (rc != MDB_SUCCESS) fail(what, rc);
  }

  void require_writable(const char* what) const {
    if (read_only) throw InvalidArgument(path + ": " + what + ": the store was opened read-only");
  }

  // Doubles the map (the file grows only as pages are written).
  void grow() const {
    std::unique_lock exclusive(map_mutex);
    MDB_envinfo info;
    check(mdb_env_info(env, &info), "read map size");
    const std::size_t bigger = info.me_mapsize * 2;
    const int rc = mdb_env_set_mapsize(env, bigger);
    if (rc != MDB_SUCCESS) {
      throw IoError(path, "the store is full at " + std::to_string(info.me_mapsize) +
                              " bytes of map and cannot grow to " + std::to_string(bigger) + ": " +
                              mdb_strerror(rc));
    }
  }

  // Another process grew the map: adopt its size.
  void adopt_new_size() const {
    std::unique_lock exclusive(map_mutex);
    check(mdb_env_set_mapsize(env, 0), "adopt the grown map size");
  }

  // A transaction aborted unless committed.
  struct Txn {
    const Impl& impl;
    std::shared_lock<std::shared_mutex> held;
    MDB_txn* txn = nullptr;
    Txn(const Impl& i, bool write) : impl(i) {
      for (;;) {
        held = std::shared_lock(impl.map_mutex);
        const int rc = mdb_txn_begin(impl.env, nullptr, write ? 0 : MDB_RDONLY, &txn);
        if (rc != MDB_MAP_RESIZED) {
          impl.check(rc, "begin transaction");
          return;
        }
        held.unlock();
        impl.adopt_new_size();
      }
    }
    ~Txn() {
      if (txn != nullptr) mdb_txn_abort(txn);
    }
    Txn(const Txn&) = delete;
    Txn& operator=(const Txn&) = delete;
    void commit() {
      MDB_txn* t = txn;
      txn = nullptr;
      impl.check(mdb_txn_commit(t), "commit");
    }
  };

  // Runs fn(txn) in a write transaction and commits it; when the map is full, aborts, grows the
  // map and runs it again from the start.
  template <typename Fn>
  void write(Fn&& fn) const {
    for (;;) {
      try {
        Txn txn(*this, true);
        if (!fn(txn)) return;  // nothing to commit
        txn.commit();
        return;
      } catch (const MapFull&) {
      }
      grow();
    }
  }

  struct Cursor {
    MDB_cursor* cursor = nullptr;
    Cursor(const Impl& impl, MDB_txn* txn, MDB_dbi dbi) {
      impl.check(mdb_cursor_open(txn, dbi, &cursor), "open cursor");
    }
    ~Cursor() { mdb_cursor_close(cursor); }
    Cursor(const Cursor&) = delete;
    Cursor& operator=(const Cursor&) = delete;
  };

  // Positions `cursor` (on "pages") at the page whose root is `root`; false when absent.
  bool find_page(MDB_cursor* cursor, const Hash32& root, MDB_val& key, MDB_val& value) const {
    key = key_of(root);
    const int rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND) return false;
    check(rc, "find page");
    return key.mv_size >= root.size() && std::memcmp(key.mv_data, root.data(), root.size()) == 0;
  }

  // The record of cap_root in `txn` (valid until the transaction ends); false when absent.
  bool find_cap(MDB_txn* txn, const Hash32& cap_root, MDB_val& value) const {
    MDB_val key = key_of(cap_root);
    const int rc = mdb_get(txn, caps, &key, &value);
    if (rc == MDB_NOTFOUND) return false;
    check(rc, "read cap record");
    return true;
  }

  // The meta page of the snapshot of transaction id `txnid`; false when later commits have
  // overwritten it already (LMDB keeps two meta pages).
  static bool snapshot_meta(const DataFile& in, std::uint64_t txnid, MetaPage& out) {
    // Each meta page on its own: a commit may be writing the other one as it is read.
    std::uint8_t buf[LMDB_PAGE_HEADER + LMDB_META_LEN];
    in.read(0, buf, sizeof buf, "meta page 0");
    MetaPage metas[NUM_METAS] = {parse_meta(buf, 0), {}};
    if (!metas[0].fault.empty()) return false;
    in.read(metas[0].page_size, buf, sizeof buf, "meta page 1");
    metas[1] = parse_meta(buf, 1);
    for (const MetaPage& m : metas) {
      if (!m.fault.empty() || m.txnid != txnid) continue;
      // A page number beyond the file (and its few unwritten free pages) was truncated or
      // damaged since the file was checked; the walker's map of pages is sized by it.
      if (m.last_pgno > in.len() / m.page_size + MAX_UNWRITTEN_PAGES) {
        throw DecodeError(in.file(), in.len(),
                          "the file is shorter than the pages its meta page uses: truncated");
      }
      out = m;
      return true;
    }
    return false;
  }

  // Walks the main tree for the named databases' records. True when it is sound.
  template <typename Fault>
  bool walk_main(TreeWalker& walker, const DbRecord& main, NamedTrees& named, Fault&& fault) const {
    const bool sound = walker.walk(
        "main", main, true,
        [&](const TreeEntry& e) {
          if ((e.node_flags & F_SUBDATA) == 0 || e.value.size() != DB_LEN) return;
          const std::string_view name(reinterpret_cast<const char*>(e.key.data()), e.key.size());
          const DbRecord db = parse_db(e.value.data());
          if (db.flags != 0 && (name == "pages" || name == "caps" || name == "meta")) {
            // Opened without flags, so created with none: LMDB would believe a DUPSORT or
            // INTEGERKEY bit here and read the tree as something it is not.
            fault("tree 'main': database '" + std::string(name) + "' has flags " +
                  hex_of(db.flags) + " (datacap's databases have none)");
            return;
          }
          // LMDB follows a database's root as soon as it is used: check it with the record.
          if (db.root == P_INVALID ? db.depth != 0
                                   : db.root < NUM_METAS || db.root > walker.last_pgno() ||
                                         db.depth == 0 || db.depth > LMDB_MAX_DEPTH) {
            fault("tree 'main': database '" + std::string(name) + "' has root " +
                  std::to_string(db.root) + " at depth " + std::to_string(db.depth));
            return;
          }
          if (name == "pages") named.pages = db;
          if (name == "caps") named.caps = db;
          if (name == "meta") named.meta = db;
        },
        fault);
    for (const auto& [name, db] :
         {std::pair{"pages", &named.pages}, {"caps", &named.caps}, {"meta", &named.meta}}) {
      if (!db->has_value()) {
        fault(std::string("tree 'main': no database '") + name +
              "' (not a datacap page store, or damaged)");
      }
    }
    return sound && named.pages && named.caps && named.meta;
  }

  // A read transaction and data.mdb open for pread at its snapshot: the transaction keeps
  // writers from reusing the snapshot's pages while they are read.
  struct Snapshot {
    std::optional<Txn> txn;
    std::optional<DataFile> file;
    MetaPage meta;
  };
  void begin_snapshot(Snapshot& snap) const {
    const std::string file = path + "/data.mdb";
    for (int attempt = 0;; ++attempt) {
      snap.txn.emplace(*this, false);
      snap.file.emplace(file);  // after the transaction began: the file holds its snapshot
      if (snapshot_meta(*snap.file, mdb_txn_id(snap.txn->txn), snap.meta)) return;
      snap.txn.reset();
      if (attempt == 8) {
        throw DecodeError(
            file, 0,
            "no valid meta page holds the snapshot being read (damaged, or overwritten by "
            "other processes' commits faster than it can be read)");
      }
      std::this_thread::yield();
    }
  }

  // Which trees check_structure walks (the caps and meta trees need the main tree).
  enum Walk : unsigned {
    FREE_LIST = 1,
    MAIN_TREE = 2,
    CAPS_TREE = 4 | MAIN_TREE,
    META_TREE = 8 | MAIN_TREE,
    PAGES_TREE = 16 | MAIN_TREE,
  };

  // Walks with pread, before LMDB reads them, the trees an operation is about to use, as asked:
  // the free list (with no page both free and in a tree walked), the main tree (which LMDB
  // searches for every named database a transaction uses), the caps and meta trees —
  // every branch and leaf page and the range of every overflow value (overflow pages themselves
  // are not read). LMDB would follow a damaged pointer into a crash, trip an assertion (abort),
  // or hand out a page still in use and spread the damage. Throws DecodeError naming data.mdb,
  // the first damage and `refused`. O(branch and leaf pages read).
  void check_structure(const DataFile& in, const MetaPage& meta, unsigned walk,
                       const char* refused) const {
    TreeWalker walker(in, meta.page_size, meta.last_pgno);
    FaultCount faults;
    std::vector<bool> free;
    if ((walk & FREE_LIST) != 0) free = free_page_map(walker, meta.free_db, faults);
    NamedTrees named;
    if ((walk & MAIN_TREE) != 0) walk_main(walker, meta.main_db, named, faults);
    const auto ignore = [](const TreeEntry&) {};
    if ((walk & CAPS_TREE) == CAPS_TREE && named.caps)
      walker.walk("caps", *named.caps, false, ignore, faults);
    if ((walk & META_TREE) == META_TREE && named.meta)
      walker.walk("meta", *named.meta, false, ignore, faults);
    if ((walk & PAGES_TREE) == PAGES_TREE && named.pages)
      walker.walk("pages", *named.pages, false, ignore, faults);
    if ((walk & FREE_LIST) != 0) check_free_overlap(walker, free, faults);
    if (faults.count != 0)
      throw DecodeError(in.file(), 0, faults.summary() + ": the store is damaged; " + refused);
  }

  // Whether a pages entry keeps the split rule (docs/format.md §3): why not, or empty. With
  // `trimmed`, also that the stored bytes end on a non-zero byte (the canonical form put()
  // writes; a page that breaks only that still loads, as its root is checked).
  static std::string split_fault(const MDB_val& key, const MDB_val& head, bool trimmed) {
    if (key.mv_size < 32 || key.mv_size > 32 + (PAGE_SIZE - PAGE_HEAD)) {
      return "a key of " + std::to_string(key.mv_size) + " bytes (32 to 48 expected)";
    }
    const std::size_t tail = key.mv_size - 32;
    if (head.mv_size > PAGE_HEAD || (tail != 0 && head.mv_size != PAGE_HEAD)) {
      return "stored as " + std::to_string(head.mv_size) + " + " + std::to_string(tail) +
             " bytes, not split at " + std::to_string(PAGE_HEAD);
    }
    if (trimmed) {
      const auto* last = tail != 0 ? static_cast<const std::uint8_t*>(key.mv_data) + key.mv_size - 1
                         : head.mv_size != 0
                             ? static_cast<const std::uint8_t*>(head.mv_data) + head.mv_size - 1
                             : nullptr;
      if (last != nullptr && *last == 0) return "stored with a trailing zero byte, not trimmed";
    }
    return {};
  }

  // The page a pages entry holds; its key and value must keep the split rule.
  static PageRef assemble_page(const MDB_val& key, const MDB_val& head) {
    const std::size_t tail = key.mv_size - 32;
    PageNode* node = PageNode::allocate();
    std::memcpy(node->data, head.mv_data, head.mv_size);
    if (tail != 0)
      std::memcpy(node->data + PAGE_HEAD, static_cast<const std::uint8_t*>(key.mv_data) + 32, tail);
    const std::size_t used = head.mv_size + tail;
    std::memset(node->data + used, 0, PAGE_SIZE - used);
    return PageNode::adopt_ref(node);
  }

  // Reads the page under `root`; null when absent.
  PageRef read_page(MDB_cursor* cursor, const Hash32& root) const {
    MDB_val key, head;
    if (!find_page(cursor, root, key, head)) return PageRef();
    const std::string fault = split_fault(key, head, false);
    if (!fault.empty()) throw DecodeError(path + ": page " + to_hex(root), 0, fault);
    return assemble_page(key, head);
  }
};

namespace {

class FileLock final : public PageStore::Lock {
 public:
  FileLock(const std::string& path, bool exclusive) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw IoError(path, std::string("cannot open lock file: ") + std::strerror(errno));
    while (::flock(fd_, exclusive ? LOCK_EX : LOCK_SH) != 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd_);
      throw IoError(path, std::string("cannot lock: ") + std::strerror(err));
    }
  }
  ~FileLock() override { ::close(fd_); }  // closing releases the lock
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

LmdbStore::LmdbStore(const std::string& path, LmdbOptions options)
    : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.path = path;
  s.read_only = options.read_only;
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    if (!options.create || options.read_only) throw IoError(path, "no such store directory");
    std::filesystem::create_directories(path, ec);
    if (ec) throw IoError(path, "cannot create the store directory: " + ec.message());
  }
  // LMDB maps data.mdb and trusts its meta page: check the file first, with pread.
  const detail::LmdbFileCheck file = detail::check_lmdb_file(path + "/data.mdb");
  // Without `create`, an existing store only: a directory without data.mdb is not made one
  // (`datacap store gc` on a wrong directory used to leave a new, empty store in it).
  if (!file.exists && (options.read_only || !options.create))
    throw IoError(path, "no store here: data.mdb does not exist");
  // MDB_NOTLS: read transactions belong to the call, not the thread, so any thread may read.
  unsigned flags = MDB_NOTLS | (options.read_only ? MDB_RDONLY : 0u);
  // Reserve the map asked for; where address space is short (sanitizers, ulimit -v) settle for
  // less: the map grows when it fills.
  std::uint64_t map_size = std::max<std::uint64_t>(options.map_size, std::uint64_t{1} << 26);
  for (;;) {
    s.check(mdb_env_create(&s.env), "create environment");
    mdb_env_set_userctx(s.env, &s.path);
    int rc = mdb_env_set_assert(s.env, on_lmdb_assert);
    if (rc == MDB_SUCCESS) rc = mdb_env_set_maxdbs(s.env, 4);
    if (rc == MDB_SUCCESS) rc = mdb_env_set_mapsize(s.env, static_cast<std::size_t>(map_size));
    if (rc == MDB_SUCCESS) rc = mdb_env_open(s.env, path.c_str(), flags, 0644);
    if (rc == MDB_SUCCESS) break;
    mdb_env_close(s.env);
    s.env = nullptr;
    if (options.read_only && (flags & MDB_NOLOCK) == 0 &&
        (rc == EACCES || rc == EPERM || rc == EROFS)) {
      // lock.mdb cannot be opened for writing (a directory the user may only read): read
      // without LMDB's reader table. See LmdbOptions::read_only for what that costs.
      flags |= MDB_NOLOCK;
      s.unlocked = true;
      continue;
    }
    if (rc != ENOMEM || map_size <= (std::uint64_t{1} << 26)) s.check(rc, "open");
    map_size /= 2;
  }
  try {
    int dead = 0;
    s.check(mdb_reader_check(s.env, &dead), "clear stale readers");  // after a killed process
    // Opens the three databases and checks (or, creating them, sets) the format marker.
    const auto open_databases = [&](MDB_txn* txn, bool create) {
      for (const auto& [name, dbi] :
           {std::pair{"pages", &s.pages}, {"caps", &s.caps}, {"meta", &s.meta}}) {
        const int rc = mdb_dbi_open(txn, name, create ? MDB_CREATE : 0u, dbi);
        if (rc == MDB_NOTFOUND) {
          throw DecodeError(path + "/data.mdb", 0,
                            std::string("no database '") + name + "': not a datacap page store");
        }
        s.check(rc, "open a database");
      }
      const std::string key = "format";
      MDB_val k = val_of(key.data(), key.size());
      MDB_val v;
      const int rc = mdb_get(txn, s.meta, &k, &v);
      if (rc == MDB_NOTFOUND && create) {
        MDB_val f = val_of(FORMAT.data(), FORMAT.size());
        s.check(mdb_put(txn, s.meta, &k, &f, 0), "write format");
        return;
      }
      std::string found = "(none)";
      if (rc != MDB_NOTFOUND) {
        s.check(rc, "read format");
        found.assign(static_cast<const char*>(v.mv_data), v.mv_size);
      }
      if (found != FORMAT) {
        throw DecodeError(path + ": meta.format", 0,
                          "store format '" + found + "', expected '" + std::string(FORMAT) + "'");
      }
    };
    bool fresh = false;
    {
      Impl::Snapshot snap;
      s.begin_snapshot(snap);
      fresh = snap.meta.main_db.root == P_INVALID;  // an LMDB environment without databases yet
      if (!fresh) {
        // LMDB reads the main tree to find the databases, and the meta tree for the format
        // marker: both checked first (a page or two each).
        s.check_structure(*snap.file, snap.meta, Impl::META_TREE, "not opened");
        open_databases(snap.txn->txn, false);
        snap.txn->commit();  // database handles opened in a transaction outlive it once committed
      } else if (!s.read_only) {
        // The write below creates the databases; its pages may come from the free list.
        s.check_structure(*snap.file, snap.meta, Impl::FREE_LIST, "not opened");
      }
    }
    if (fresh) {
      if (s.read_only || !options.create)
        throw DecodeError(path + "/data.mdb", 0,
                          "an LMDB environment without databases: no page store yet");
      s.write([&](Impl::Txn& txn) {
        open_databases(txn.txn, true);
        return true;
      });
    }
  } catch (...) {
    mdb_env_close(s.env);
    throw;
  }
}

LmdbStore::~LmdbStore() { mdb_env_close(impl_->env); }

bool LmdbStore::is_read_only() const noexcept { return impl_->read_only; }

std::string LmdbStore::name() const { return impl_->path; }

void LmdbStore::do_put_pages(std::span<const PageRecord> pages) {
  const Impl& s = *impl_;
  s.require_writable("put");
  s.write([&](Impl::Txn& txn) {
    Impl::Cursor cursor(s, txn.txn, s.pages);
    std::uint8_t key_bytes[32 + (PAGE_SIZE - PAGE_HEAD)];
    for (const PageRecord& r : pages) {
      MDB_val found_key, found_value;
      if (s.find_page(cursor.cursor, r.root, found_key, found_value)) continue;  // stored once
      const std::uint8_t* bytes = r.page.data();
      std::size_t len = PAGE_SIZE;
      while (len > 0 && bytes[len - 1] == 0) --len;
      std::memcpy(key_bytes, r.root.data(), 32);
      const std::size_t tail = len > PAGE_HEAD ? len - PAGE_HEAD : 0;
      std::memcpy(key_bytes + 32, bytes + PAGE_HEAD, tail);
      MDB_val key = val_of(key_bytes, 32 + tail);
      MDB_val head = val_of(bytes, std::min(len, PAGE_HEAD));
      s.check(mdb_put(txn.txn, s.pages, &key, &head, MDB_NOOVERWRITE), "write page");
    }
    return true;
  });
}

void LmdbStore::do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  Impl::Cursor cursor(s, txn.txn, s.pages);
  // In key order: LMDB finds a key on the cursor's current leaf without descending from the
  // root, so a batch of thousands of pages costs a few hundred descents, not thousands.
  std::vector<std::size_t> order(roots.size());
  for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return roots[a] < roots[b]; });
  for (const std::size_t k : order) out[k] = s.read_page(cursor.cursor, roots[k]);
}

bool LmdbStore::do_has_page(const Hash32& root) const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  Impl::Cursor cursor(s, txn.txn, s.pages);
  MDB_val key, value;
  return s.find_page(cursor.cursor, root, key, value);
}

void LmdbStore::do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  Impl::Cursor cursor(s, txn.txn, s.pages);
  for (std::size_t k = 0; k < roots.size(); ++k) {
    MDB_val key, value;
    out[k] = s.find_page(cursor.cursor, roots[k], key, value);
  }
}

std::uint64_t LmdbStore::do_page_count() const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  MDB_stat st;
  s.check(mdb_stat(txn.txn, s.pages, &st), "stat pages");
  return st.ms_entries;
}

void LmdbStore::do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) {
  const Impl& s = *impl_;
  s.require_writable("save a cap");
  s.write([&](Impl::Txn& txn) {
    MDB_val key = key_of(cap_root);
    MDB_val v = val_of(record.data(), record.size());
    const int rc = mdb_put(txn.txn, s.caps, &key, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) return false;  // saved before: same root, same record
    s.check(rc, "write cap record");
    return true;
  });
}

bool LmdbStore::do_has_cap(const Hash32& cap_root) const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  MDB_val v;
  return s.find_cap(txn.txn, cap_root, v);
}

bool LmdbStore::do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  MDB_val v;
  if (!s.find_cap(txn.txn, cap_root, v)) return false;
  const auto* p = static_cast<const std::uint8_t*>(v.mv_data);
  record.assign(p, p + v.mv_size);
  return true;
}

void LmdbStore::do_check_structure() const {
  const Impl& s = *impl_;
  Impl::Snapshot snap;
  s.begin_snapshot(snap);
  // The free list too: a write transaction reads it to allocate pages (store put).
  s.check_structure(*snap.file, snap.meta,
                    Impl::CAPS_TREE | Impl::META_TREE | Impl::PAGES_TREE | Impl::FREE_LIST,
                    "nothing was read from it (see verify)");
}

void LmdbStore::do_for_each_cap(
    const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const {
  const Impl& s = *impl_;
  // The caps tree is walked whole: its structure first (a fraction of the records' bytes read).
  Impl::Snapshot snap;
  s.begin_snapshot(snap);
  s.check_structure(*snap.file, snap.meta, Impl::CAPS_TREE, "caps not listed (see verify)");
  Impl::Cursor cursor(s, snap.txn->txn, s.caps);
  MDB_val k, v;
  for (int rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_FIRST); rc != MDB_NOTFOUND;
       rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_NEXT)) {
    s.check(rc, "list caps");
    if (k.mv_size != 32)
      throw DecodeError(s.path + ": caps", 0, "a key of " + std::to_string(k.mv_size) + " bytes");
    fn(hash_of(k),
       std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(v.mv_data), v.mv_size));
  }
}

GcReport LmdbStore::do_gc(std::span<const Hash32> keep) {
  const Impl& s = *impl_;
  s.require_writable("gc");
  const auto root_of_key = [](const void* data, std::size_t size) {
    return size >= 32 ? hash_of(MDB_val{32, const_cast<void*>(data)}) : Hash32{};
  };
  const std::set<Hash32> keep_set(keep.begin(), keep.end());
  // What the loops below keep (the rest they delete).
  const auto keeps_cap = [&](const void* key, std::size_t size) {
    return size == 32 && keep_set.count(root_of_key(key, size)) != 0;
  };
  GcReport report;
  s.write([&](Impl::Txn& txn) {
    report = GcReport{};
    // Before LMDB changes anything, every tree it will read or change is walked with pread
    // (Impl::check_structure; here with the overflow header of each value to be deleted, which
    // mdb_cursor_del reads to free its pages). Damage: DecodeError, nothing changed.
    const DataFile in(s.path + "/data.mdb");
    MetaPage meta;  // a write transaction's id is its snapshot's plus one
    if (!s.snapshot_meta(in, mdb_txn_id(txn.txn) - 1, meta)) {
      throw DecodeError(in.file(), 0, "no meta page holds the snapshot this write begins from");
    }
    TreeWalker walker(in, meta.page_size, meta.last_pgno);
    FaultCount faults;
    const auto refuse_if_damaged = [&] {
      if (faults.count != 0) {
        throw DecodeError(
            in.file(), 0,
            faults.summary() + ": the store is damaged; gc changed nothing (see verify)");
      }
    };
    const std::vector<bool> free = free_page_map(walker, meta.free_db, faults);
    NamedTrees named;
    s.walk_main(walker, meta.main_db, named, faults);
    if (named.caps) {
      walker.walk(
          "caps", *named.caps, false,
          [&](const TreeEntry& e) {
            if ((e.node_flags & F_BIGDATA) != 0 && !keeps_cap(e.key.data(), e.key.size())) {
              walker.check_overflow_header("caps", e, faults);
            }
          },
          faults);
    }
    refuse_if_damaged();  // the main and caps trees, which find_cap reads

    std::set<Hash32> kept;
    std::unordered_set<Hash32, Hash32Hasher> referenced;
    std::vector<Hash32> roots;
    for (const Hash32& root : keep) {
      MDB_val v;
      if (!s.find_cap(txn.txn, root, v)) throw NotFound(s.path + ": gc: keep", "cap", root);
      if (!kept.insert(root).second) continue;
      roots.clear();
      record_page_roots(
          std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(v.mv_data), v.mv_size),
          roots, s.path, &root);
      referenced.insert(roots.begin(), roots.end());
    }
    const auto keeps_page = [&](const void* key, std::size_t size) {
      return size >= 32 && referenced.count(root_of_key(key, size)) != 0;
    };
    if (named.pages) {
      walker.walk(
          "pages", *named.pages, false,
          [&](const TreeEntry& e) {
            if ((e.node_flags & F_BIGDATA) != 0 && !keeps_page(e.key.data(), e.key.size())) {
              walker.check_overflow_header("pages", e, faults);
            }
          },
          faults);
    }
    check_free_overlap(walker, free, faults);
    refuse_if_damaged();

    {
      Impl::Cursor cursor(s, txn.txn, s.caps);
      MDB_val k, v;
      for (int rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_FIRST); rc != MDB_NOTFOUND;
           rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_NEXT)) {
        s.check(rc, "scan caps");
        if (keeps_cap(k.mv_data, k.mv_size)) {
          ++report.caps_kept;
          continue;
        }
        s.check(mdb_cursor_del(cursor.cursor, 0), "delete cap");
        ++report.caps_removed;
      }
    }
    {
      Impl::Cursor cursor(s, txn.txn, s.pages);
      MDB_val k, v;
      for (int rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_FIRST); rc != MDB_NOTFOUND;
           rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_NEXT)) {
        s.check(rc, "scan pages");
        if (keeps_page(k.mv_data, k.mv_size)) {
          ++report.pages_kept;
          continue;
        }
        s.check(mdb_cursor_del(cursor.cursor, 0), "delete page");
        ++report.pages_removed;
      }
    }
    return true;
  });
  return report;
}

StoreVerifyReport LmdbStore::do_verify() const {
  const Impl& s = *impl_;
  const std::string file = s.path + "/data.mdb";
  // The file again: a store truncated since it was opened is a DecodeError here.
  (void)detail::check_lmdb_file(file);
  StoreVerifyReport report;
  const auto note = [&](StoreProblem::Kind kind, const Hash32& root, std::string message) {
    report.add_problem(kind, root, std::move(message));
  };
  const auto tree_fault = [&](const std::string& what) {
    ++report.bad_trees;
    note(StoreProblem::Kind::bad_tree, Hash32{}, file + ": " + what);
  };
  const auto root_of_key = [](std::span<const std::uint8_t> key) {
    Hash32 root{};
    std::memcpy(root.data(), key.data(), std::min(key.size(), root.size()));
    return root;
  };

  // One snapshot, read with pread; LMDB itself follows only pointers checked here first.
  Impl::Snapshot snap;
  s.begin_snapshot(snap);
  const MetaPage& meta = snap.meta;
  TreeWalker walker(*snap.file, meta.page_size, meta.last_pgno);
  const std::vector<bool> free_pages = free_page_map(walker, meta.free_db, tree_fault);
  NamedTrees named;
  const bool main_sound = s.walk_main(walker, meta.main_db, named, tree_fault);

  // Pages: each entry rebuilt and hashed, in batches hashed on every core.
  std::unordered_set<Hash32, Hash32Hasher> bad_pages;
  bool pages_sound = false;
  if (named.pages) {
    constexpr std::size_t BATCH = 4096;
    std::vector<Hash32> keys;
    std::vector<PageRef> batch;
    const auto check_batch = [&] {
      detail::ensure_page_roots(batch);
      for (std::size_t k = 0; k < batch.size(); ++k) {
        const Hash32 actual = batch[k].root(Digest::sha256);
        if (actual == keys[k]) continue;
        ++report.bad_pages;
        bad_pages.insert(keys[k]);
        note(StoreProblem::Kind::bad_page, keys[k],
             s.path + ": page " + to_hex(keys[k]) + ": its bytes have root " + to_hex(actual));
      }
      keys.clear();
      batch.clear();
    };
    pages_sound = walker.walk(
        "pages", *named.pages, true,
        [&](const TreeEntry& e) {
          ++report.pages;
          const Hash32 root = root_of_key(e.key);
          const MDB_val key = val_of(e.key.data(), e.key.size()),
                        head = val_of(e.value.data(), e.value.size());
          const std::string fault = Impl::split_fault(key, head, true);
          if (!fault.empty()) {
            ++report.bad_pages;
            bad_pages.insert(root);
            note(StoreProblem::Kind::bad_page, root,
                 s.path + ": page " + to_hex(root) + ": " + fault);
            return;
          }
          keys.push_back(root);
          batch.push_back(Impl::assemble_page(key, head));
          if (batch.size() == BATCH) check_batch();
        },
        tree_fault);
    check_batch();
  }

  // Caps: each record decoded, its root recomputed, the pages it names looked up — through
  // LMDB, only when every page of the main and pages trees has passed the walk above (LMDB
  // then follows only pointers already checked).
  const bool lookups = main_sound && pages_sound;
  if (named.caps) {
    std::optional<Impl::Cursor> pages;
    if (lookups) pages.emplace(s, snap.txn->txn, s.pages);
    walker.walk(
        "caps", *named.caps, true,
        [&](const TreeEntry& e) {
          ++report.caps;
          const Hash32 root = root_of_key(e.key);
          if (e.key.size() != root.size()) {
            ++report.bad_caps;
            note(StoreProblem::Kind::bad_cap, root,
                 s.path + ": caps: a key of " + std::to_string(e.key.size()) +
                     " bytes (32 expected)");
            return;
          }
          detail::CapRecordView view;
          try {
            view = detail::parse_cap_record(e.value, s.path, &root);
          } catch (const DecodeError& err) {
            ++report.bad_caps;
            note(StoreProblem::Kind::bad_cap, root, err.what());
            return;
          }
          const Hash32 actual = detail::cap_record_root(view);
          if (actual != root) {
            ++report.bad_caps;
            note(
                StoreProblem::Kind::bad_cap, root,
                s.path + ": cap " + to_hex(root) + ": its page table gives root " + to_hex(actual));
            return;
          }
          std::uint64_t damaged = 0, absent = 0, first_damaged = 0;
          for (std::uint64_t k = 0; k < view.entry_count; ++k) {
            const Hash32 page = view.entry_root(k);
            if (bad_pages.count(page) != 0) {
              if (damaged++ == 0) first_damaged = k;
              continue;
            }
            if (!pages) continue;
            MDB_val key, value;
            if (!s.find_page(pages->cursor, page, key, value)) ++absent;
          }
          if (damaged != 0) {
            report.damaged_page_refs += damaged;
            note(StoreProblem::Kind::damaged_refs, root,
                 s.path + ": cap " + to_hex(root) + ": " + std::to_string(damaged) + " of its " +
                     std::to_string(view.entry_count) + " pages are damaged (first: page " +
                     std::to_string(view.entry_index(first_damaged)) + ", " +
                     to_hex(view.entry_root(first_damaged)) + ")");
          }
          if (absent != 0) {
            report.absent_page_refs += absent;
            ++report.caps_with_absent_pages;
          }
        },
        tree_fault);
  }
  if (named.meta)
    walker.walk(
        "meta", *named.meta, true, [](const TreeEntry&) {}, tree_fault);
  if (!lookups) {
    note(StoreProblem::Kind::bad_tree, Hash32{},
         file + ": the pages the caps name were not looked up: the main or pages tree is damaged");
  }

  check_free_overlap(walker, free_pages, tree_fault);
  return report;
}

std::unique_ptr<PageStore::Lock> LmdbStore::do_lock(bool exclusive) const {
  // Only saves and gc lock; refused here, they fail before hashing or reading anything.
  impl_->require_writable(exclusive ? "gc" : "save a cap");
  return std::make_unique<FileLock>(impl_->path + "/datacap.lock", exclusive);
}

std::unique_ptr<PageStore> open_lmdb_store(const std::string& path, LmdbOptions options) {
  return std::make_unique<LmdbStore>(path, options);
}

}  // namespace datacap
