// Page stores (memory and LMDB, one suite for both), saved caps, gc, eliding and hydrating.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <shared_mutex>
#include <thread>

#include "datacap/datacap.hpp"
#include "store/lmdb_file.hpp"
#include "store/record.hpp"
#include "support/seed.hpp"
#include "support/vectors.hpp"
#ifdef DATACAP_STORE_TEST_REDIS
#include "datacap/redis_store.hpp"
#include "store/redis_test_env.hpp"
#endif

namespace datacap {
namespace {

using Bytes = std::vector<std::uint8_t>;
namespace fs = std::filesystem;

Bytes random_page(std::mt19937_64& rng, std::size_t used = PAGE_SIZE) {
  Bytes page(PAGE_SIZE, 0);
  for (std::size_t i = 0; i < used; ++i) page[i] = static_cast<std::uint8_t>(rng());
  if (used > 0) page[used - 1] |= 1;  // exactly `used` bytes before the zero tail
  return page;
}

// A clean cap of n pages: some random, some sharing content with others, some Empty.
DataCap random_cap(std::mt19937_64& rng, std::uint64_t n, std::vector<Bytes>* pool = nullptr) {
  DataCap cap = DataCap::zeroed(n * PAGE_SIZE);
  for (std::uint64_t p = 0; p < n; ++p) {
    const auto c = rng() % 10;
    if (c < 2) continue;  // Empty
    Bytes page = (c < 4 && pool != nullptr && !pool->empty())
                     ? (*pool)[rng() % pool->size()]
                     : random_page(rng, 1 + rng() % PAGE_SIZE);
    if (pool != nullptr) pool->push_back(page);
    cap.put_page(p * PAGE_SIZE, page);
  }
  return cap;
}

Bytes bytes_of(const DataCap& cap) {
  Bytes out(cap.content_len());
  cap.copy_into(0, out);
  return out;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("datacap_store_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

// A store written against the do_* contract in datacap/store.hpp alone, as a store outside the
// library (a Redis store) would be: copies of the bytes in ordered maps under one mutex (held
// while do_for_each_cap calls back: the base promises the callback calls no hook), and a
// reader-writer mutex as the save/gc lock. Its maps are public so that tests can damage them.
class MapStore final : public PageStore {
 public:
  [[nodiscard]] std::string name() const override { return "map store"; }

  std::map<Hash32, Bytes> pages;  // guarded by mutex_
  std::map<Hash32, Bytes> caps;   // guarded by mutex_

 protected:
  void do_put_pages(std::span<const PageRecord> records) override {
    const std::lock_guard guard(mutex_);
    for (const PageRecord& r : records)
      pages.try_emplace(r.root, Bytes(r.page.data(), r.page.data() + PAGE_SIZE));
  }
  void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const override {
    const std::lock_guard guard(mutex_);
    for (std::size_t k = 0; k < roots.size(); ++k) {
      const auto it = pages.find(roots[k]);
      out[k] = it == pages.end() ? PageRef() : PageRef::copy_of(it->second);
    }
  }
  bool do_has_page(const Hash32& root) const override {
    const std::lock_guard guard(mutex_);
    return pages.count(root) != 0;
  }
  void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const override {
    const std::lock_guard guard(mutex_);
    for (std::size_t k = 0; k < roots.size(); ++k) out[k] = pages.count(roots[k]) != 0;
  }
  std::uint64_t do_page_count() const override {
    const std::lock_guard guard(mutex_);
    return pages.size();
  }
  void do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) override {
    const std::lock_guard guard(mutex_);
    caps.try_emplace(cap_root, record.begin(), record.end());
  }
  bool do_has_cap(const Hash32& cap_root) const override {
    const std::lock_guard guard(mutex_);
    return caps.count(cap_root) != 0;
  }
  bool do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const override {
    const std::lock_guard guard(mutex_);
    const auto it = caps.find(cap_root);
    if (it == caps.end()) return false;
    record = it->second;
    return true;
  }
  void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const override {
    const std::lock_guard guard(mutex_);
    for (const auto& [root, record] : caps) fn(root, record);
  }
  GcReport do_gc(std::span<const Hash32> keep) override {
    const std::lock_guard guard(mutex_);
    std::set<Hash32> referenced;
    std::vector<Hash32> roots;
    for (const Hash32& root : keep) {
      const auto it = caps.find(root);
      if (it == caps.end()) throw NotFound(name() + ": gc: keep", "cap", root);
      roots.clear();
      record_page_roots(it->second, roots, name(), &root);
      referenced.insert(roots.begin(), roots.end());
    }
    const std::set<Hash32> kept(keep.begin(), keep.end());
    GcReport report;
    std::erase_if(caps, [&](const auto& entry) {
      const bool drop = kept.count(entry.first) == 0;
      ++(drop ? report.caps_removed : report.caps_kept);
      return drop;
    });
    std::erase_if(pages, [&](const auto& entry) {
      const bool drop = referenced.count(entry.first) == 0;
      ++(drop ? report.pages_removed : report.pages_kept);
      return drop;
    });
    return report;
  }
  std::unique_ptr<Lock> do_lock(bool exclusive) const override {
    struct Held final : Lock {
      std::shared_lock<std::shared_mutex> shared;
      std::unique_lock<std::shared_mutex> unique;
    };
    auto held = std::make_unique<Held>();
    if (exclusive) {
      held->unique = std::unique_lock(save_gc_);
    } else {
      held->shared = std::shared_lock(save_gc_);
    }
    return held;
  }

 private:
  mutable std::mutex mutex_;
  mutable std::shared_mutex save_gc_;
};

// redis and redis_cluster: this file compiled into datacap_redis_tests with
// DATACAP_STORE_TEST_REDIS (cmake/redis_tests.cmake), where the conformance suite runs on the
// servers of scripts/redis-servers.sh instead of the in-process stores.
// tiered: LMDB in front of LMDB (main binary); tiered_redis: LMDB in front of the cluster.
enum class Kind { memory, lmdb, map, tiered, redis, redis_cluster, tiered_redis };

class Store : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override { reopen(); }
  void TearDown() override {
#ifdef DATACAP_STORE_TEST_REDIS
    if (store_) (void)store_->gc({});  // the test's keys, under its own prefix, removed
#endif
    store_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
    if (!remote_dir_.empty()) fs::remove_all(remote_dir_);
  }
  // LMDB: closes and opens the same directory (what persists); Redis: a new connection to the
  // same servers and key prefix; memory: keeps the store->
  void reopen() {
#ifdef DATACAP_STORE_TEST_REDIS
    if (GetParam() == Kind::redis || GetParam() == Kind::redis_cluster ||
        GetParam() == Kind::tiered_redis) {
      if (redis_prefix_.empty()) redis_prefix_ = testing::unique_redis_prefix();
      RedisOptions options;
      options.key_prefix = redis_prefix_;
      store_.reset();
      std::unique_ptr<PageStore> redis = open_redis_store(
          testing::redis_url(GetParam() == Kind::redis ? "DATACAP_REDIS_URL"
                                                       : "DATACAP_REDIS_CLUSTER_URL"),
          options);
      if (GetParam() != Kind::tiered_redis) {
        store_ = std::move(redis);
        return;
      }
      if (dir_.empty())
        dir_ = fresh_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
      store_ = make_tiered_store(open_lmdb_store(dir_.string()), std::move(redis));
      return;
    }
#endif
    if (GetParam() == Kind::tiered) {
      if (dir_.empty()) {
        const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
        dir_ = fresh_dir(name + "_local");
        remote_dir_ = fresh_dir(name + "_remote");
      }
      store_.reset();
      store_ =
          make_tiered_store(open_lmdb_store(dir_.string()), open_lmdb_store(remote_dir_.string()));
      return;
    }
    if (GetParam() == Kind::memory) {
      if (!store_) store_ = make_memory_store();
      return;
    }
    if (GetParam() == Kind::map) {
      if (!store_) store_ = std::make_unique<MapStore>();
      return;
    }
    if (dir_.empty())
      dir_ = fresh_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    store_.reset();
    store_ = open_lmdb_store(dir_.string());
  }
  PageStore& store() { return *store_; }

  fs::path dir_;
  fs::path remote_dir_;  // tiered: the remote tier's LMDB
  std::string redis_prefix_;
  std::unique_ptr<PageStore> store_;
};

TEST_P(Store, PagesAreKeyedByTheirRootAndStoredOnce) {
  std::mt19937_64 rng(testing::env_seed(31));
  // Lengths around the split LMDB makes at 4080 bytes, and a zero page.
  for (const std::size_t used : {0u, 1u, 100u, 4079u, 4080u, 4081u, 4095u, 4096u}) {
    SCOPED_TRACE("used " + std::to_string(used));
    const Bytes bytes = random_page(rng, used);
    const PageRef page = PageRef::copy_of(bytes);
    const Hash32 root = store().put(page);
    EXPECT_EQ(root, page_root(Digest::sha256, bytes));
    EXPECT_TRUE(store().has(root));
    const std::uint64_t count = store().page_count();
    EXPECT_EQ(store().put(PageRef::copy_of(bytes)), root);  // same content, another object
    EXPECT_EQ(store().page_count(), count);
    reopen();
    const PageRef back = store().get(root);
    ASSERT_TRUE(back);
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), back.data()));
  }
  Hash32 absent{};
  absent[0] = 0x42;
  EXPECT_FALSE(store().has(absent));
  EXPECT_FALSE(store().get(absent));
  // Batched forms.
  std::vector<PageRef> pages;
  for (int i = 0; i < 50; ++i) pages.push_back(PageRef::copy_of(random_page(rng)));
  pages.push_back(pages[3]);  // a duplicate inside one batch
  std::vector<Hash32> roots(pages.size());
  store().put_many(pages, roots);
  std::vector<PageRef> got(roots.size());
  store().get_many(roots, got);
  std::vector<Hash32> asked = roots;
  asked.push_back(absent);
  const std::vector<bool> present = store().has_many(asked);
  ASSERT_EQ(present.size(), asked.size());
  EXPECT_TRUE(std::all_of(present.begin(), present.end() - 1, [](bool b) { return b; }));
  EXPECT_FALSE(present.back());
  for (std::size_t k = 0; k < pages.size(); ++k) {
    ASSERT_TRUE(got[k]);
    EXPECT_TRUE(std::equal(pages[k].data(), pages[k].data() + PAGE_SIZE, got[k].data()));
  }
  EXPECT_THROW(store().put_many(pages, std::span<Hash32>(roots).first(3)), InvalidArgument);
  EXPECT_THROW(store().get_many(roots, std::span<PageRef>(got).first(3)), InvalidArgument);
  EXPECT_THROW((void)store().put(PageRef()), InvalidArgument);
}

