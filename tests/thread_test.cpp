// Thread-safety as the headers state it: concurrent const use of one cap (including the race
// to fill lazy hash caches), and copies of one cap written, flushed and rooted on different
// threads. Run under ThreadSanitizer in CI.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

constexpr int THREADS = 4;

DataCap make_base() {
  std::vector<std::uint8_t> content(300 * PAGE_SIZE);
  for (std::size_t i = 0; i < content.size(); ++i)
    content[i] = static_cast<std::uint8_t>((i * 131) >> 9);
  return DataCap::from_bytes_sized(content, 1000 * PAGE_SIZE);
}

TEST(Threads, ConcurrentConstUseOfOneCap) {
  const DataCap expected_cap = make_base();
  const Hash32 sha = expected_cap.hash_tree_root();
  const Hash32 blake = expected_cap.hash_tree_root(Digest::blake2b256);
  // A fresh cap: no hash is cached yet, so the threads race to compute and publish them.
  const DataCap cap = make_base();
  std::vector<std::thread> threads;
  std::vector<int> ok(THREADS, 0);
  for (int t = 0; t < THREADS; ++t) {
    threads.emplace_back([&, t] {
      bool good = true;
      for (int round = 0; round < 20; ++round) {
        good &= cap.hash_tree_root() == sha;
        good &= cap.hash_tree_root(Digest::blake2b256) == blake;
        std::vector<std::uint8_t> out(5000);
        cap.copy_into(static_cast<std::uint64_t>(t * 7919 + round * 4096), out);
        good &= out[0] == static_cast<std::uint8_t>(((t * 7919 + round * 4096) * 131) >> 9);
        good &= cap.page_at(static_cast<std::uint64_t>(round) * PAGE_SIZE).kind ==
                PageResolution::Kind::bytes;
        const DataCap copy = cap;  // copying is a const use of the source
        good &= copy.page_slot(static_cast<std::uint64_t>(round)).root() ==
                cap.page_slot(static_cast<std::uint64_t>(round)).root();
      }
      ok[static_cast<std::size_t>(t)] = good;
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < THREADS; ++t) EXPECT_TRUE(ok[static_cast<std::size_t>(t)]) << "thread " << t;
}

TEST(Threads, CopiesWrittenOnDifferentThreads) {
  const DataCap base = make_base();
  const Hash32 base_root = base.hash_tree_root();
  auto workload = [](DataCap cap, int t) {
    for (int k = 0; k < 50; ++k) {
      const std::vector<std::uint8_t> bytes(100 + static_cast<std::size_t>(k),
                                            static_cast<std::uint8_t>(t + 1));
      cap.write(static_cast<std::uint64_t>((t * 37 + k * 101) % 990) * PAGE_SIZE + 4000, bytes);
      if (k % 10 == 9) cap = std::move(cap).flush();
    }
    return std::move(cap).flush().hash_tree_root();
  };
  // Expected roots, computed on one thread from separate copies.
  std::vector<Hash32> expected;
  for (int t = 0; t < THREADS; ++t) expected.push_back(workload(make_base(), t));
  std::vector<Hash32> got(THREADS);
  std::vector<std::thread> threads;
  for (int t = 0; t < THREADS; ++t) {
    threads.emplace_back([&, t] { got[static_cast<std::size_t>(t)] = workload(base, t); });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < THREADS; ++t)
    EXPECT_EQ(got[static_cast<std::size_t>(t)], expected[static_cast<std::size_t>(t)]) << t;
  EXPECT_EQ(base.hash_tree_root(), base_root);
}

TEST(Threads, PagesSharedAcrossThreadsAreReleasedOnce) {
  const std::uint64_t before = live_page_count();
  {
    DataCap base = make_base();
    std::vector<std::thread> threads;
    for (int t = 0; t < THREADS; ++t) {
      threads.emplace_back([base, t]() mutable {
        for (int k = 0; k < 200; ++k) {
          DataCap copy = base;
          copy.write(static_cast<std::uint64_t>(k) * PAGE_SIZE,
                     std::vector<std::uint8_t>(10, static_cast<std::uint8_t>(t)));
          copy.place_shared(PAGE_SIZE * 500, base);
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  EXPECT_EQ(live_page_count(), before);
}

}  // namespace
}  // namespace datacap
