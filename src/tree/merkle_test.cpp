// The merkle helpers (tree/merkle.hpp) and the public roots (datacap/merkle.hpp) against a
// naive recursive merkle written here, hashing through the test support's naive_digest
// (OpenSSL and libb2 called directly), never the library's hash_pair. Both digests; random
// inputs from a fixed seed (DATACAP_SEED shifts it, support/seed.hpp).
#include "tree/merkle.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "datacap/error.hpp"
#include "support/naive_model.hpp"
#include "support/seed.hpp"

namespace datacap::detail {
namespace {

using Bytes = std::vector<std::uint8_t>;
using testing::naive_digest;

constexpr Digest DIGESTS[] = {Digest::sha256, Digest::blake2b256};

Hash32 pair_of(Digest d, const Hash32& a, const Hash32& b) {
  Bytes both(a.begin(), a.end());
  both.insert(both.end(), b.begin(), b.end());
  return naive_digest(d, both);
}

// zero[height], folded here once per digest.
Hash32 zero_of(Digest d, unsigned height) {
  static std::map<Digest, std::vector<Hash32>> table;
  std::vector<Hash32>& zeros = table[d];
  if (zeros.empty()) zeros.push_back(Hash32{});
  while (zeros.size() <= height) zeros.push_back(pair_of(d, zeros.back(), zeros.back()));
  return zeros[height];
}

// The root of leaves[lo, lo + 2^height), leaves past the end being zero chunks: textbook
// recursion, every pair hashed.
Hash32 naive_root(Digest d, const std::vector<Hash32>& leaves, std::uint64_t lo, unsigned height) {
  if (lo >= leaves.size()) return zero_of(d, height);  // only padding below
  if (height == 0) return leaves[lo];
  const std::uint64_t half = std::uint64_t{1} << (height - 1);
  return pair_of(d, naive_root(d, leaves, lo, height - 1),
                 naive_root(d, leaves, lo + half, height - 1));
}

unsigned depth_of(std::uint64_t n) {  // ceil(log2(max(n, 1)))
  unsigned depth = 0;
  while ((std::uint64_t{1} << depth) < n) ++depth;
  return depth;
}

Hash32 naive_page(Digest d, const Bytes& content) {
  Bytes page = content;
  page.resize(PAGE_SIZE, 0);
  std::vector<Hash32> chunks(PAGE_CHUNKS);
  for (std::size_t i = 0; i < PAGE_CHUNKS; ++i)
    std::memcpy(chunks[i].data(), page.data() + 32 * i, 32);
  return naive_root(d, chunks, 0, PAGE_DEPTH);
}

// Sparse leaves (absent: 0^32), for caps with long zero runs.
Hash32 naive_sparse(Digest d, const std::map<std::uint64_t, Hash32>& leaves, std::uint64_t lo,
                    unsigned height) {
  const auto it = leaves.lower_bound(lo);
  if (it == leaves.end() || it->first >= lo + (std::uint64_t{1} << height))
    return zero_of(d, height);
  if (height == 0) return it->second;
  const std::uint64_t half = std::uint64_t{1} << (height - 1);
  return pair_of(d, naive_sparse(d, leaves, lo, height - 1),
                 naive_sparse(d, leaves, lo + half, height - 1));
}

Hash32 naive_size_root(std::uint64_t size) {
  Hash32 r{};
  for (int i = 0; i < 8; ++i) r[i] = static_cast<std::uint8_t>(size >> (8 * i));
  return r;
}

Hash32 naive_cap_root(Digest d, std::uint64_t page_count,
                      const std::map<std::uint64_t, Hash32>& leaves) {
  return pair_of(d, naive_size_root(page_count * PAGE_SIZE),
                 naive_sparse(d, leaves, 0, depth_of(page_count)));
}

Bytes random_bytes(std::mt19937_64& rng, std::size_t len) {
  Bytes b(len);
  const auto style = rng() % 3;
  for (auto& x : b)
    x = static_cast<std::uint8_t>(style == 0 ? rng() : (rng() % 4 == 0 ? rng() : 0));
  return b;
}

Hash32 random_hash(std::mt19937_64& rng) {
  Hash32 h;
  for (auto& x : h) x = static_cast<std::uint8_t>(rng());
  return h;
}

TEST(Merkle, ZeroHashesAreFoldedZeroChunks) {
  for (Digest d : DIGESTS) {
    Hash32 z{};
    for (unsigned k = 0; k <= MAX_ZERO_HEIGHT; ++k) {
      ASSERT_EQ(to_hex(zero_hash(d, k)), to_hex(z)) << to_string(d) << " height " << k;
      z = pair_of(d, z, z);
    }
    EXPECT_THROW((void)zero_hash(d, MAX_ZERO_HEIGHT + 1), OutOfRange);
  }
  EXPECT_NE(zero_hash(Digest::sha256, 1), zero_hash(Digest::blake2b256, 1));
}

TEST(Merkle, PageRootsMatchTheNaiveTree) {
  const std::uint64_t seed = testing::env_seed(150420);
  std::mt19937_64 rng(seed);
  for (Digest d : DIGESTS) {
    SCOPED_TRACE(std::string(to_string(d)) + ", seed " + std::to_string(seed));
    // Whole pages, in batches whose counts straddle the 16-page batch of page_roots.
    for (std::size_t count : {0u, 1u, 2u, 15u, 16u, 17u, 33u}) {
      std::vector<Bytes> pages;
      std::vector<const std::uint8_t*> ptrs;
      alignas(64) static std::uint8_t zero[PAGE_SIZE] = {};
      for (std::size_t i = 0; i < count; ++i)
        pages.push_back(rng() % 5 == 0 ? Bytes(PAGE_SIZE, 0) : random_bytes(rng, PAGE_SIZE));
      for (const Bytes& p : pages) ptrs.push_back(p.data());
      std::vector<Hash32> out(count + 1);
      out[count] = random_hash(rng);  // the slot past the end stays untouched
      const Hash32 sentinel = out[count];
      page_roots(d, ptrs.data(), count, out.data());
      EXPECT_EQ(out[count], sentinel);
      for (std::size_t i = 0; i < count; ++i) {
        const Hash32 want = naive_page(d, pages[i]);
        ASSERT_EQ(to_hex(out[i]), to_hex(want)) << "page_roots[" << i << "] of " << count;
        ASSERT_EQ(to_hex(page_root_of(d, pages[i].data())), to_hex(want));
        ASSERT_EQ(to_hex(page_root(d, pages[i])), to_hex(want));
      }
      EXPECT_EQ(to_hex(page_root_of(d, zero)),
                to_hex(zero_of(d, PAGE_DEPTH)));  // no zero-page shortcut
    }
    // Short contents are zero-padded.
    for (std::size_t len : {0u, 1u, 31u, 32u, 33u, 4095u, 4096u}) {
      const Bytes b = random_bytes(rng, len);
      ASSERT_EQ(to_hex(page_root(d, b)), to_hex(naive_page(d, b))) << "length " << len;
    }
    EXPECT_THROW((void)page_root(d, Bytes(PAGE_SIZE + 1, 1)), OutOfRange);
  }
}

TEST(Merkle, IsZeroPageSeesEveryByte) {
  alignas(64) std::uint8_t page[PAGE_SIZE] = {};
  EXPECT_TRUE(is_zero_page(page));
  std::mt19937_64 rng(testing::env_seed(150421));
  std::vector<std::size_t> at{0, 1, 7, 8, 255, 256, 2048, PAGE_SIZE - 8, PAGE_SIZE - 1};
  for (int k = 0; k < 50; ++k) at.push_back(rng() % PAGE_SIZE);
  for (std::size_t i : at) {
    page[i] = static_cast<std::uint8_t>(1u << (rng() % 8));
    EXPECT_FALSE(is_zero_page(page)) << "byte " << i;
    page[i] = 0;
    EXPECT_TRUE(is_zero_page(page));
  }
}

TEST(Merkle, FoldLevelsMatchesPairwiseHashing) {
  const std::uint64_t seed = testing::env_seed(150422);
  std::mt19937_64 rng(seed);
  for (Digest d : DIGESTS) {
    for (int round = 0; round < 40; ++round) {
      const unsigned log2_count =
          static_cast<unsigned>(rng() % 9);  // up to 256: several 64-pair blocks
      const std::size_t count = std::size_t{1} << log2_count;
      const unsigned levels = log2_count == 0 ? 0 : static_cast<unsigned>(rng() % (log2_count + 1));
      const unsigned height = static_cast<unsigned>(rng() % 20);
      std::vector<Hash32> nodes(count);
      for (auto& n : nodes)
        n = rng() % 3 == 0 ? random_hash(rng) : zero_of(d, height);  // zero pairs too
      std::vector<Hash32> want = nodes;
      for (unsigned l = 0; l < levels; ++l) {
        std::vector<Hash32> up;
        for (std::size_t i = 0; i + 1 < want.size(); i += 2)
          up.push_back(pair_of(d, want[i], want[i + 1]));
        want = up;
      }
      std::vector<Hash32> got = nodes;
      fold_levels(d, got.data(), count, height, levels);
      for (std::size_t i = 0; i < want.size(); ++i) {
        ASSERT_EQ(to_hex(got[i]), to_hex(want[i]))
            << to_string(d) << " count " << count << " height " << height << " levels " << levels
            << " node " << i << ", seed " << seed;
      }
    }
  }
}

TEST(Merkle, MerkleizeMatchesTheNaiveTree) {
  const std::uint64_t seed = testing::env_seed(150423);
  std::mt19937_64 rng(seed);
  for (Digest d : DIGESTS) {
    for (std::uint64_t n : {0ull, 1ull, 2ull, 3ull, 5ull, 8ull, 13ull, 64ull, 100ull, 129ull}) {
      std::vector<Hash32> chunks;
      for (std::uint64_t i = 0; i < n; ++i)
        chunks.push_back(rng() % 4 == 0 ? Hash32{} : random_hash(rng));
      for (std::uint64_t limit :
           {std::max<std::uint64_t>(n, 1), n + 1, n + 7, 2 * n + 3, std::uint64_t{1} << 20}) {
        ASSERT_EQ(to_hex(merkleize(d, chunks, limit)),
                  to_hex(naive_root(d, chunks, 0, depth_of(limit))))
            << to_string(d) << " " << n << " chunks, limit " << limit << ", seed " << seed;
      }
    }
    EXPECT_THROW((void)merkleize(d, {}, 0), InvalidArgument);
    const std::vector<Hash32> three(3);
    EXPECT_THROW((void)merkleize(d, three, 2), InvalidArgument);
  }
}

TEST(Merkle, SizeRootPagesDepthAndCapRoot) {
  std::mt19937_64 rng(testing::env_seed(150424));
  for (std::uint64_t size : {0ull, 1ull, 4096ull, 0x0102030405060708ull, ~0ull}) {
    EXPECT_EQ(size_root(size), naive_size_root(size)) << size;
  }
  for (std::uint64_t n :
       {0ull, 1ull, 2ull, 3ull, 4ull, 5ull, 4096ull, 4097ull, 1ull << 32, (1ull << 32) + 1}) {
    EXPECT_EQ(pages_depth(n), depth_of(n)) << n;
  }
  for (Digest d : DIGESTS) {
    const Hash32 pages_root = random_hash(rng);
    const std::uint64_t len = (rng() % 1000 + 1) * PAGE_SIZE;
    EXPECT_EQ(to_hex(cap_root_of(d, len, pages_root)),
              to_hex(pair_of(d, naive_size_root(len), pages_root)));
  }
}

// Random streams of every append form against the naive cap root of the same leaves.
TEST(Merkle, CapRootBuilderMatchesTheNaiveCapRoot) {
  const std::uint64_t seed = testing::env_seed(150425);
  std::mt19937_64 rng(seed);
  for (Digest d : DIGESTS) {
    CapRootBuilder builder(d);  // reused: finish() resets it
    for (int round = 0; round < 30; ++round) {
      SCOPED_TRACE(std::string(to_string(d)) + " round " + std::to_string(round) + ", seed " +
                   std::to_string(seed));
      std::map<std::uint64_t, Hash32> leaves;  // absent: Empty (0^32)
      std::uint64_t next = 0;
      const int steps = static_cast<int>(rng() % 12);
      for (int s = 0; s < steps; ++s) {
        switch (rng() % 5) {
          case 0: {  // one page, possibly short or all zero (then Empty)
            const Bytes b = rng() % 4 == 0 ? Bytes(rng() % PAGE_SIZE, 0)
                                           : random_bytes(rng, 1 + rng() % PAGE_SIZE);
            builder.append_page(b);
            if (std::any_of(b.begin(), b.end(), [](std::uint8_t x) { return x != 0; }))
              leaves[next] = naive_page(d, b);
            ++next;
            break;
          }
          case 1: {  // a page by its root
            const Hash32 r = random_hash(rng);
            builder.append_page_root(r);
            leaves[next++] = r;
            break;
          }
          case 2: {  // a run of Empty pages, sometimes very long
            const std::uint64_t n = rng() % 4 == 0
                                        ? (std::uint64_t{1} << (10 + rng() % 18)) + rng() % 1000
                                        : rng() % 70;
            builder.append_zero_pages(n);
            next += n;
            break;
          }
          default: {  // consecutive pages, the last one partial at times
            const std::size_t pages = rng() % 40;
            const std::size_t len = pages * PAGE_SIZE + (rng() % 2 == 0 ? rng() % PAGE_SIZE : 0);
            Bytes b(len, 0);
            for (std::size_t p = 0; p * PAGE_SIZE < len; ++p) {
              if (rng() % 3 == 0) continue;  // a zero page: Empty
              const std::size_t n = std::min(PAGE_SIZE, len - p * PAGE_SIZE);
              const Bytes page = random_bytes(rng, n);
              std::copy(page.begin(), page.end(),
                        b.begin() + static_cast<std::ptrdiff_t>(p * PAGE_SIZE));
            }
            builder.append_pages(b);
            for (std::size_t p = 0; p * PAGE_SIZE < len; ++p) {
              const Bytes page(
                  b.begin() + static_cast<std::ptrdiff_t>(p * PAGE_SIZE),
                  b.begin() + static_cast<std::ptrdiff_t>(std::min(len, (p + 1) * PAGE_SIZE)));
              if (std::any_of(page.begin(), page.end(), [](std::uint8_t x) { return x != 0; })) {
                leaves[next + p] = naive_page(d, page);
              }
            }
            next += (len + PAGE_SIZE - 1) / PAGE_SIZE;
          }
        }
        ASSERT_EQ(builder.page_count(), next);
      }
      // The size: below, at or above what was appended, not always page-aligned.
      std::uint64_t size = 0;
      switch (rng() % 3) {
        case 0:
          size = next * PAGE_SIZE;
          break;
        case 1:
          size = (next / 2) * PAGE_SIZE;
          break;
        default:
          size = next * PAGE_SIZE + 1 + rng() % (100 * PAGE_SIZE);
      }
      const std::uint64_t page_count =
          std::max<std::uint64_t>({next, (size + PAGE_SIZE - 1) / PAGE_SIZE, 1});
      ASSERT_EQ(to_hex(builder.finish(size)), to_hex(naive_cap_root(d, page_count, leaves)));
      EXPECT_EQ(builder.page_count(), 0u);
    }
    EXPECT_THROW(builder.append_page(Bytes(PAGE_SIZE + 1, 1)), OutOfRange);
    EXPECT_THROW((void)builder.finish((std::uint64_t{1} << 32) * PAGE_SIZE + 1), OutOfRange);
    // An empty builder: the root of one Empty page.
    EXPECT_EQ(to_hex(CapRootBuilder(d).finish()), to_hex(naive_cap_root(d, 1, {})));
  }
}

}  // namespace
}  // namespace datacap::detail