TEST_P(Store, SavedCapsLoadBackByRootWithTheirBytes) {
  std::mt19937_64 rng(testing::env_seed(37));
  std::vector<Bytes> pool;
  std::vector<std::pair<Hash32, Bytes>> saved;
  for (const std::uint64_t n : {1u, 2u, 64u, 65u, 300u, 4100u}) {
    const DataCap cap = random_cap(rng, n, &pool);
    const Hash32 root = store().save_cap(cap);
    EXPECT_EQ(root, cap.hash_tree_root());
    EXPECT_TRUE(store().has_cap(root));
    saved.emplace_back(root, bytes_of(cap));
  }
  // The SPEC vectors too (a 2^20-page sparse cap among them).
  for (const auto& row : testing::read_manifest()) {
    const DataCap cap = DataCap::from_bytes_sized(
        testing::read_file(testing::vectors_dir() + "/" + row.file), row.size_arg);
    EXPECT_EQ(to_hex(store().save_cap(cap)), row.sha256_root) << row.file;
  }
  // The empty cap (size 0) has a root of its own.
  const Hash32 empty_root = store().save_cap(DataCap::empty());
  EXPECT_EQ(empty_root, DataCap::empty().hash_tree_root());
  EXPECT_EQ(store().load_cap(empty_root).content_len(), 0u);
  const std::uint64_t pages = store().page_count();
  for (const auto& [root, bytes] : saved) {
    const DataCap again = DataCap::from_bytes(bytes);  // same content, no shared objects
    EXPECT_EQ(store().save_cap(again), root);
  }
  EXPECT_EQ(store().page_count(), pages) << "saving equal content stored new pages";
  reopen();
  for (const auto& [root, bytes] : saved) {
    const DataCap cap = store().load_cap(root);
    EXPECT_EQ(cap.hash_tree_root(), root);
    EXPECT_EQ(bytes_of(cap), bytes);
    EXPECT_TRUE(cap.missing_pages().empty());
  }
  for (const auto& row : testing::read_manifest()) {
    EXPECT_EQ(to_hex(store().load_cap(hash_from_hex(row.sha256_root)).hash_tree_root()),
              row.sha256_root);
  }
  const std::vector<SavedCap> listed = store().list_caps();
  EXPECT_TRUE(std::is_sorted(listed.begin(), listed.end(),
                             [](const SavedCap& a, const SavedCap& b) { return a.root < b.root; }));
  for (const auto& [root, bytes] : saved) {
    const auto it = std::find_if(listed.begin(), listed.end(),
                                 [&](const SavedCap& c) { return c.root == root; });
    ASSERT_NE(it, listed.end());
    EXPECT_EQ(it->content_len, bytes.size());
  }
}

TEST_P(Store, MissingPagesAreRecordedByHashAndLoadWhenTheStoreHasThem) {
  std::mt19937_64 rng(testing::env_seed(41));
  DataCap cap = random_cap(rng, 40);
  const Hash32 root = cap.hash_tree_root();
  const Bytes bytes = bytes_of(cap);
  std::vector<std::uint64_t> loaded;
  cap.backing().for_each_stored([&](std::uint32_t p, const PageSlot&) { loaded.push_back(p); });
  ASSERT_GE(loaded.size(), 4u);
  DataCap partial = cap;
  partial.elide_pages(std::span<const std::uint64_t>(loaded).first(3));
  EXPECT_EQ(store().save_cap(partial), root);  // the elided pages are recorded by hash only
  reopen();
  DataCap back = store().load_cap(root);
  EXPECT_EQ(back.hash_tree_root(), root);
  EXPECT_EQ(back.missing_pages(), std::vector<std::uint64_t>(loaded.begin(), loaded.begin() + 3));
  // Once the store has the elided pages' bytes, loading gives them back Loaded.
  for (int k = 0; k < 3; ++k)
    (void)store().put(cap.page_slot(loaded[static_cast<std::size_t>(k)]).page());
  back = store().load_cap(root);
  EXPECT_TRUE(back.missing_pages().empty());
  EXPECT_EQ(bytes_of(back), bytes);
}

TEST_P(Store, GcKeepsNamedCapsAndTheirPagesOnly) {
  std::mt19937_64 rng(testing::env_seed(43));
  std::vector<Bytes> pool;
  const DataCap a = random_cap(rng, 200, &pool);
  const DataCap b = random_cap(rng, 300, &pool);  // shares some pages with a
  const DataCap c = random_cap(rng, 100, &pool);
  const Hash32 ra = store().save_cap(a), rb = store().save_cap(b), rc = store().save_cap(c);
  (void)store().put(PageRef::copy_of(random_page(rng)));  // a page no cap references
  Hash32 unknown{};
  unknown[1] = 9;
  const std::uint64_t before = store().page_count();
  const std::vector<Hash32> bad = {ra, unknown};
  EXPECT_THROW((void)store().gc(bad), NotFound);
  EXPECT_EQ(store().page_count(), before);
  EXPECT_EQ(store().list_caps().size(), 3u);

  const std::vector<Hash32> keep = {rb, rb, ra};
  const GcReport report = store().gc(keep);
  EXPECT_EQ(report.caps_kept, 2u);
  EXPECT_EQ(report.caps_removed, 1u);
  EXPECT_EQ(report.pages_kept + report.pages_removed, before);
  std::set<Hash32> referenced;
  for (const DataCap* cap : {&a, &b}) {
    cap->backing().for_each_stored(
        [&](std::uint32_t, const PageSlot& s) { referenced.insert(s.root()); });
  }
  EXPECT_EQ(report.pages_kept, referenced.size());
  EXPECT_EQ(store().page_count(), referenced.size());
  EXPECT_FALSE(store().has_cap(rc));
  reopen();
  EXPECT_EQ(bytes_of(store().load_cap(ra)), bytes_of(a));
  EXPECT_EQ(bytes_of(store().load_cap(rb)), bytes_of(b));
  EXPECT_THROW((void)store().load_cap(rc), NotFound);
  // Keeping nothing empties the store->
  const GcReport all = store().gc({});
  EXPECT_EQ(all.caps_removed, 2u);
  EXPECT_EQ(store().page_count(), 0u);
  EXPECT_TRUE(store().list_caps().empty());
}

TEST_P(Store, ErrorsAreTyped) {
  std::mt19937_64 rng(testing::env_seed(47));
  DataCap cap = random_cap(rng, 5);
  Hash32 unknown{};
  unknown[2] = 7;
  try {
    (void)store().load_cap(unknown);
    ADD_FAILURE() << "no NotFound";
  } catch (const NotFound& e) {
    EXPECT_EQ(e.key(), unknown);
    EXPECT_EQ(e.kind(), ErrorKind::not_found);
    EXPECT_NE(std::string(e.what()).find(to_hex(unknown)), std::string::npos);
  }
  DataCap dirty = cap;
  dirty.write(1, Bytes{1});
  EXPECT_THROW((void)store().save_cap(dirty), DirtyCap);
  PageStore::CapWriter writer(store());
  const Bytes page2 = random_page(rng);
  writer.add_page(2, PageRef::copy_of(page2));
  EXPECT_THROW(writer.add_page(2, PageRef::copy_of(random_page(rng))), InvalidArgument);
  EXPECT_THROW(writer.add_page(1, PageRef::copy_of(random_page(rng))), InvalidArgument);
  EXPECT_THROW(writer.add_page(MAX_PAGE_COUNT, PageRef::copy_of(random_page(rng))), OutOfRange);
  EXPECT_THROW(writer.add_page(3, PageRef()), InvalidArgument);
  writer.add_page(3, PageRef::copy_of(Bytes(PAGE_SIZE, 0)));  // recorded as Empty
  EXPECT_THROW((void)writer.finish(4 * PAGE_SIZE + 1), OutOfRange);
  EXPECT_THROW((void)writer.finish(3 * PAGE_SIZE), OutOfRange);  // does not cover page 3
  const Hash32 root = writer.finish(6 * PAGE_SIZE);
  EXPECT_THROW((void)writer.finish(6 * PAGE_SIZE), InvalidArgument);
  EXPECT_THROW(writer.add_page(5, PageRef::copy_of(page2)), InvalidArgument);
  const std::vector<SparsePage> sparse = {{2, page2}};
  EXPECT_EQ(root, DataCap::from_sparse_pages(6 * PAGE_SIZE, sparse).hash_tree_root());
  EXPECT_EQ(store().saved_cap(root).page_entries, 1u);
  EXPECT_THROW((void)store().saved_cap(unknown), NotFound);
}

TEST_P(Store, VerifyOfASoundStoreFindsNothingAndCountsAbsentPages) {
  std::mt19937_64 rng(testing::env_seed(49));
  const Hash32 whole = store().save_cap(random_cap(rng, 60));
  // A cap saved with two Missing pages: its record names pages the store does not hold.
  DataCap partial = random_cap(rng, 40);
  std::vector<std::uint64_t> loaded;
  partial.backing().for_each_stored([&](std::uint32_t p, const PageSlot&) { loaded.push_back(p); });
  ASSERT_GE(loaded.size(), 2u);
  partial.elide_pages(std::span<const std::uint64_t>(loaded).first(2));
  const Hash32 with_missing = store().save_cap(partial);
  EXPECT_FALSE(store().is_read_only());
  EXPECT_NO_THROW(store().check_structure());
  const StoreVerifyReport report = store().verify();
  EXPECT_FALSE(report.damaged());
  EXPECT_TRUE(report.problems.empty()) << report.problems.front().message;
  EXPECT_EQ(report.caps, 2u);
  EXPECT_EQ(report.pages, store().page_count());
  EXPECT_EQ(report.bad_caps + report.bad_pages + report.damaged_page_refs + report.bad_trees, 0u);
  EXPECT_EQ(report.absent_page_refs, 2u);
  EXPECT_EQ(report.caps_with_absent_pages, 1u);
  EXPECT_NE(whole, with_missing);
}

