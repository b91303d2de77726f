// The tiered store (make_tiered_store): reads fill the local tier, writes reach both (remote
// first), has_many asks the remote once per batch, a wrong remote page is never cached, gc runs
// on both. The remote here is a memory store behind a counting, fault-injecting wrapper; the
// conformance suite (store_test.cpp) runs the tiered store over real stores.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <random>

#include "datacap/datacap.hpp"
#include "store/store_access.hpp"
#include "support/seed.hpp"

namespace datacap {
namespace {

namespace fs = std::filesystem;
using Access = detail::StoreAccess;

// A memory store that counts the hooks called on it, can fail its writes, and can hand back a
// damaged copy of one page.
class CountingStore final : public PageStore {
 public:
  mutable std::atomic<int> get_batches{0}, has_batches{0};
  std::atomic<int> page_puts{0}, cap_puts{0};
  std::atomic<bool> fail_writes{false};
  Hash32 damaged_root{};  // when non-zero: this page comes back with a flipped byte

  [[nodiscard]] std::string name() const override { return "counting store"; }

 protected:
  void do_put_pages(std::span<const PageRecord> pages) override {
    if (fail_writes) throw IoError("counting store", "writes fail");
    ++page_puts;
    Access::put_pages(*inner_, pages);
  }
  void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const override {
    ++get_batches;
    Access::get_pages(*inner_, roots, out);
    for (std::size_t k = 0; k < roots.size(); ++k) {
      if (out[k] && roots[k] == damaged_root) {
        std::vector<std::uint8_t> bytes(out[k].data(), out[k].data() + PAGE_SIZE);
        bytes[0] ^= 1;
        out[k] = PageRef::copy_of(bytes);
      }
    }
  }
  bool do_has_page(const Hash32& root) const override { return Access::has_page(*inner_, root); }
  void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const override {
    ++has_batches;
    Access::has_pages(*inner_, roots, out);
  }
  std::uint64_t do_page_count() const override { return Access::page_count(*inner_); }
  void do_put_cap(const Hash32& root, std::span<const std::uint8_t> record) override {
    if (fail_writes) throw IoError("counting store", "writes fail");
    ++cap_puts;
    Access::put_cap(*inner_, root, record);
  }
  bool do_has_cap(const Hash32& root) const override { return Access::has_cap(*inner_, root); }
  bool do_get_cap(const Hash32& root, std::vector<std::uint8_t>& record) const override {
    return Access::get_cap(*inner_, root, record);
  }
  void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const override {
    Access::for_each_cap(*inner_, fn);
  }
  GcReport do_gc(std::span<const Hash32> keep) override { return Access::gc(*inner_, keep); }
  std::unique_ptr<Lock> do_lock(bool exclusive) const override {
    return Access::lock(*inner_, exclusive);
  }

 private:
  std::unique_ptr<PageStore> inner_ = make_memory_store();
};

DataCap random_cap(std::mt19937_64& rng, std::uint64_t pages) {
  DataCap cap = DataCap::zeroed(pages * PAGE_SIZE);
  std::vector<std::uint8_t> page(PAGE_SIZE);
  for (std::uint64_t p = 0; p < pages; ++p) {
    if (rng() % 5 == 0) continue;  // some Empty pages
    for (auto& b : page) b = static_cast<std::uint8_t>(rng());
    cap.put_page(p * PAGE_SIZE, page);
  }
  return cap;
}

class Tiered : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("datacap_tiered_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
            std::to_string(::getpid()));
    fs::remove_all(dir_);
    auto remote = std::make_unique<CountingStore>();
    remote_ = remote.get();
    auto local = open_lmdb_store(dir_.string());
    local_ = local.get();
    tiered_ = make_tiered_store(std::move(local), std::move(remote));
  }
  void TearDown() override {
    tiered_.reset();
    fs::remove_all(dir_);
  }

  fs::path dir_;
  CountingStore* remote_ = nullptr;
  PageStore* local_ = nullptr;
  std::unique_ptr<PageStore> tiered_;
};

TEST_F(Tiered, WritesReachBothTiersAndReadsComeFromTheLocalOne) {
  std::mt19937_64 rng(testing::env_seed(401));
  const DataCap cap = random_cap(rng, 300);
  const Hash32 root = tiered_->save_cap(cap);
  EXPECT_TRUE(remote_->has_cap(root));
  EXPECT_TRUE(local_->has_cap(root));
  EXPECT_EQ(local_->page_count(), remote_->page_count());
  const int gets_before = remote_->get_batches;
  EXPECT_EQ(tiered_->load_cap(root).hash_tree_root(), root);
  EXPECT_EQ(remote_->get_batches, gets_before) << "every page was in the local tier";
  EXPECT_EQ(tiered_->name(), local_->name() + " in front of counting store");
}

TEST_F(Tiered, AReadFetchesWhatTheLocalTierLacksOnceAndKeepsIt) {
  std::mt19937_64 rng(testing::env_seed(402));
  const DataCap cap = random_cap(rng, 200);
  const Hash32 root = remote_->save_cap(cap);  // saved by another node: only remote has it
  EXPECT_EQ(local_->page_count(), 0u);
  EXPECT_EQ(tiered_->load_cap(root).hash_tree_root(), root);
  EXPECT_EQ(local_->page_count(), remote_->page_count()) << "the read filled the local tier";
  const int gets = remote_->get_batches;
  EXPECT_EQ(tiered_->load_cap(root).hash_tree_root(), root);
  EXPECT_EQ(remote_->get_batches, gets) << "the second read came from the local tier";
}

