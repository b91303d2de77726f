// LmdbStore: pages, cap records and a format marker in one LMDB environment.
//
// Databases: "pages" (page root → the page's bytes trimmed of trailing zeros, at most
// PAGE_HEAD bytes), "tails" (page root → the rest, ≤ 16 bytes, only for pages longer than
// PAGE_HEAD), "caps" (cap root → record, see store/record.hpp), "meta" ("format" → FORMAT).
// LMDB stores a value larger than half a page on its own overflow pages behind a 16-byte page
// header, so a whole 4096-byte value would take two 4 KiB pages; split at PAGE_HEAD it takes one.
#include <fcntl.h>
#include <lmdb.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
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

struct LmdbStore::Impl {
  std::string path;
  MDB_env* env = nullptr;
  MDB_dbi pages = 0, tails = 0, caps = 0, meta = 0;

  [[noreturn]] void fail(const std::string& what, int rc) const {
    std::string message = what + ": " + mdb_strerror(rc);
    if (rc == MDB_MAP_FULL) message += " (the store reached its map size; open it with a larger LmdbOptions::map_size)";
    throw IoError(path, message);
  }
  void check(int rc, const char* what) const {
    if (rc != MDB_SUCCESS) fail(what, rc);
  }

  // A transaction aborted unless committed.
  struct Txn {
    const Impl& impl;
    MDB_txn* txn = nullptr;
    Txn(const Impl& i, bool write) : impl(i) {
      impl.check(mdb_txn_begin(impl.env, nullptr, write ? 0 : MDB_RDONLY, &txn), "begin transaction");
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

  struct Cursor {
    MDB_cursor* cursor = nullptr;
    Cursor(const Impl& impl, MDB_txn* txn, MDB_dbi dbi) {
      impl.check(mdb_cursor_open(txn, dbi, &cursor), "open cursor");
    }
    ~Cursor() { mdb_cursor_close(cursor); }
    Cursor(const Cursor&) = delete;
    Cursor& operator=(const Cursor&) = delete;
  };

  // Reads the page under `root` inside `txn`; null when absent.
  PageRef read_page(MDB_txn* txn, const Hash32& root) const {
    MDB_val key = key_of(root);
    MDB_val head;
    int rc = mdb_get(txn, pages, &key, &head);
    if (rc == MDB_NOTFOUND) return PageRef();
    check(rc, "read page");
    MDB_val tail{0, nullptr};
    if (head.mv_size == PAGE_HEAD) {
      rc = mdb_get(txn, tails, &key, &tail);
      if (rc == MDB_NOTFOUND) {
        tail = MDB_val{0, nullptr};
      } else {
        check(rc, "read page tail");
      }
    }
    if (head.mv_size > PAGE_HEAD || tail.mv_size > PAGE_SIZE - PAGE_HEAD) {
      throw DecodeError(path + ": page " + to_hex(root), 0,
                        "stored as " + std::to_string(head.mv_size) + " + " +
                            std::to_string(tail.mv_size) + " bytes, more than a page");
    }
    PageNode* node = PageNode::allocate();
    std::memcpy(node->data, head.mv_data, head.mv_size);
    if (tail.mv_size != 0) std::memcpy(node->data + PAGE_HEAD, tail.mv_data, tail.mv_size);
    const std::size_t used = head.mv_size + tail.mv_size;
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
  s.check(mdb_env_create(&s.env), "create environment");
  try {
    s.check(mdb_env_set_maxdbs(s.env, 4), "set max databases");
    s.check(mdb_env_set_mapsize(s.env, static_cast<std::size_t>(options.map_size)), "set map size");
    // MDB_NOTLS: read transactions belong to the call, not the thread, so any thread may read.
    s.check(mdb_env_open(s.env, path.c_str(), MDB_NOTLS, 0644), "open");
    int dead = 0;
    s.check(mdb_reader_check(s.env, &dead), "clear stale readers");  // after a killed process
    Impl::Txn txn(s, true);
    s.check(mdb_dbi_open(txn.txn, "pages", MDB_CREATE, &s.pages), "open database 'pages'");
    s.check(mdb_dbi_open(txn.txn, "tails", MDB_CREATE, &s.tails), "open database 'tails'");
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
        throw DecodeError(path + ": meta.format", 0,
                          "store format '" + std::string(found) + "', expected '" + std::string(FORMAT) + "'");
      }
    }
    txn.commit();
  } catch (...) {
    mdb_env_close(s.env);
    throw;
  }
}

LmdbStore::~LmdbStore() { mdb_env_close(impl_->env); }

const std::string& LmdbStore::path() const noexcept { return impl_->path; }

void LmdbStore::do_put_pages(std::span<const PageRecord> pages) {
  const Impl& s = *impl_;
  Impl::Txn txn(s, true);
  for (const PageRecord& r : pages) {
    const std::uint8_t* bytes = r.page.data();
    std::size_t len = PAGE_SIZE;
    while (len > 0 && bytes[len - 1] == 0) --len;
    MDB_val key = key_of(r.root);
    MDB_val head = val_of(bytes, std::min(len, PAGE_HEAD));
    const int rc = mdb_put(txn.txn, s.pages, &key, &head, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) continue;  // stored once per content
    s.check(rc, "write page");
    if (len > PAGE_HEAD) {
      MDB_val tail = val_of(bytes + PAGE_HEAD, len - PAGE_HEAD);
      s.check(mdb_put(txn.txn, s.tails, &key, &tail, 0), "write page tail");
    }
  }
  txn.commit();
}

void LmdbStore::do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  for (std::size_t k = 0; k < roots.size(); ++k) out[k] = s.read_page(txn.txn, roots[k]);
}