#ifdef DATACAP_STORE_TEST_REDIS
INSTANTIATE_TEST_SUITE_P(EveryStore, Store,
                         ::testing::Values(Kind::redis, Kind::redis_cluster, Kind::tiered_redis),
                         [](const auto& info) {
                           return info.param == Kind::redis           ? "Redis"
                                  : info.param == Kind::redis_cluster ? "RedisCluster"
                                                                      : "TieredRedisCluster";
                         });

}  // namespace
}  // namespace datacap
#else
INSTANTIATE_TEST_SUITE_P(EveryStore, Store,
                         ::testing::Values(Kind::memory, Kind::lmdb, Kind::map, Kind::tiered),
                         [](const auto& info) {
                           return info.param == Kind::memory ? "Memory"
                                  : info.param == Kind::lmdb ? "Lmdb"
                                  : info.param == Kind::map  ? "Map"
                                                             : "Tiered";
                         });

// The rest of the file is about the in-process stores; datacap_tests runs it, not the Redis
// binary.

// The default verify (PageStore::do_verify), on a store that has only the hooks: records that
// do not decode or whose page table gives another root are listed, naming the store and cap.
TEST(MapStore, TheDefaultVerifyFindsDamagedRecords) {
  std::mt19937_64 rng(testing::env_seed(51));
  MapStore store;
  std::vector<Hash32> roots;
  for (int k = 0; k < 4; ++k) roots.push_back(store.save_cap(random_cap(rng, 20 + 10 * k)));
  store.caps.at(roots[0]).resize(10);                           // does not decode
  store.caps.at(roots[1])[detail::CAP_RECORD_HEADER + 4] ^= 1;  // an entry's root altered
  std::vector<Hash32> named;
  PageStore::record_page_roots(store.caps.at(roots[2]), named);
  ASSERT_FALSE(named.empty());
  store.pages.erase(named.front());  // a page lost
  const StoreVerifyReport report = store.verify();
  EXPECT_TRUE(report.damaged());
  EXPECT_EQ(report.caps, 4u);
  EXPECT_EQ(report.bad_caps, 2u);
  EXPECT_EQ(report.problem_count, 2u);
  ASSERT_EQ(report.problems.size(), 2u);
  for (const StoreProblem& p : report.problems) {
    EXPECT_EQ(p.kind, StoreProblem::Kind::bad_cap);
    EXPECT_TRUE(p.root == roots[0] || p.root == roots[1]);
    EXPECT_NE(p.message.find("map store"), std::string::npos) << p.message;
    EXPECT_NE(p.message.find(to_hex(p.root)), std::string::npos) << p.message;
  }
  EXPECT_EQ(report.absent_page_refs, 1u);
  EXPECT_EQ(report.caps_with_absent_pages, 1u);
  EXPECT_EQ(report.pages, store.page_count());
  EXPECT_THROW((void)store.list_caps(), DecodeError);
  EXPECT_EQ(store.load_cap(roots[3]).hash_tree_root(), roots[3]);
}

// ---- damaged stores --------------------------------------------------------------------------

// Overwrites a value in one of the store's LMDB databases, as a damaged disk or a bug would.
void poke_lmdb(const fs::path& dir, const char* db, const Bytes& key, const Bytes& value) {
  MDB_env* env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 4);
  mdb_env_set_mapsize(env, std::size_t{1} << 30);  // small: sanitizers leave little address space
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0644), 0);
  MDB_txn* txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi;
  ASSERT_EQ(mdb_dbi_open(txn, db, 0, &dbi), 0);
  MDB_val k{key.size(), const_cast<std::uint8_t*>(key.data())};  // NOLINT: LMDB's C API
  MDB_val v{value.size(), const_cast<std::uint8_t*>(value.data())};
  ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

TEST(LmdbStore, DamagedPagesAndRecordsAreTypedErrors) {
  std::mt19937_64 rng(testing::env_seed(53));
  const fs::path dir = fresh_dir("damaged");
  const DataCap cap = random_cap(rng, 20);
  Hash32 root, victim;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    root = store->save_cap(cap);
    cap.backing().for_each_stored([&](std::uint32_t, const PageSlot& s) { victim = s.root(); });
  }
  poke_lmdb(dir, "pages", Bytes(victim.begin(), victim.end()), Bytes(100, 0xAB));
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    try {
      (void)store->load_cap(root);
      ADD_FAILURE() << "no IntegrityError";
    } catch (const IntegrityError& e) {
      EXPECT_EQ(e.expected(), victim);
      EXPECT_EQ(e.kind(), ErrorKind::integrity);
    }
  }
  poke_lmdb(dir, "caps", Bytes(root.begin(), root.end()), Bytes(30, 1));
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    EXPECT_THROW((void)store->load_cap(root), DecodeError);
  }
  fs::remove_all(dir);
}

TEST(LmdbStore, OpeningErrorsAreTyped) {
  const fs::path dir = fresh_dir("open");
  EXPECT_THROW((void)open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false}),
               IoError);
  // Without `create`, an existing directory is not made a store either (it was: `store gc` on
  // a wrong directory left an empty store there).
  fs::create_directories(dir);
  EXPECT_THROW((void)open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false}),
               IoError);
  EXPECT_TRUE(fs::is_empty(dir));
  // Nor is a bare LMDB environment (no databases yet) made one.
  {
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_mapsize(env, std::size_t{1} << 30);
    ASSERT_EQ(mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0644), 0);
    mdb_env_close(env);
    const Bytes bare = testing::read_file((dir / "data.mdb").string());
    EXPECT_THROW((void)open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false}),
                 DecodeError);
    EXPECT_EQ(testing::read_file((dir / "data.mdb").string()), bare);
    fs::remove_all(dir);
  }
  { const std::unique_ptr<PageStore> created = open_lmdb_store(dir.string()); }
  EXPECT_NO_THROW((void)open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false}));
  // A store of another format.
  const std::string format = "format", other = "someone-elses-store-9";
  poke_lmdb(dir, "meta", Bytes(format.begin(), format.end()), Bytes(other.begin(), other.end()));
  try {
    const std::unique_ptr<PageStore> foreign = open_lmdb_store(dir.string());
    ADD_FAILURE() << "no DecodeError";
  } catch (const DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find(other), std::string::npos) << e.what();
  }
  // A file where the directory should be.
  const fs::path file = dir / "plain";
  { std::ofstream(file) << "x"; }
  EXPECT_THROW((void)open_lmdb_store(file.string()), IoError);
  fs::remove_all(dir);
}

// ---- eliding and hydrating --------------------------------------------------------------------

// A store that answers with other bytes than it was asked for.
class LyingStore final : public PageStore {
 public:
  explicit LyingStore(PageRef answer) : answer_(std::move(answer)) {}

 protected:
  void do_put_pages(std::span<const PageRecord>) override {}
  void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const override {
    for (std::size_t k = 0; k < roots.size(); ++k) out[k] = honest_->get(roots[k]);
    if (!out.empty()) out[out.size() / 2] = answer_;
  }
  bool do_has_page(const Hash32&) const override { return true; }
  void do_has_pages(std::span<const Hash32>, std::vector<bool>& out) const override {
    out.assign(out.size(), true);
  }
  std::uint64_t do_page_count() const override { return 0; }
  void do_put_cap(const Hash32&, std::span<const std::uint8_t>) override {}
  bool do_has_cap(const Hash32&) const override { return false; }
  bool do_get_cap(const Hash32&, std::vector<std::uint8_t>&) const override { return false; }
  void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>&) const override {}
  GcReport do_gc(std::span<const Hash32>) override { return {}; }
  std::unique_ptr<Lock> do_lock(bool) const override { return std::make_unique<Lock>(); }

 public:
  std::unique_ptr<PageStore> honest_ = make_memory_store();
  PageRef answer_;
};

TEST(Hydrate, ElidingKeepsTheRootAndHydratingRestoresTheBytes) {
  std::mt19937_64 rng(testing::env_seed(59));
  const DataCap full = random_cap(rng, 700);
  const Hash32 root = full.hash_tree_root();
  const Bytes bytes = bytes_of(full);
  const std::unique_ptr<PageStore> store = make_memory_store();
  (void)store->save_cap(full);

  DataCap partial = full;  // shares the backing: eliding must not show in `full`
  std::vector<std::uint64_t> chosen;
  for (std::uint64_t p = 0; p < 700; p += 3) chosen.push_back(p);
  partial.elide_pages(chosen);
  EXPECT_EQ(partial.hash_tree_root(), root);
  EXPECT_EQ(bytes_of(full), bytes);
  EXPECT_TRUE(full.missing_pages().empty());
  std::vector<std::uint64_t> expect_missing;
  for (std::uint64_t p : chosen) {
    if (full.page_slot(p).is_loaded()) expect_missing.push_back(p);
  }
  EXPECT_EQ(partial.missing_pages(), expect_missing);
  for (std::uint64_t p : expect_missing) {
    EXPECT_EQ(partial.page_slot(p).missing_hash(), full.page_slot(p).root());
  }
  Bytes out(PAGE_SIZE);
  EXPECT_THROW(partial.copy_into(expect_missing[0] * PAGE_SIZE, out), MissingPage);
  // flush keeps Missing pages.
  EXPECT_EQ(partial.flush().missing_pages(), expect_missing);

  // Hydrate part, then the rest.
  const std::vector<std::uint64_t> some(expect_missing.begin(), expect_missing.begin() + 10);
  const DataCap before_hydrate = partial;
  HydrateReport r = hydrate(partial, *store, some);
  EXPECT_EQ(r.hydrated, 10u);
  EXPECT_EQ(r.still_missing, 0u);
  EXPECT_EQ(partial.missing_pages().size(), expect_missing.size() - 10);
  EXPECT_EQ(before_hydrate.missing_pages(), expect_missing);  // a copy is untouched
  r = hydrate(partial, *store);
  EXPECT_EQ(r.hydrated, expect_missing.size() - 10);
  EXPECT_TRUE(partial.missing_pages().empty());
  EXPECT_EQ(bytes_of(partial), bytes);
  EXPECT_EQ(partial.hash_tree_root(), root);
  // BLAKE2b roots agree again once every page is Loaded.
  EXPECT_EQ(partial.hash_tree_root(Digest::blake2b256), full.hash_tree_root(Digest::blake2b256));
}

