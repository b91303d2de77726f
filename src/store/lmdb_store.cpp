// LmdbStore: pages, cap records and a format marker in one LMDB environment.
//
// Databases: "pages", "caps" (cap root → record, see store/record.hpp), "meta" ("format" →
// FORMAT). A page is its bytes trimmed of trailing zeros, split at PAGE_HEAD: the key is its
// root followed by the bytes past PAGE_HEAD (none to 16), the value the first ≤ PAGE_HEAD bytes.
// LMDB stores a value larger than half a page on its own overflow pages behind a 16-byte page
// header, so a whole 4096-byte value would take two 4 KiB pages; split, it takes one, and the
// tail rides in the key at no extra lookup. A page is found by its root with a range search
// (the first key at or after the root, checked to start with it).
#include <fcntl.h>
#include <lmdb.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <shared_mutex>
#include <unordered_set>

#include "datacap/error.hpp"
#include "datacap/store.hpp"
#include "page/page_node.hpp"
#include "store/record.hpp"

namespace datacap {

using detail::PageNode;

namespace {

constexpr std::size_t PAGE_HEAD = PAGE_SIZE - 16;  // one LMDB overflow page after its header
constexpr std::string_view FORMAT = "datacap-page-store-1";

struct Hash32Hasher {
  std::size_t operator()(const Hash32& h) const noexcept {
    std::size_t v;
    std::memcpy(&v, h.data(), sizeof v);
    return v;
  }
};

MDB_val val_of(const void* data, std::size_t size) { return MDB_val{size, const_cast<void*>(data)}; }
MDB_val key_of(const Hash32& h) { return val_of(h.data(), h.size()); }

Hash32 hash_of(const MDB_val& v) {
  Hash32 h{};
  if (v.mv_size == h.size()) std::memcpy(h.data(), v.mv_data, h.size());
  return h;
}

}  // namespace

// Thrown inside a write transaction that ran out of map space; write() grows the map and
// runs the transaction again. Never leaves this file.
struct MapFull {};

struct LmdbStore::Impl {
  std::string path;
  MDB_env* env = nullptr;
  MDB_dbi pages = 0, caps = 0, meta = 0;
  // Transactions hold it shared; changing the map size (which LMDB allows only while this
  // process has no transaction) holds it exclusively.
  mutable std::shared_mutex map_mutex;

