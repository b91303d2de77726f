// The block pool hands out distinct, writable, aligned blocks; blocks freed on one thread are
// reused by others through whole batches, and a thread's blocks return when it ends. (Under the
// sanitizers the pool steps aside, so there these check the plain allocator: still true.)
#include "common/block_pool.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

namespace datacap::detail {
namespace {

constexpr std::size_t SIZE = 200;  // not a power of two, several cache lines
using Pool = BlockPool<SIZE>;

// Fills a block with a pattern that names it, so overlapping blocks would be caught.
void stamp(void* p, std::uint64_t id) {
  auto* words = static_cast<std::uint64_t*>(p);
  for (std::size_t i = 0; i < SIZE / 8; ++i) words[i] = id * 1000 + i;
}
bool stamped(const void* p, std::uint64_t id) {
  const auto* words = static_cast<const std::uint64_t*>(p);
  for (std::size_t i = 0; i < SIZE / 8; ++i) {
    if (words[i] != id * 1000 + i) return false;
  }
  return true;
}

// Allocates n blocks, checks they are distinct, 8-byte aligned and do not overlap.
std::vector<void*> take(std::size_t n, std::uint64_t first_id) {
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < n; ++i) {
    void* p = Pool::allocate();
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 8, 0u);
    stamp(p, first_id + i);
    blocks.push_back(p);
  }
  for (std::size_t i = 0; i < n; ++i) EXPECT_TRUE(stamped(blocks[i], first_id + i)) << i;
  EXPECT_EQ(std::set<void*>(blocks.begin(), blocks.end()).size(), n);
  return blocks;
}

void give(const std::vector<void*>& blocks) {
  for (void* p : blocks) Pool::release(p);
}

TEST(BlockPool, BlocksAreDistinctAndReusedAcrossBatchBoundaries) {
  // Counts around the batch (64) and kept-batch (4 × 64) sizes, freed in different orders.
  for (std::size_t n : {1u, 63u, 64u, 65u, 255u, 256u, 257u, 1000u, 5000u}) {
    auto blocks = take(n, 1);
    if (n % 2 == 0) std::reverse(blocks.begin(), blocks.end());
    give(blocks);
    give(take(n, 100000));  // reuses what was freed, still distinct
  }
}

TEST(BlockPool, BlocksFreedOnOneThreadServeAnother) {
  std::vector<void*> made;
  std::thread maker([&] { made = take(3000, 1); });
  maker.join();  // the maker's cache went back to the shared list when it ended
  std::vector<void*> mine = take(3000, 5000);
  const std::set<void*> live(mine.begin(), mine.end());
  for (void* p : made) EXPECT_EQ(live.count(p), 0u) << "a live block was handed out twice";
  for (std::size_t i = 0; i < made.size(); ++i) EXPECT_TRUE(stamped(made[i], 1 + i)) << i;
  std::thread freer([&] { give(made); });  // freed on a third thread, which then ends
  freer.join();
  give(mine);
  // Everything freed can be taken again, on two threads at once, without overlap.
  std::vector<void*> a, b;
  std::thread ta([&] { a = take(4000, 10000); });
  std::thread tb([&] { b = take(4000, 20000); });
  ta.join();
  tb.join();
  std::set<void*> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 8000u);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(stamped(a[i], 10000 + i)) << i;
  for (std::size_t i = 0; i < b.size(); ++i) EXPECT_TRUE(stamped(b[i], 20000 + i)) << i;
  give(a);
  give(b);
}

}  // namespace
}  // namespace datacap::detail