TEST(Hydrate, PagesTheStoreLacksStayMissing) {
  std::mt19937_64 rng(testing::env_seed(61));
  DataCap cap = random_cap(rng, 50);
  const Hash32 root = cap.hash_tree_root();
  const std::unique_ptr<PageStore> store = make_memory_store();
  std::vector<std::uint64_t> all;
  cap.backing().for_each_stored([&](std::uint32_t p, const PageSlot&) { all.push_back(p); });
  (void)store->put(cap.page_slot(all[0]).page());
  cap.elide_pages(all);
  const HydrateReport r = hydrate(cap, *store);
  EXPECT_EQ(r.hydrated, 1u);
  EXPECT_EQ(r.still_missing, all.size() - 1);
  EXPECT_EQ(cap.hash_tree_root(), root);
}

TEST(Hydrate, AStoreReturningWrongBytesChangesNothing) {
  std::mt19937_64 rng(testing::env_seed(67));
  const DataCap full = random_cap(rng, 100);
  LyingStore store(PageRef::copy_of(random_page(rng)));
  (void)store.honest_->save_cap(full);
  DataCap cap = full;
  std::vector<std::uint64_t> all;
  full.backing().for_each_stored([&](std::uint32_t p, const PageSlot&) { all.push_back(p); });
  cap.elide_pages(all);
  const std::vector<std::uint64_t> missing = cap.missing_pages();
  try {
    (void)hydrate(cap, store);
    ADD_FAILURE() << "no IntegrityError";
  } catch (const IntegrityError& e) {
    EXPECT_EQ(e.page_index(), missing[missing.size() / 2]);
  }
  EXPECT_EQ(cap.missing_pages(), missing) << "a page was resolved despite the error";
  EXPECT_EQ(cap.hash_tree_root(), full.hash_tree_root());
}

TEST(Hydrate, DirtyPagesAreElidedAndResolvedInTheOverlay) {
  std::mt19937_64 rng(testing::env_seed(71));
  const DataCap base = random_cap(rng, 30);
  DataCap cap = base;
  const Bytes page = random_page(rng);
  cap.write_page(5 * PAGE_SIZE, page);
  const Hash32 flushed_root = cap.flush().hash_tree_root();
  const std::vector<std::uint64_t> five = {5};
  cap.elide_pages(five);
  EXPECT_TRUE(cap.is_dirty(5));
  EXPECT_TRUE(cap.page_slot(5).is_missing());
  EXPECT_EQ(cap.flush().hash_tree_root(), flushed_root);
  const std::vector<DataCap::ResolvedPage> wrong = {{5, PageRef::copy_of(random_page(rng))}};
  EXPECT_THROW(cap.resolve_missing(wrong), IntegrityError);
  const std::vector<DataCap::ResolvedPage> right = {{5, PageRef::copy_of(page)}};
  cap.resolve_missing(right);
  EXPECT_TRUE(cap.page_slot(5).is_loaded());
  EXPECT_EQ(cap.flush().hash_tree_root(), flushed_root);
  // Misuse.
  const std::vector<std::uint64_t> past = {30};
  EXPECT_THROW(cap.elide_pages(past), OutOfRange);
  EXPECT_THROW(cap.resolve_missing(right), InvalidArgument);  // page 5 is Loaded now
  const std::vector<DataCap::ResolvedPage> past_end = {{30, PageRef::copy_of(page)}};
  EXPECT_THROW(cap.resolve_missing(past_end), OutOfRange);
  EXPECT_THROW((void)hydrate(cap, *make_memory_store(), past), OutOfRange);
}

}  // namespace
}  // namespace datacap

namespace datacap {
namespace {

// Saves, loads, hydrations and gc from several threads at once on one store (run under
// ThreadSanitizer in CI): every load sees a whole cap, every hydration the right bytes.
void concurrent_use(PageStore& store) {
  std::mt19937_64 rng(testing::env_seed(73));
  std::vector<DataCap> caps;
  for (int k = 0; k < 6; ++k) caps.push_back(random_cap(rng, 40 + rng() % 200));
  const Hash32 pinned = store.save_cap(caps[0]);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 6; ++round) {
        const DataCap& cap = caps[static_cast<std::size_t>((t + round) % caps.size())];
        const Hash32 root = store.save_cap(cap);
        if (store.load_cap(pinned).hash_tree_root() != pinned) ++failures;
        DataCap partial = cap;
        std::vector<std::uint64_t> all;
        cap.backing().for_each_stored([&](std::uint32_t p, const PageSlot&) { all.push_back(p); });
        partial.elide_pages(all);
        if (store.has_cap(root)) {  // a concurrent gc may have dropped it (and its pages)
          (void)hydrate(partial, store);
        }
        if (partial.hash_tree_root() != root) ++failures;
        if (t == 0 && round % 2 == 1) {
          const std::vector<Hash32> keep = {pinned};
          (void)store.gc(keep);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(store.load_cap(pinned).hash_tree_root(), pinned);
}

TEST(StoreThreads, MemoryStoreUnderConcurrentUse) {
  const std::unique_ptr<PageStore> store = make_memory_store();
  concurrent_use(*store);
}

TEST(StoreThreads, AStoreWrittenOnTheHooksUnderConcurrentUse) {
  MapStore store;
  concurrent_use(store);
}

TEST(StoreThreads, LmdbStoreUnderConcurrentUse) {
  const fs::path dir = fresh_dir("threads");
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    concurrent_use(*store);
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace datacap

namespace datacap {
namespace {

TEST(LmdbStore, TheMapGrowsWhenItFills) {
  std::mt19937_64 rng(testing::env_seed(79));
  const fs::path dir = fresh_dir("grow");
  DataCap cap = DataCap::zeroed(20000 * PAGE_SIZE);  // 80 MiB of pages in a 64 MiB map
  std::vector<std::uint8_t> page(PAGE_SIZE);
  for (std::uint64_t p = 0; p < 20000; ++p) {
    for (std::size_t i = 0; i < PAGE_SIZE; i += 8) {
      const std::uint64_t r = rng();
      std::memcpy(page.data() + i, &r, 8);
    }
    cap.put_page(p * PAGE_SIZE, page);
  }
  Hash32 root;
  {
    const std::unique_ptr<PageStore> store =
        open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 26, true});
    root = store->save_cap(cap);
  }
  const std::unique_ptr<PageStore> reopened =
      open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 26, false});
  EXPECT_EQ(reopened->load_cap(root).hash_tree_root(), root);
  EXPECT_EQ(reopened->page_count(), 20000u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace datacap

// ---- damaged LMDB files (CLI review, issue 11 items 8 and 10)
// ------------------------------------

namespace datacap {
namespace {

// Pages of random bytes: each a whole LMDB overflow page, so its bytes stand in data.mdb as
// they are.
DataCap full_random_cap(std::mt19937_64& rng, std::uint64_t n) {
  DataCap cap = DataCap::zeroed(n * PAGE_SIZE);
  for (std::uint64_t p = 0; p < n; ++p) cap.put_page(p * PAGE_SIZE, random_page(rng));
  return cap;
}

void write_file(const fs::path& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Overwrites bytes of a file in place, as a damaged disk would.
void write_at(const fs::path& path, std::uint64_t offset, const Bytes& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

std::uint64_t load_u64(const Bytes& b, std::size_t at) {
  std::uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}

Bytes le64(std::uint64_t v) {
  Bytes out(8);
  std::memcpy(out.data(), &v, 8);
  return out;
}

// A value in one of the store's LMDB databases, read with LMDB itself.
Bytes peek_lmdb(const fs::path& dir, const char* db, const Bytes& key) {
  MDB_env* env = nullptr;
  EXPECT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 4);
  mdb_env_set_mapsize(env, std::size_t{1} << 30);
  EXPECT_EQ(mdb_env_open(env, dir.c_str(), MDB_NOTLS | MDB_RDONLY, 0644), 0);
  MDB_txn* txn = nullptr;
  EXPECT_EQ(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), 0);
  MDB_dbi dbi;
  EXPECT_EQ(mdb_dbi_open(txn, db, 0, &dbi), 0);
  MDB_val k{key.size(), const_cast<std::uint8_t*>(key.data())};  // NOLINT: LMDB's C API
  MDB_val v{};
  Bytes out;
  if (mdb_get(txn, dbi, &k, &v) == 0) {
    out.assign(static_cast<const std::uint8_t*>(v.mv_data),
               static_cast<const std::uint8_t*>(v.mv_data) + v.mv_size);
  }
  mdb_txn_abort(txn);
  mdb_env_close(env);
  return out;
}

bool mentions(const std::string& message, const std::string& what) {
  return message.find(what) != std::string::npos;
}

// Opening must be a DecodeError that names data.mdb — and never a signal: the open runs in
// this process, so a SIGBUS fails the whole test binary.
void expect_refused(const fs::path& dir, const std::string& expect_in_message) {
  const std::string data = (dir / "data.mdb").string();
  for (const bool read_only : {false, true}) {
    SCOPED_TRACE(read_only ? "read-only" : "read-write");
    try {
      const std::unique_ptr<PageStore> store =
          open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false, read_only});
      ADD_FAILURE() << "opened; page_count " << store->page_count();
    } catch (const DecodeError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::decode);
      EXPECT_TRUE(mentions(e.what(), data)) << e.what();
      EXPECT_TRUE(mentions(e.what(), expect_in_message)) << e.what();
    }
  }
}

TEST(LmdbStore, ATruncatedDataFileIsATypedErrorNamingIt) {
  std::mt19937_64 rng(testing::env_seed(83));
  const fs::path dir = fresh_dir("truncated");
  std::vector<Hash32> roots;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    for (int k = 0; k < 3; ++k) roots.push_back(store->save_cap(random_cap(rng, 120)));
  }
  const fs::path data = dir / "data.mdb";
  const Bytes pristine = testing::read_file(data.string());
  const std::uint64_t full = pristine.size();
  ASSERT_GT(full, 64u * 4096);
  const detail::LmdbFileCheck intact = detail::check_lmdb_file(data.string());
  ASSERT_TRUE(intact.exists);
  EXPECT_EQ(intact.unwritten_free_pages, 0u);
  const std::vector<std::uint64_t> free = detail::lmdb_free_pages(data.string());
  for (const std::uint64_t len : {std::uint64_t{0}, std::uint64_t{100}, std::uint64_t{4096},
                                  std::uint64_t{8192}, full / 2 / 4096 * 4096, full - 4096}) {
    SCOPED_TRACE("data.mdb truncated to " + std::to_string(len) + " of " + std::to_string(full) +
                 " bytes");
    write_file(data, Bytes(pristine.begin(), pristine.begin() + static_cast<std::ptrdiff_t>(len)));
    // Pages past the new end that the newest snapshot lists as free are never read (LMDB
    // leaves such pages unwritten itself); any other is the truncation that made `store ls`
    // die of SIGBUS.
    bool only_free_cut = len >= 8192;
    for (std::uint64_t pgno = len / 4096; pgno <= intact.last_pgno && only_free_cut; ++pgno) {
      only_free_cut = std::binary_search(free.begin(), free.end(), pgno);
    }
    if (!only_free_cut) {
      expect_refused(dir, len < 8192 ? "shorter than LMDB's" : "truncated");
      continue;
    }
    const std::unique_ptr<PageStore> store =
        open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false});
    for (const Hash32& root : roots) EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
  }
  write_file(data, pristine);
  const std::unique_ptr<PageStore> store =
      open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false});
  for (const Hash32& root : roots) EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
  fs::remove_all(dir);
}

