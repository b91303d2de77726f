// Roots computed on several threads (page hashing and node levels split across the pool) and on
// one, on caps large enough to cross every parallel threshold, against the naive model — fresh,
// after random incremental changes, and from several threads at once on shared structure.
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "datacap/datacap.hpp"
#include "support/naive_model.hpp"

namespace datacap::testing {
namespace {

struct Pair {
  DataCap cap;
  NaiveCap model;
};

Pair random_pair(std::mt19937_64& rng, std::uint64_t pages, std::uint64_t stored) {
  Pair p{DataCap::zeroed(pages * PAGE_SIZE), NaiveCap{}};
  p.model.size = pages * PAGE_SIZE;
  for (std::uint64_t i = 0; i < stored; ++i) {
    const std::uint64_t index = rng() % pages;
    Bytes page(PAGE_SIZE);
    for (auto& b : page) b = static_cast<std::uint8_t>(rng());
    p.cap.put_page(index * PAGE_SIZE, page);
    p.model.put_page(index * PAGE_SIZE, page);
  }
  return p;
}

void mutate(std::mt19937_64& rng, Pair& p, int writes) {
  for (int i = 0; i < writes; ++i) {
    const std::uint64_t off = rng() % p.model.size;
    Bytes bytes(1 + rng() % 6000);
    for (auto& b : bytes) b = static_cast<std::uint8_t>(rng() % 3 == 0 ? 0 : rng());
    const std::uint64_t len = std::min<std::uint64_t>(bytes.size(), p.model.size - off);
    bytes.resize(len);
    p.cap.write(off, bytes);
    p.model.write(off, bytes);
  }
  p.cap = std::move(p.cap).flush();
  p.model.flush();
}

class ParallelRoots : public ::testing::TestWithParam<unsigned> {
 protected:
  void TearDown() override { set_hash_threads(0); }
};

TEST_P(ParallelRoots, MatchTheNaiveModelFreshAndIncrementally) {
  set_hash_threads(GetParam());
  std::mt19937_64 rng(99 + GetParam());
  // 5000 pages: three radix levels, > 64 dirty pages and > 32 dirty nodes per level.
  Pair p = random_pair(rng, 5000, 3000);
  for (Digest d : {Digest::sha256, Digest::blake2b256}) {
    ASSERT_EQ(to_hex(p.cap.hash_tree_root(d)), to_hex(*p.model.root(d))) << to_string(d);
  }
  for (int round = 0; round < 4; ++round) {
    const DataCap before = p.cap;  // keeps the old nodes shared: updates must path-copy
    mutate(rng, p, round == 0 ? 2000 : 50);
    ASSERT_EQ(to_hex(p.cap.hash_tree_root()), to_hex(*p.model.root(Digest::sha256))) << round;
    (void)before;
  }
}

INSTANTIATE_TEST_SUITE_P(Threads, ParallelRoots, ::testing::Values(1u, 2u, 4u));

TEST(Threads, ConcurrentRootsOfCopiesSharingUnhashedNodes) {
  set_hash_threads(2);
  std::mt19937_64 rng(5);
  Pair base = random_pair(rng, 4100, 1500);
  // Nothing is hashed yet: every thread races to claim the same shared nodes.
  std::vector<Pair> copies(4, base);
  for (std::size_t t = 0; t < copies.size(); ++t) mutate(rng, copies[t], 20 + static_cast<int>(t));
  std::vector<std::string> expected;
  for (auto& c : copies) expected.push_back(to_hex(*c.model.root(Digest::sha256)));
  const std::string base_expected = to_hex(*base.model.root(Digest::sha256));
  std::vector<std::string> got(copies.size());
  std::string base_got;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < copies.size(); ++t) {
    threads.emplace_back([&, t] { got[t] = to_hex(copies[t].cap.hash_tree_root()); });
  }
  threads.emplace_back([&] { base_got = to_hex(base.cap.hash_tree_root()); });
  for (auto& th : threads) th.join();
  for (std::size_t t = 0; t < copies.size(); ++t) EXPECT_EQ(got[t], expected[t]) << t;
  EXPECT_EQ(base_got, base_expected);
  set_hash_threads(0);
}

}  // namespace
}  // namespace datacap::testing