  [[noreturn]] void fail(const std::string& what, int rc) const {
    if (rc == MDB_MAP_FULL) throw MapFull{};
    throw IoError(path, what + ": " + mdb_strerror(rc));
  }
  void check(int rc, const char* what) const {
    if (rc != MDB_SUCCESS) fail(what, rc);
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

  // Reads the page under `root`; null when absent.
  PageRef read_page(MDB_cursor* cursor, const Hash32& root) const {
    MDB_val key, head;
    if (!find_page(cursor, root, key, head)) return PageRef();
    const std::size_t tail = key.mv_size - root.size();
    if (head.mv_size > PAGE_HEAD || tail > PAGE_SIZE - PAGE_HEAD ||
        (tail != 0 && head.mv_size != PAGE_HEAD)) {
      throw DecodeError(path + ": page " + to_hex(root), 0,
                        "stored as " + std::to_string(head.mv_size) + " + " + std::to_string(tail) +
                            " bytes, not a trimmed page");
    }
    PageNode* node = PageNode::allocate();
    std::memcpy(node->data, head.mv_data, head.mv_size);
    if (tail != 0)
      std::memcpy(node->data + PAGE_HEAD, static_cast<const std::uint8_t*>(key.mv_data) + root.size(), tail);
    const std::size_t used = head.mv_size + tail;
    std::memset(node->data + used, 0, PAGE_SIZE - used);
    return PageNode::adopt_ref(node);
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

LmdbStore::LmdbStore(const std::string& path, LmdbOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.path = path;
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    if (!options.create) throw IoError(path, "no such store directory");
    std::filesystem::create_directories(path, ec);
    if (ec) throw IoError(path, "cannot create the store directory: " + ec.message());
  }
  // Reserve the map asked for; where address space is short (sanitizers, ulimit -v) settle for
  // less: the map grows when it fills.
  for (std::uint64_t map_size = std::max<std::uint64_t>(options.map_size, std::uint64_t{1} << 26);;
       map_size /= 2) {
    s.check(mdb_env_create(&s.env), "create environment");
    int rc = mdb_env_set_maxdbs(s.env, 4);
    if (rc == MDB_SUCCESS) rc = mdb_env_set_mapsize(s.env, static_cast<std::size_t>(map_size));
    // MDB_NOTLS: read transactions belong to the call, not the thread, so any thread may read.
    if (rc == MDB_SUCCESS) rc = mdb_env_open(s.env, path.c_str(), MDB_NOTLS, 0644);
    if (rc == MDB_SUCCESS) break;
    mdb_env_close(s.env);
    s.env = nullptr;
    if (rc != ENOMEM || map_size <= (std::uint64_t{1} << 26)) s.check(rc, "open");
  }
  try {
    int dead = 0;
    s.check(mdb_reader_check(s.env, &dead), "clear stale readers");  // after a killed process
    s.write([&](Impl::Txn& txn) {
      s.check(mdb_dbi_open(txn.txn, "pages", MDB_CREATE, &s.pages), "open database 'pages'");
      s.check(mdb_dbi_open(txn.txn, "caps", MDB_CREATE, &s.caps), "open database 'caps'");
      s.check(mdb_dbi_open(txn.txn, "meta", MDB_CREATE, &s.meta), "open database 'meta'");
      const std::string key = "format";
      MDB_val k = val_of(key.data(), key.size());
      MDB_val v;
      const int rc = mdb_get(txn.txn, s.meta, &k, &v);
      if (rc == MDB_NOTFOUND) {
        MDB_val f = val_of(FORMAT.data(), FORMAT.size());
        s.check(mdb_put(txn.txn, s.meta, &k, &f, 0), "write format");
      } else {
        s.check(rc, "read format");
        const std::string_view found(static_cast<const char*>(v.mv_data), v.mv_size);
        if (found != FORMAT) {
          throw DecodeError(
              path + ": meta.format", 0,
              "store format '" + std::string(found) + "', expected '" + std::string(FORMAT) + "'");
        }
      }
      return true;
    });
  } catch (...) {
    mdb_env_close(s.env);
    throw;
  }
}

LmdbStore::~LmdbStore() { mdb_env_close(impl_->env); }

const std::string& LmdbStore::path() const noexcept { return impl_->path; }

void LmdbStore::do_put_pages(std::span<const PageRecord> pages) {
  const Impl& s = *impl_;
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
  for (std::size_t k = 0; k < roots.size(); ++k) out[k] = s.read_page(cursor.cursor, roots[k]);
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

void LmdbStore::do_for_each_cap(
    const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  Impl::Cursor cursor(s, txn.txn, s.caps);
  MDB_val k, v;
  for (int rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_FIRST); rc != MDB_NOTFOUND;
       rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_NEXT)) {
    s.check(rc, "list caps");
    if (k.mv_size != 32)
      throw DecodeError(s.path + ": caps", 0, "a key of " + std::to_string(k.mv_size) + " bytes");
    fn(hash_of(k), std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(v.mv_data), v.mv_size));
  }
}

GcReport LmdbStore::do_gc(std::span<const Hash32> keep) {
  const Impl& s = *impl_;
  GcReport report;
  s.write([&](Impl::Txn& txn) {
    report = GcReport{};
    std::set<Hash32> kept;
    std::unordered_set<Hash32, Hash32Hasher> referenced;
    std::vector<Hash32> roots;
    for (const Hash32& root : keep) {
      MDB_val v;
      if (!s.find_cap(txn.txn, root, v)) throw NotFound("LmdbStore::gc: --keep", "cap", root);
      if (!kept.insert(root).second) continue;
      roots.clear();
      record_page_roots(std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(v.mv_data), v.mv_size),
                        roots);
      referenced.insert(roots.begin(), roots.end());
    }
    {
      Impl::Cursor cursor(s, txn.txn, s.caps);
      MDB_val k, v;
      for (int rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_FIRST); rc != MDB_NOTFOUND;
           rc = mdb_cursor_get(cursor.cursor, &k, &v, MDB_NEXT)) {
        s.check(rc, "scan caps");
        if (kept.count(hash_of(k)) != 0 && k.mv_size == 32) {
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
        if (k.mv_size >= 32 && referenced.count(hash_of(MDB_val{32, k.mv_data})) != 0) {
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

std::unique_ptr<PageStore::Lock> LmdbStore::lock(bool exclusive) const {
  return std::make_unique<FileLock>(impl_->path + "/datacap.lock", exclusive);
}

}  // namespace datacap