TEST(LmdbStore, ADamagedMetaPageIsATypedErrorNamingIt) {
  std::mt19937_64 rng(testing::env_seed(89));
  const fs::path dir = fresh_dir("meta");
  Hash32 root;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    root = store->save_cap(random_cap(rng, 40));
  }
  const fs::path data = dir / "data.mdb";
  const Bytes pristine = testing::read_file(data.string());
  // MDB_meta follows each meta page's 16-byte header: magic at +0, version at +4, the main
  // tree's root at +112, the last page number at +120, the txnid at +128.
  constexpr std::uint64_t PSIZE = 4096, META = 16;
  const std::uint64_t newest =
      load_u64(pristine, PSIZE + META + 128) > load_u64(pristine, META + 128) ? PSIZE : 0;
  const std::uint64_t last_pgno = load_u64(pristine, newest + META + 120);
  struct Damage {
    const char* what;
    std::uint64_t offset;
    Bytes bytes;
    const char* expect;
  };
  const std::vector<Damage> damages = {
      {"meta page 0's magic", META + 0, {0x00, 0x00}, "meta page 0"},
      {"meta page 1's data version", PSIZE + META + 4, {0x07}, "meta page 1"},
      {"the newest meta page's main tree root", newest + META + 112, le64(last_pgno + 5),
       "tree root"},
      {"the newest meta page's last page number", newest + META + 120, le64(last_pgno + 1000),
       "truncated"},
      // MDB_db flags (+4 in each 48-byte record; the free-page tree's at +24, the main tree's
      // at +72): a DUPSORT bit on the free-page tree made the next write abort on LMDB's
      // assertion in a store `verify` called sound (CLI review of 2026-11-30).
      {"meta page 0's free-page tree flags", META + 28, {0x75}, "tree flags"},
      {"meta page 1's free-page tree without INTEGERKEY", PSIZE + META + 28, {0x00}, "tree flags"},
      {"meta page 1's main tree flags", PSIZE + META + 76, {0x04}, "tree flags"},
  };
  for (const Damage& d : damages) {
    SCOPED_TRACE(d.what);
    write_file(data, pristine);
    write_at(data, d.offset, d.bytes);
    expect_refused(dir, d.expect);
  }
  // A named database's record in the main tree (node: lo, hi, flags = F_SUBDATA, key size 5,
  // "pages", then its MDB_db) with a DUPSORT bit: every copy of the main tree's leaf is changed,
  // the live one among them.
  {
    SCOPED_TRACE("the pages database's flags");
    Bytes damaged = pristine;
    const Bytes node = {0x02, 0x00, 0x05, 0x00, 'p', 'a', 'g', 'e', 's'};
    int found = 0;
    for (auto it = damaged.begin();
         (it = std::search(it, damaged.end(), node.begin(), node.end())) != damaged.end(); ++it) {
      *(it + 9 + 4) = 0x04;
      ++found;
    }
    ASSERT_GT(found, 0);
    write_file(data, damaged);
    expect_refused(dir, "has flags");
  }
  // The environment's own option bits ride in the free-page tree's flags (mdb_copy -n writes
  // NOSUBDIR, 0x4000; FIXEDMAP is 0x01): such a store is LMDB's and opens.
  {
    Bytes copied = pristine;
    for (const std::uint64_t meta : {std::uint64_t{0}, PSIZE}) copied[meta + META + 29] = 0x40;
    write_file(data, copied);
    const std::unique_ptr<PageStore> store =
        open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false, true});
    EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
  }
  write_file(data, pristine);
  const std::unique_ptr<PageStore> store =
      open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false});
  EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
  fs::remove_all(dir);
}

// A FIFO where data.mdb belongs made every store command block in open(2), for ever.
TEST(LmdbStore, ADataFileThatIsNotARegularFileIsRefusedNeverAHang) {
  const fs::path dir = fresh_dir("fifo");
  fs::create_directories(dir);
  ASSERT_EQ(::mkfifo((dir / "data.mdb").c_str(), 0600), 0);
  for (const bool read_only : {false, true}) {
    try {
      const std::unique_ptr<PageStore> store =
          open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false, read_only});
      ADD_FAILURE() << "opened a FIFO";
    } catch (const IoError& e) {
      EXPECT_TRUE(mentions(e.what(), "not a regular file")) << e.what();
    }
  }
  fs::remove_all(dir);
}

// Saves `cap` in a new LMDB store at `dir`; returns its root and the root of its last page.
std::pair<Hash32, Hash32> save_one_cap(const fs::path& dir, const DataCap& cap) {
  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  const Hash32 root = store->save_cap(cap);
  Hash32 page_root{};
  cap.backing().for_each_stored([&](std::uint32_t, const PageSlot& s) { page_root = s.root(); });
  return {root, page_root};
}

TEST(LmdbStore, AReadOnlyStoreReadsAndRefusesWrites) {
  std::mt19937_64 rng(testing::env_seed(97));
  const fs::path dir = fresh_dir("read_only");
  const DataCap cap = random_cap(rng, 30);
  const std::pair<Hash32, Hash32> saved = save_one_cap(dir, cap);
  const Hash32 root = saved.first, page_root = saved.second;
  const LmdbOptions read_only{std::uint64_t{1} << 30, true, true};
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string(), read_only);
    EXPECT_TRUE(store->is_read_only());
    ASSERT_EQ(store->list_caps().size(), 1u);
    EXPECT_TRUE(store->has_cap(root));
    EXPECT_EQ(bytes_of(store->load_cap(root)), bytes_of(cap));
    EXPECT_TRUE(store->get(page_root));
    const std::uint64_t pages = store->page_count();
    EXPECT_FALSE(store->verify().damaged());
    // Every writing member is refused, naming the store, before it changes anything.
    const auto refused = [&](const std::function<void()>& write) {
      try {
        write();
        ADD_FAILURE() << "a write on a read-only store was not refused";
      } catch (const InvalidArgument& e) {
        EXPECT_EQ(e.kind(), ErrorKind::invalid_argument);
        EXPECT_TRUE(mentions(e.what(), dir.string())) << e.what();
        EXPECT_TRUE(mentions(e.what(), "read-only")) << e.what();
      }
    };
    refused([&] { (void)store->put(PageRef::copy_of(random_page(rng))); });
    refused([&] { (void)store->save_cap(random_cap(rng, 3)); });
    refused([&] { PageStore::CapWriter writer(*store); });
    refused([&] { (void)store->gc({}); });
    EXPECT_EQ(store->page_count(), pages);
    EXPECT_EQ(store->list_caps().size(), 1u);
  }
  // Read-only never creates: not the directory, not data.mdb.
  const fs::path absent = fresh_dir("read_only_absent");
  EXPECT_THROW((void)open_lmdb_store(absent.string(), read_only), IoError);
  EXPECT_FALSE(fs::exists(absent));
  fs::create_directories(absent);
  EXPECT_THROW((void)open_lmdb_store(absent.string(), read_only), IoError);
  EXPECT_FALSE(fs::exists(absent / "data.mdb"));
  fs::remove_all(absent);
  fs::remove_all(dir);
}