bool LmdbStore::do_has_page(const Hash32& root) const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  MDB_val key = key_of(root);
  MDB_val v;
  const int rc = mdb_get(txn.txn, s.pages, &key, &v);
  if (rc == MDB_NOTFOUND) return false;
  s.check(rc, "read page");
  return true;
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
  Impl::Txn txn(s, true);
  MDB_val key = key_of(cap_root);
  MDB_val v = val_of(record.data(), record.size());
  const int rc = mdb_put(txn.txn, s.caps, &key, &v, MDB_NOOVERWRITE);
  if (rc == MDB_KEYEXIST) return;  // saved before: same root, same record
  s.check(rc, "write cap record");
  txn.commit();
}

bool LmdbStore::do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const {
  const Impl& s = *impl_;
  Impl::Txn txn(s, false);
  MDB_val key = key_of(cap_root);
  MDB_val v;
  const int rc = mdb_get(txn.txn, s.caps, &key, &v);
  if (rc == MDB_NOTFOUND) return false;
  s.check(rc, "read cap record");
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
    if (k.mv_size != 32) throw DecodeError(s.path + ": caps", 0, "a key of " + std::to_string(k.mv_size) + " bytes");
    fn(hash_of(k), std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(v.mv_data), v.mv_size));
  }
}

GcReport LmdbStore::do_gc(std::span<const Hash32> keep) {
  const Impl& s = *impl_;
  Impl::Txn txn(s, true);
  std::set<Hash32> kept;
  std::unordered_set<Hash32, Hash32Hasher> referenced;
  std::vector<Hash32> roots;
  for (const Hash32& root : keep) {
    MDB_val key = key_of(root);
    MDB_val v;
    const int rc = mdb_get(txn.txn, s.caps, &key, &v);
    if (rc == MDB_NOTFOUND) throw NotFound("LmdbStore::gc: --keep", "cap", root);
    s.check(rc, "read cap record");
    if (!kept.insert(root).second) continue;
    roots.clear();
    record_page_roots(std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(v.mv_data), v.mv_size), roots);
    referenced.insert(roots.begin(), roots.end());
  }
  GcReport report;
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
      if (k.mv_size == 32 && referenced.count(hash_of(k)) != 0) {
        ++report.pages_kept;
        continue;
      }
      MDB_val tail_key = k;
      const int trc = mdb_del(txn.txn, s.tails, &tail_key, nullptr);
      if (trc != MDB_NOTFOUND) s.check(trc, "delete page tail");
      s.check(mdb_cursor_del(cursor.cursor, 0), "delete page");
      ++report.pages_removed;
    }
  }
  txn.commit();
  return report;
}

std::unique_ptr<PageStore::Lock> LmdbStore::lock(bool exclusive) const {
  return std::make_unique<FileLock>(impl_->path + "/datacap.lock", exclusive);
}

}  // namespace datacap