TEST_F(Tiered, HasManyAsksTheRemoteOnceForWhatTheLocalTierLacks) {
  std::mt19937_64 rng(testing::env_seed(403));
  std::vector<Hash32> roots;
  std::vector<std::uint8_t> page(PAGE_SIZE);
  for (int k = 0; k < 40; ++k) {
    for (auto& b : page) b = static_cast<std::uint8_t>(rng());
    const PageRef ref = PageRef::copy_of(page);
    roots.push_back(k % 2 == 0 ? tiered_->put(ref) : remote_->put(ref));
  }
  roots.push_back(Hash32{1});  // stored nowhere
  const int before = remote_->has_batches;
  const std::vector<bool> has = tiered_->has_many(roots);
  EXPECT_EQ(remote_->has_batches, before + 1);
  for (std::size_t k = 0; k + 1 < has.size(); ++k) EXPECT_TRUE(has[k]) << k;
  EXPECT_FALSE(has.back());
  // Everything local: the remote is not asked.
  const std::vector<Hash32> local_only = {roots[0], roots[2]};
  (void)tiered_->has_many(local_only);
  EXPECT_EQ(remote_->has_batches, before + 1);
}

TEST_F(Tiered, AWrongRemotePageIsReportedAndNeverCached) {
  std::mt19937_64 rng(testing::env_seed(404));
  DataCap cap = random_cap(rng, 20);
  cap.put_page(3 * PAGE_SIZE, std::vector<std::uint8_t>(PAGE_SIZE, 7));
  const Hash32 root = remote_->save_cap(cap);
  remote_->damaged_root = cap.page_slot(3).root();
  EXPECT_THROW((void)tiered_->load_cap(root), IntegrityError);
  EXPECT_FALSE(local_->has(remote_->damaged_root));
  // hydrate leaves it Missing, and the good pages still arrive.
  DataCap partial = cap;
  std::vector<std::uint64_t> all(20);
  for (std::uint64_t k = 0; k < 20; ++k) all[k] = k;
  partial.elide_pages(all);
  EXPECT_THROW((void)hydrate(partial, *tiered_), IntegrityError);
  remote_->damaged_root = Hash32{};
  EXPECT_EQ(tiered_->load_cap(root).hash_tree_root(), root);
}

TEST_F(Tiered, ARemoteWriteFailureLeavesTheLocalTierUntouched) {
  std::mt19937_64 rng(testing::env_seed(405));
  remote_->fail_writes = true;
  EXPECT_THROW((void)tiered_->save_cap(random_cap(rng, 10)), IoError);
  EXPECT_EQ(local_->page_count(), 0u)
      << "remote first: the local tier holds nothing the fleet lacks";
  EXPECT_TRUE(local_->list_caps().empty());
}

TEST_F(Tiered, GcRunsOnBothTiers) {
  std::mt19937_64 rng(testing::env_seed(406));
  const Hash32 kept = tiered_->save_cap(random_cap(rng, 30));
  const Hash32 dropped = tiered_->save_cap(random_cap(rng, 30));
  const Hash32 remote_only = remote_->save_cap(random_cap(rng, 30));
  EXPECT_THROW((void)tiered_->gc(std::vector<Hash32>{Hash32{9}}), NotFound);
  const std::vector<Hash32> keep = {kept, remote_only};
  const GcReport report = tiered_->gc(keep);
  EXPECT_EQ(report.caps_kept, 2u);
  EXPECT_EQ(report.caps_removed, 1u);
  EXPECT_FALSE(remote_->has_cap(dropped));
  EXPECT_FALSE(local_->has_cap(dropped));
  EXPECT_TRUE(local_->has_cap(kept));
  EXPECT_EQ(tiered_->load_cap(kept).hash_tree_root(), kept);
  EXPECT_EQ(tiered_->load_cap(remote_only).hash_tree_root(), remote_only);
}

// Regression (review of issue 14): with a read-only local tier, put wrote the remote and only
// then failed on the local tier.
TEST(TieredReadOnly, AWriteIsRefusedBeforeEitherTierChanges) {
  const fs::path dir =
      fs::temp_directory_path() / ("datacap_tiered_ro_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  (void)open_lmdb_store(dir.string());  // created, then opened read-only below
  LmdbOptions options;
  options.read_only = true;
  auto remote = std::make_unique<CountingStore>();
  CountingStore* remote_view = remote.get();
  const auto tiered = make_tiered_store(open_lmdb_store(dir.string(), options), std::move(remote));
  EXPECT_TRUE(tiered->is_read_only());
  EXPECT_THROW((void)tiered->put(PageRef::copy_of(std::vector<std::uint8_t>(10, 1))),
               InvalidArgument);
  EXPECT_THROW((void)tiered->save_cap(DataCap::from_bytes(std::vector<std::uint8_t>(10, 2))),
               InvalidArgument);
  EXPECT_EQ(remote_view->page_puts, 0);
  EXPECT_EQ(remote_view->page_count(), 0u);
  fs::remove_all(dir);
}

TEST(TieredFactory, RefusesANullTier) {
  EXPECT_THROW((void)make_tiered_store(nullptr, make_memory_store()), InvalidArgument);
  EXPECT_THROW((void)make_tiered_store(make_memory_store(), nullptr), InvalidArgument);
}

}  // namespace
}  // namespace datacap