TEST(LmdbStore, AStoreTheUserCannotWriteOpensReadOnlyWithoutItsLockFile) {
  std::mt19937_64 rng(testing::env_seed(101));
  const fs::path dir = fresh_dir("unwritable");
  const DataCap cap = random_cap(rng, 20);
  const std::pair<Hash32, Hash32> saved = save_one_cap(dir, cap);
  const Hash32 root = saved.first, page_root = saved.second;
  // What a user who may read but not write the store runs (`store ls`, `get`, `verify`).
  // Exit codes: 0 read, 2 not refused, 3 no lock file denial, 4 a library error.
  const auto read_as_reader = [&]() -> int {
    const int fd = ::open((dir / "lock.mdb").c_str(), O_RDWR);
    if (fd >= 0) {
      ::close(fd);
      return 3;  // the lock file is writable: nothing to fall back from
    }
    try {
      const std::unique_ptr<PageStore> store =
          open_lmdb_store(dir.string(), LmdbOptions{std::uint64_t{1} << 30, false, true});
      if (store->list_caps().size() != 1 || !store->has_cap(root) || !store->get(page_root))
        return 4;
      try {
        (void)store->put(PageRef::copy_of(random_page(rng)));
        return 2;
      } catch (const InvalidArgument&) {
      }
      return 0;
    } catch (const Error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 4;
    }
  };
  if (::geteuid() != 0) {
    fs::permissions(dir / "lock.mdb",
                    fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                             fs::perms::group_exec | fs::perms::others_read |
                             fs::perms::others_exec);
    EXPECT_EQ(read_as_reader(), 0);
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add);
    fs::permissions(dir / "lock.mdb", fs::perms::owner_write, fs::perm_options::add);
  } else {
    // Permission bits do not stop root: read as "nobody" in a child process (which touches no
    // thread pool: list, has and get only).
    const auto readable = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                          fs::perms::others_read;
    fs::permissions(dir / "data.mdb", readable);
    fs::permissions(dir / "lock.mdb", readable);
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(77);
      ::_exit(read_as_reader());
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "the reader died of signal " << WTERMSIG(status);
    if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot drop root's privileges to test a reader";
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  fs::remove_all(dir);
}

TEST(LmdbStore, VerifyOfASoundStoreFindsNothing) {
  std::mt19937_64 rng(testing::env_seed(103));
  const fs::path dir = fresh_dir("verify_sound");
  std::vector<Bytes> pool;
  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  std::vector<Hash32> roots;
  for (int k = 0; k < 4; ++k) roots.push_back(store->save_cap(random_cap(rng, 50 + 40 * k, &pool)));
  const std::vector<Hash32> keep = {roots[1], roots[3]};
  (void)store->gc(keep);  // a free list with pages on it
  // A cap saved with Missing pages: the record names pages the store does not hold.
  DataCap partial = full_random_cap(rng, 10);
  const std::vector<std::uint64_t> elided = {2, 7};
  partial.elide_pages(elided);
  (void)store->save_cap(partial);
  const StoreVerifyReport report = store->verify();
  EXPECT_FALSE(report.damaged());
  EXPECT_TRUE(report.problems.empty()) << report.problems.front().message;
  EXPECT_EQ(report.caps, 3u);
  EXPECT_EQ(report.pages, store->page_count());
  EXPECT_EQ(report.bad_caps + report.bad_pages + report.damaged_page_refs + report.bad_trees, 0u);
  EXPECT_EQ(report.absent_page_refs, 2u);
  EXPECT_EQ(report.caps_with_absent_pages, 1u);
  fs::remove_all(dir);
}

TEST(LmdbStore, VerifyFindsAPageAlteredInPlace) {
  std::mt19937_64 rng(testing::env_seed(107));
  const fs::path dir = fresh_dir("verify_page");
  const DataCap cap = full_random_cap(rng, 20);
  const DataCap other = full_random_cap(rng, 5);
  const Bytes victim_bytes(cap.page_slot(7).page().data(),
                           cap.page_slot(7).page().data() + PAGE_SIZE);
  const Hash32 victim = cap.page_slot(7).root();
  Hash32 root, other_root;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    root = store->save_cap(cap);
    other_root = store->save_cap(other);
  }
  // Find the page's bytes in data.mdb (its first 64 bytes are random: one match) and change one.
  const fs::path data = dir / "data.mdb";
  const Bytes file = testing::read_file(data.string());
  const auto at =
      std::search(file.begin(), file.end(), victim_bytes.begin(), victim_bytes.begin() + 64);
  ASSERT_NE(at, file.end());
  ASSERT_EQ(std::search(at + 1, file.end(), victim_bytes.begin(), victim_bytes.begin() + 64),
            file.end());
  const std::uint64_t offset = static_cast<std::uint64_t>(at - file.begin()) + 100;
  write_at(data, offset, {static_cast<std::uint8_t>(file[offset] ^ 0x5A)});

  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  const StoreVerifyReport report = store->verify();
  EXPECT_TRUE(report.damaged());
  EXPECT_EQ(report.caps, 2u);
  EXPECT_EQ(report.pages, 25u);
  EXPECT_EQ(report.bad_pages, 1u);
  EXPECT_EQ(report.bad_caps, 0u);
  EXPECT_EQ(report.bad_trees, 0u);
  EXPECT_EQ(report.damaged_page_refs, 1u);
  ASSERT_EQ(report.problems.size(), 2u);
  const StoreProblem& page = report.problems[0];
  EXPECT_EQ(page.kind, StoreProblem::Kind::bad_page);
  EXPECT_EQ(page.root, victim);
  EXPECT_TRUE(mentions(page.message, dir.string()) && mentions(page.message, to_hex(victim)))
      << page.message;
  const StoreProblem& refs = report.problems[1];
  EXPECT_EQ(refs.kind, StoreProblem::Kind::damaged_refs);
  EXPECT_EQ(refs.root, root);
  EXPECT_TRUE(mentions(refs.message, to_hex(root)) && mentions(refs.message, "page 7"))
      << refs.message;
  // Loading finds it too, naming the store and the cap.
  try {
    (void)store->load_cap(root);
    ADD_FAILURE() << "no IntegrityError";
  } catch (const IntegrityError& e) {
    EXPECT_EQ(e.expected(), victim);
    EXPECT_TRUE(mentions(e.what(), dir.string()) && mentions(e.what(), to_hex(root))) << e.what();
  }
  EXPECT_EQ(store->load_cap(other_root).hash_tree_root(), other_root);
  fs::remove_all(dir);
}

TEST(LmdbStore, VerifyFindsCapRecordsWhoseEntriesWereAltered) {
  std::mt19937_64 rng(testing::env_seed(109));
  const fs::path dir = fresh_dir("verify_caps");
  Hash32 a, b, c;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    a = store->save_cap(random_cap(rng, 30));
    b = store->save_cap(random_cap(rng, 30));
    c = store->save_cap(random_cap(rng, 30));
  }
  // a: one entry names another page (a well-formed record with the wrong page table);
  // b: not a record at all.
  Bytes record = peek_lmdb(dir, "caps", Bytes(a.begin(), a.end()));
  ASSERT_GT(record.size(), 24u + 36u);
  record[24 + 36 + 4] ^= 0x01;  // entry 1's page root
  poke_lmdb(dir, "caps", Bytes(a.begin(), a.end()), record);
  poke_lmdb(dir, "caps", Bytes(b.begin(), b.end()), Bytes(30, 1));

  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  const StoreVerifyReport report = store->verify();
  EXPECT_EQ(report.caps, 3u);
  EXPECT_EQ(report.bad_caps, 2u);
  EXPECT_EQ(report.bad_pages, 0u);
  std::set<Hash32> reported;
  for (const StoreProblem& p : report.problems) {
    EXPECT_EQ(p.kind, StoreProblem::Kind::bad_cap) << p.message;
    EXPECT_TRUE(mentions(p.message, dir.string()) && mentions(p.message, to_hex(p.root)))
        << p.message;
    reported.insert(p.root);
  }
  EXPECT_EQ(reported, (std::set<Hash32>{a, b}));
  // The store's other readers name the store and the record too (review item 10).
  try {
    (void)store->list_caps();
    ADD_FAILURE() << "no DecodeError";
  } catch (const DecodeError& e) {
    EXPECT_TRUE(mentions(e.what(), dir.string()) && mentions(e.what(), to_hex(b))) << e.what();
  }
  try {
    (void)store->load_cap(a);
    ADD_FAILURE() << "no DecodeError";
  } catch (const DecodeError& e) {
    EXPECT_TRUE(mentions(e.what(), dir.string()) && mentions(e.what(), to_hex(a))) << e.what();
  }
  // export_cap checks the record's key before it hands out a page: none of a table nobody saved
  // reaches the caller (it checked the key only after the last page, review of 2026-11-30).
  std::size_t delivered = 0;
  EXPECT_THROW(store->export_cap(a, [&](std::uint64_t, const PageSlot&) { ++delivered; }),
               DecodeError);
  EXPECT_EQ(delivered, 0u);
  EXPECT_EQ(store->load_cap(c).hash_tree_root(), c);
  fs::remove_all(dir);
}

TEST(LmdbStore, GcRefusesAStoreWithADamagedTreeAndChangesNothing) {
  std::mt19937_64 rng(testing::env_seed(113));
  const fs::path dir = fresh_dir("gc_damaged");
  const DataCap cap = full_random_cap(rng, 30);
  const Hash32 known = cap.page_slot(3).root();
  Hash32 root;
  std::uint64_t pages = 0;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    root = store->save_cap(cap);
    (void)store->save_cap(full_random_cap(rng, 10));
    pages = store->page_count();
  }
  // The leaf page of the pages tree that holds `known` as a key (P_LEAF: flags 0x02 at +10):
  // its first node pointer (at +16) is sent into the page header.
  const fs::path data = dir / "data.mdb";
  const Bytes file = testing::read_file(data.string());
  // The match must be a key: some node (its offset in the pointer array from +16 up to the page's
  // `lower` at +12) starts 8 bytes before it. A cap record holding the root is a value.
  std::uint64_t leaf = 0;
  for (auto it = std::search(file.begin(), file.end(), known.begin(), known.end());
       it != file.end(); it = std::search(it + 1, file.end(), known.begin(), known.end())) {
    const std::uint64_t at = static_cast<std::uint64_t>(it - file.begin());
    const std::uint64_t page = at / 4096 * 4096;
    if ((file[page + 10] & 0x02) == 0) continue;
    const std::size_t lower = file[page + 12] | file[page + 13] << 8;
    for (std::size_t ptr = 16; ptr + 1 < lower && ptr < 4096; ptr += 2) {
      if (page + (file[page + ptr] | file[page + ptr + 1] << 8) + 8 == at) leaf = page;
    }
  }
  ASSERT_NE(leaf, 0u) << "no leaf page holds the page root";
  write_at(data, leaf + 16, {0x04, 0x00});

  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  try {
    const std::vector<Hash32> keep = {root};
    (void)store->gc(keep);
    ADD_FAILURE() << "gc ran on a damaged tree";
  } catch (const DecodeError& e) {
    EXPECT_TRUE(mentions(e.what(), data.string()) && mentions(e.what(), "tree 'pages'"))
        << e.what();
  }
  EXPECT_EQ(store->page_count(), pages);
  EXPECT_EQ(store->list_caps().size(), 2u);
  const StoreVerifyReport report = store->verify();
  EXPECT_GE(report.bad_trees, 1u);
  ASSERT_FALSE(report.problems.empty());
  EXPECT_EQ(report.problems[0].kind, StoreProblem::Kind::bad_tree);
  EXPECT_TRUE(mentions(report.problems[0].message, std::to_string(leaf / 4096)))
      << report.problems[0].message;
  fs::remove_all(dir);
}

// LMDB does not write a page that the transaction which allocated it also freed, so a sound
// data.mdb may end before its last page. Opening must not refuse such a file: pages past its end
// that the newest snapshot lists as free are never read.
TEST(LmdbStore, AFileEndingOnUnwrittenFreePagesStillOpens) {
  std::mt19937_64 rng(testing::env_seed(127));
  const fs::path dir = fresh_dir("free_tail");
  Hash32 kept;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    const Hash32 a = store->save_cap(full_random_cap(rng, 50));
    (void)store->save_cap(full_random_cap(rng, 50));
    const std::vector<Hash32> keep = {a};
    (void)store->gc(keep);
    (void)store->gc({});
    kept = store->save_cap(full_random_cap(rng, 1));  // reuses free pages: the file's tail is free
  }
  const fs::path data = dir / "data.mdb";
  const detail::LmdbFileCheck before = detail::check_lmdb_file(data.string());
  const std::vector<std::uint64_t> free = detail::lmdb_free_pages(data.string());
  std::uint64_t first_free = before.last_pgno + 1;
  while (std::binary_search(free.begin(), free.end(), first_free - 1)) --first_free;
  if (first_free > before.last_pgno)
    GTEST_SKIP() << "this LMDB left no free pages at the end of the file";
  fs::resize_file(data, first_free * before.page_size);
  const Bytes ends_on_free = testing::read_file(data.string());
  // One page fewer cuts a page in use: refused.
  write_file(data, Bytes(ends_on_free.begin(), ends_on_free.end() - before.page_size));
  EXPECT_THROW((void)open_lmdb_store(dir.string()), DecodeError);
  write_file(data, ends_on_free);
  EXPECT_EQ(detail::check_lmdb_file(data.string()).unwritten_free_pages,
            before.last_pgno + 1 - first_free);
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    EXPECT_EQ(store->load_cap(kept).hash_tree_root(), kept);
    EXPECT_FALSE(store->verify().damaged());
    for (int k = 0; k < 3; ++k) (void)store->save_cap(full_random_cap(rng, 20));
    EXPECT_FALSE(store->verify().damaged());
  }
  fs::remove_all(dir);
}

// ---- LMDB's assertion on branch pages ---------------------------------------------------------
//
// mdb_page_search_root asserts (and aborts the process) that every branch page a search passes
// through holds at least 2 keys, in every tree but the free-page tree. The store must refuse
// such a page before LMDB reads it: on opening for the meta tree (mdb_get of the format
// marker), in list_caps for the caps tree, in gc for the caps and pages trees; verify reports it.

constexpr std::uint64_t LMDB_PSIZE = 4096;

std::uint16_t load_u16(const Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] | b[at + 1] << 8);
}

void store_u16(Bytes& b, std::size_t at, std::uint16_t v) {
  b[at] = static_cast<std::uint8_t>(v);
  b[at + 1] = static_cast<std::uint8_t>(v >> 8);
}

void store_u64(Bytes& b, std::size_t at, std::uint64_t v) { std::memcpy(b.data() + at, &v, 8); }

// The number of nodes on page `pgno` (NUMKEYS: its `lower` at +12 past the 16-byte header).
std::size_t node_count(const Bytes& file, std::uint64_t pgno) {
  return (load_u16(file, pgno * LMDB_PSIZE + 12) - 16u) / 2;
}

// Node i of page `pgno`: its offset in the file (its pointer is at +16 + 2i).
std::uint64_t node_at(const Bytes& file, std::uint64_t pgno, std::size_t i) {
  return pgno * LMDB_PSIZE + load_u16(file, pgno * LMDB_PSIZE + 16 + 2 * i);
}

// Where a named database's record (MDB_db, 48 bytes: depth at +6, leaf pages at +16, overflow
// pages at +24, entries at +32, root at +40) lies in data.mdb: a value of the newest snapshot's
// main tree, one leaf page in a store (three databases).
std::uint64_t named_record_at(const Bytes& file, const std::string& name) {
  constexpr std::uint64_t META = 16, MAIN_DB = 24 + 48;
  const std::uint64_t newest =
      load_u64(file, LMDB_PSIZE + META + 128) > load_u64(file, META + 128) ? LMDB_PSIZE : 0;
  EXPECT_EQ(load_u16(file, newest + META + MAIN_DB + 6), 1u)
      << "the main tree is not one leaf page";
  const std::uint64_t main_root = load_u64(file, newest + META + MAIN_DB + 40);
  for (std::size_t i = 0; i < node_count(file, main_root); ++i) {
    const std::uint64_t node = node_at(file, main_root, i);
    const std::size_t key_len = load_u16(file, node + 6);
    if (std::string(file.begin() + static_cast<std::ptrdiff_t>(node + 8),
                    file.begin() + static_cast<std::ptrdiff_t>(node + 8 + key_len)) == name) {
      return node + 8 + key_len;
    }
  }
  ADD_FAILURE() << "no database '" << name << "' in the main tree";
  return 0;
}

// The damage LMDB asserts on, with nothing else wrong: the root (a branch page) of the named
// tree `name`, of depth 2, keeps only its first child, packed at the end of the page; the
// tree's record loses the leaves (and their entries and overflow pages) no longer reached.
// Returns the root's page number.
std::uint64_t leave_one_key_on_the_root(Bytes& file, const std::string& name) {
  const std::uint64_t record = named_record_at(file, name);
  EXPECT_EQ(load_u16(file, record + 6), 2u) << "tree '" << name << "' is not of depth 2";
  const std::uint64_t root = load_u64(file, record + 40), page = root * LMDB_PSIZE;
  EXPECT_EQ(file[page + 10], 0x01) << "the root of tree '" << name << "' is not a branch page";
  const std::size_t keys = node_count(file, root);
  EXPECT_GE(keys, 2u);
  std::uint64_t leaves = 0, entries = 0, overflow = 0;
  for (std::size_t i = 1; i < keys; ++i) {
    const std::uint64_t node = node_at(file, root, i);
    const std::uint64_t child = load_u16(file, node) |
                                std::uint64_t{load_u16(file, node + 2)} << 16 |
                                std::uint64_t{load_u16(file, node + 4)} << 32;
    EXPECT_EQ(file[child * LMDB_PSIZE + 10], 0x02) << "child " << child << " is not a leaf page";
    ++leaves;
    for (std::size_t k = 0; k < node_count(file, child); ++k) {
      const std::uint64_t leaf_node = node_at(file, child, k);
      ++entries;
      if ((load_u16(file, leaf_node + 4) & 0x01) != 0) {  // F_BIGDATA: OVPAGES(size)
        const std::uint64_t size =
            load_u16(file, leaf_node) | std::uint64_t{load_u16(file, leaf_node + 2)} << 16;
        overflow += (16 - 1 + size) / LMDB_PSIZE + 1;
      }
    }
  }
  const std::uint64_t first = node_at(file, root, 0);
  const std::size_t len = (8u + load_u16(file, first + 6) + 1u) / 2 * 2;
  const Bytes node(file.begin() + static_cast<std::ptrdiff_t>(first),
                   file.begin() + static_cast<std::ptrdiff_t>(first + len));
  std::copy(node.begin(), node.end(),
            file.begin() + static_cast<std::ptrdiff_t>(page + LMDB_PSIZE - len));
  store_u16(file, page + 12, 16 + 2);                                        // lower: one pointer
  store_u16(file, page + 14, static_cast<std::uint16_t>(LMDB_PSIZE - len));  // upper
  store_u16(file, page + 16, static_cast<std::uint16_t>(LMDB_PSIZE - len));  // pointer 0
  store_u64(file, record + 16, load_u64(file, record + 16) - leaves);
  store_u64(file, record + 24, load_u64(file, record + 24) - overflow);
  store_u64(file, record + 32, load_u64(file, record + 32) - entries);
  return root;
}

// The review's reproduction: `datacap store put` of 1 MiB of random bytes, then one byte
// written at 3 * 4096 + 10 — the flags of page 3, the meta tree's root (a leaf page, made in the
// store's first transaction), now P_BRANCH. Opening read the format marker with mdb_get before
// any check of the meta tree: LMDB's assertion aborted `store verify`, `ls` and `gc`.
TEST(LmdbStore, ADamagedBranchPageOfTheMetaTreeIsRefusedOnOpening) {
  std::mt19937_64 rng(testing::env_seed(131));
  const fs::path dir = fresh_dir("meta_tree");
  const DataCap cap = full_random_cap(rng, 256);
  const Hash32 root = save_one_cap(dir, cap).first;
  const fs::path data = dir / "data.mdb";
  const Bytes pristine = testing::read_file(data.string());
  ASSERT_EQ(load_u64(pristine, named_record_at(pristine, "meta") + 40), 3u)
      << "the meta tree's root moved";
  ASSERT_EQ(pristine[3 * LMDB_PSIZE + 10], 0x02);
  write_at(data, 3 * LMDB_PSIZE + 10, {0x01});
  expect_refused(dir, "tree 'meta': page 3");
  // The same page as a branch page with one key that points to itself: refused, not followed.
  write_file(data, pristine);
  Bytes damaged = pristine;
  damaged[3 * LMDB_PSIZE + 10] = 0x01;
  const std::uint64_t node = node_at(damaged, 3, 0);
  store_u16(damaged, node, 3);
  store_u16(damaged, node + 2, 0);
  store_u16(damaged, node + 4, 0);
  write_file(data, damaged);
  expect_refused(dir, "tree 'meta'");
  write_file(data, pristine);
  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
  EXPECT_FALSE(store->verify().damaged());
  fs::remove_all(dir);
}

// A branch page with one key, in a tree whose walk was otherwise sound: list_caps (caps) and gc
// (caps, pages) used to pass the walk and abort inside LMDB's first cursor search.
TEST(LmdbStore, ABranchPageWithOneKeyIsDamageNeverAnAssertion) {
  std::mt19937_64 rng(testing::env_seed(137));
  const fs::path dir = fresh_dir("one_key");
  std::vector<Hash32> roots;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    for (int k = 0; k < 80; ++k) roots.push_back(store->save_cap(full_random_cap(rng, 2)));
    EXPECT_FALSE(store->verify().damaged());
  }
  const fs::path data = dir / "data.mdb";
  const Bytes pristine = testing::read_file(data.string());
  for (const std::string tree : {"caps", "pages"}) {
    SCOPED_TRACE("tree " + tree);
    Bytes damaged = pristine;
    const std::uint64_t root_page = leave_one_key_on_the_root(damaged, tree);
    write_file(data, damaged);
    const std::string expected =
        "tree '" + tree + "': page " + std::to_string(root_page) + ": a branch page with 1 key";
    const std::unique_ptr<PageStore> store =
        open_lmdb_store(dir.string());  // the main and meta trees are sound
    if (tree == "caps") {
      try {
        (void)store->list_caps();
        ADD_FAILURE() << "list_caps read a caps tree with a one-key branch page";
      } catch (const DecodeError& e) {
        EXPECT_TRUE(mentions(e.what(), data.string()) && mentions(e.what(), expected)) << e.what();
      }
    } else {
      EXPECT_EQ(store->list_caps().size(), roots.size());
    }
    try {
      const std::vector<Hash32> keep = {roots[0]};
      (void)store->gc(keep);
      ADD_FAILURE() << "gc ran on a tree with a one-key branch page";
    } catch (const DecodeError& e) {
      EXPECT_TRUE(mentions(e.what(), data.string()) && mentions(e.what(), expected)) << e.what();
    }
    // Nothing removed: the count is the (edited) record's.
    EXPECT_EQ(store->page_count(), load_u64(damaged, named_record_at(damaged, "pages") + 32));
    const StoreVerifyReport report = store->verify();
    EXPECT_TRUE(report.damaged());
    EXPECT_GE(report.bad_trees, 1u);
    ASSERT_FALSE(report.problems.empty());
    EXPECT_TRUE(mentions(report.problems[0].message, expected)) << report.problems[0].message;
    // What readers (store get) run before their lookups: the damage, not LMDB's assertion.
    try {
      store->check_structure();
      ADD_FAILURE() << "check_structure passed a one-key branch page";
    } catch (const DecodeError& e) {
      EXPECT_TRUE(mentions(e.what(), data.string()) && mentions(e.what(), expected)) << e.what();
    }
  }
  write_file(data, pristine);
  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  EXPECT_EQ(store->list_caps().size(), roots.size());
  EXPECT_FALSE(store->verify().damaged());
  fs::remove_all(dir);
}

// gc deletes a value with mdb_cursor_del, which frees its overflow pages by the count in the
// first one's header (mdb_ovpage_free) — a header the walk before it did not read. A damaged
// count freed pages still in use, silently, or asked for an absurd allocation (under ASan, an
// abort).
TEST(LmdbStore, GcChecksTheOverflowHeaderOfEachValueItDeletes) {
  std::mt19937_64 rng(testing::env_seed(149));
  const fs::path dir = fresh_dir("gc_overflow");
  const DataCap kept = full_random_cap(rng, 10), dropped = full_random_cap(rng, 10);
  Hash32 keep_root;
  std::uint64_t pages = 0;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    keep_root = store->save_cap(kept);
    (void)store->save_cap(dropped);
    pages = store->page_count();
  }
  // A page of `dropped`: its first 4080 bytes follow its overflow page's 16-byte header.
  const fs::path data = dir / "data.mdb";
  const Bytes pristine = testing::read_file(data.string());
  const Bytes victim(dropped.page_slot(4).page().data(), dropped.page_slot(4).page().data() + 64);
  const auto at = std::search(pristine.begin(), pristine.end(), victim.begin(), victim.end());
  ASSERT_NE(at, pristine.end());
  const std::uint64_t header = static_cast<std::uint64_t>(at - pristine.begin()) - 16;
  ASSERT_EQ(header % LMDB_PSIZE, 0u);
  const std::uint64_t pgno = header / LMDB_PSIZE;
  ASSERT_EQ(load_u64(pristine, header), pgno);
  ASSERT_EQ(pristine[header + 10], 0x04);  // P_OVERFLOW
  for (const std::uint32_t count : {2u, 0x7fffffffu}) {
    SCOPED_TRACE("page count " + std::to_string(count));
    write_file(data, pristine);
    write_at(data, header + 12,
             {static_cast<std::uint8_t>(count), static_cast<std::uint8_t>(count >> 8),
              static_cast<std::uint8_t>(count >> 16), static_cast<std::uint8_t>(count >> 24)});
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    const std::string expected =
        "tree 'pages': page " + std::to_string(pgno) + ": not the first of 1 overflow pages";
    try {
      const std::vector<Hash32> keep = {keep_root};
      (void)store->gc(keep);
      ADD_FAILURE() << "gc deleted a value whose overflow header is damaged";
    } catch (const DecodeError& e) {
      EXPECT_TRUE(mentions(e.what(), data.string()) && mentions(e.what(), expected)) << e.what();
    }
    EXPECT_EQ(store->page_count(), pages);
    EXPECT_EQ(store->list_caps().size(), 2u);
    const StoreVerifyReport report = store->verify();
    EXPECT_EQ(report.bad_trees, 1u);
    ASSERT_FALSE(report.problems.empty());
    EXPECT_TRUE(mentions(report.problems[0].message,
                         "page " + std::to_string(pgno) + ": not the first of 1 overflow"))
        << report.problems[0].message;
  }
  write_file(data, pristine);
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    const std::vector<Hash32> keep = {keep_root};
    const GcReport report = store->gc(keep);
    EXPECT_EQ(report.caps_removed, 1u);
    EXPECT_EQ(report.pages_removed, 10u);
    EXPECT_FALSE(store->verify().damaged());
    EXPECT_EQ(bytes_of(store->load_cap(keep_root)), bytes_of(kept));
  }
  fs::remove_all(dir);
}

// P_DIRTY is never written to data.mdb (mdb_page_flush clears it). On a mapped leaf page it made
// gc's first delete change the page in place, in LMDB's read-only map: a SIGSEGV.
TEST(LmdbStore, APageFlaggedDirtyIsDamage) {
  std::mt19937_64 rng(testing::env_seed(151));
  const fs::path dir = fresh_dir("dirty_flag");
  const Hash32 keep_root = save_one_cap(dir, random_cap(rng, 20)).first;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    (void)store->save_cap(random_cap(rng, 20));
  }
  const fs::path data = dir / "data.mdb";
  const Bytes pristine = testing::read_file(data.string());
  const std::uint64_t root = load_u64(pristine, named_record_at(pristine, "caps") + 40);
  ASSERT_EQ(pristine[root * LMDB_PSIZE + 10], 0x02);  // one leaf page: both records
  write_at(data, root * LMDB_PSIZE + 10, {0x12});
  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  const std::string expected =
      "tree 'caps': page " + std::to_string(root) + ": not a branch or leaf page (flags 0x12)";
  try {
    const std::vector<Hash32> keep = {keep_root};
    (void)store->gc(keep);
    ADD_FAILURE() << "gc ran on a page flagged dirty";
  } catch (const DecodeError& e) {
    EXPECT_TRUE(mentions(e.what(), expected)) << e.what();
  }
  EXPECT_THROW((void)store->list_caps(), DecodeError);
  const StoreVerifyReport report = store->verify();
  ASSERT_FALSE(report.problems.empty());
  EXPECT_TRUE(mentions(report.problems[0].message, expected)) << report.problems[0].message;
  fs::remove_all(dir);
}

// The rule is LMDB's own: sound trees reshaped by many saves and gcs (splits, merges, a root
// collapsing to a leaf and growing again) always pass it.
TEST(LmdbStore, TreesLmdbRebalancedPassTheWalk) {
  std::mt19937_64 rng(testing::env_seed(139));
  const fs::path dir = fresh_dir("rebalanced");
  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  std::vector<Hash32> roots;
  std::uint16_t deepest = 0;  // of the pages tree
  for (int round = 0; round < 12; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const int saves = 1 + static_cast<int>(rng() % 120);
    for (int k = 0; k < saves; ++k)
      roots.push_back(store->save_cap(random_cap(rng, 1 + rng() % 24)));
    const Bytes file = testing::read_file((dir / "data.mdb").string());
    deepest = std::max(deepest, load_u16(file, named_record_at(file, "pages") + 6));
    std::vector<Hash32> keep;
    for (const Hash32& r : roots) {
      if (rng() % (round % 2 == 0 ? 2 : 8) == 0) keep.push_back(r);  // grow, then shrink (merges)
    }
    (void)store->gc(keep);
    roots = keep;
    const StoreVerifyReport report = store->verify();
    EXPECT_FALSE(report.damaged())
        << (report.problems.empty() ? "" : report.problems.front().message);
    EXPECT_EQ(store->list_caps().size(),
              std::set<Hash32>(roots.begin(), roots.end()).size());  // caps may repeat
  }
  EXPECT_GE(deepest, 3u) << "the pages tree never grew branch pages below its root";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace datacap
#endif  // DATACAP_STORE_TEST_REDIS
