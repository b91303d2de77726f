// Proofs and diffs: against the SPEC vectors' roots, against a textbook tree indexed by
// generalized index (tests/support/naive_model, no library code), and against tampering.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "datacap/datacap.hpp"
#include "support/naive_model.hpp"
#include "support/seed.hpp"
#include "support/vectors.hpp"

namespace datacap {
namespace {

using testing::Bytes;
using testing::naive_digest;
using testing::naive_page_root;

// A random clean cap and its page leaves as the textbook sees them.
struct Sample {
  DataCap cap;
  std::vector<Hash32> leaves;  // one per page
  Bytes bytes;                 // effective bytes; Missing pages hold garbage never compared
  std::set<std::uint64_t> missing;
};

Sample random_sample(std::mt19937_64& rng, std::uint64_t page_count, double loaded,
                     double missing) {
  Sample s;
  s.cap = DataCap::zeroed(page_count * PAGE_SIZE);
  s.leaves.assign(page_count, Hash32{});
  s.bytes.assign(page_count * PAGE_SIZE, 0);
  std::uniform_real_distribution<double> coin(0, 1);
  for (std::uint64_t p = 0; p < page_count; ++p) {
    const double c = coin(rng);
    if (c < loaded) {
      Bytes page(PAGE_SIZE);
      for (auto& b : page) b = static_cast<std::uint8_t>(rng());
      page.resize(1 + rng() % PAGE_SIZE);  // a trailing-zero tail, sometimes
      page.resize(PAGE_SIZE, 0);
      s.cap.put_page(p * PAGE_SIZE, page);
      std::copy(page.begin(), page.end(),
                s.bytes.begin() + static_cast<std::ptrdiff_t>(p * PAGE_SIZE));
      s.leaves[p] = naive_page_root(Digest::sha256, page);
    } else if (c < loaded + missing) {
      Hash32 h;
      for (auto& b : h) b = static_cast<std::uint8_t>(rng());
      s.cap.insert_overlay_page(p, PageSlot::missing(h));
      s.leaves[p] = h;
      s.missing.insert(p);
    }
  }
  s.cap = std::move(s.cap).flush();
  return s;
}

// The textbook tree by generalized index: 1 = cap root, 2 = size root, 3 = pages root.
class NaiveTree {
 public:
  NaiveTree(std::uint64_t content_len, std::vector<Hash32> leaves)
      : content_len_(content_len), leaves_(std::move(leaves)) {
    depth_ = 0;
    while ((std::uint64_t{1} << depth_) < leaves_.size()) ++depth_;
  }
  [[nodiscard]] unsigned depth() const { return depth_; }
  Hash32 at(std::uint64_t g) {
    if (auto it = memo_.find(g); it != memo_.end()) return it->second;
    Hash32 v;
    if (g == 1) {
      v = pair(at(2), at(3));
    } else if (g == 2) {
      v = Hash32{};
      for (int i = 0; i < 8; ++i)
        v[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(content_len_ >> (8 * i));
    } else {
      unsigned t = 0;  // levels below the pages root
      while ((std::uint64_t{3} << (t + 1)) <= g) ++t;
      const std::uint64_t j = g - (std::uint64_t{3} << t);
      if (t == depth_) {
        v = j < leaves_.size() ? leaves_[j] : Hash32{};
      } else {
        v = pair(at(2 * g), at(2 * g + 1));
      }
    }
    memo_[g] = v;
    return v;
  }

 private:
  static Hash32 pair(const Hash32& a, const Hash32& b) {
    Bytes m(64);
    std::copy(a.begin(), a.end(), m.begin());
    std::copy(b.begin(), b.end(), m.begin() + 32);
    return naive_digest(Digest::sha256, m);
  }
  std::uint64_t content_len_;
  std::vector<Hash32> leaves_;
  unsigned depth_;
  std::map<std::uint64_t, Hash32> memo_;
};

// SSZ get_helper_indices, set-based and literal.
std::vector<std::uint64_t> naive_helpers(const std::vector<std::uint64_t>& leaves) {
  std::set<std::uint64_t> branch, path;
  for (std::uint64_t g : leaves) {
    for (std::uint64_t x = g; x > 1; x /= 2) {
      branch.insert(x ^ 1);
      path.insert(x);
    }
  }
  std::vector<std::uint64_t> out;
  for (auto it = branch.rbegin(); it != branch.rend(); ++it) {
    if (path.count(*it) == 0) out.push_back(*it);
  }
  return out;
}

TEST(Proof, EveryVectorPageProvesAgainstTheManifestRoot) {
  for (const auto& row : testing::read_manifest()) {
    SCOPED_TRACE(row.file);
    const Bytes content = testing::read_file(testing::vectors_dir() + "/" + row.file);
    const DataCap cap = DataCap::from_bytes_sized(content, row.size_arg);
    const Hash32 root = hash_from_hex(row.sha256_root);
    ASSERT_EQ(cap.hash_tree_root(), root);
    std::set<std::uint64_t> pages = {0, cap.page_count() - 1, cap.page_count() / 2};
    if (cap.page_count() <= 16) {
      for (std::uint64_t p = 0; p < cap.page_count(); ++p) pages.insert(p);
    }
    for (const std::uint64_t p : pages) {
      const PageProof proof = prove_page(cap, p);
      EXPECT_EQ(proof.branch.size(), pages_depth(cap.page_count()) + 1u);
      EXPECT_TRUE(verify_page_proof(proof, root)) << "page " << p;
      PageProof wrong = proof;
      wrong.leaf[0] ^= 1;
      EXPECT_FALSE(verify_page_proof(wrong, root)) << "page " << p;
    }
    const std::vector<std::uint64_t> indices(pages.begin(), pages.end());
    EXPECT_TRUE(verify_multiproof(prove_pages(cap, indices), root));
    // BLAKE2b roots prove the same way.
    const Hash32 b2 = hash_from_hex(row.blake2b256_root);
    EXPECT_TRUE(verify_page_proof(prove_page(cap, 0, Digest::blake2b256), b2, Digest::blake2b256));
    EXPECT_FALSE(verify_page_proof(prove_page(cap, 0, Digest::blake2b256), b2));
  }
}

TEST(Proof, BranchesAndHelpersMatchTheTextbookTree) {
  std::mt19937_64 rng(testing::env_seed(7));
  for (const std::uint64_t page_count : {1u, 2u, 3u, 5u, 63u, 64u, 65u, 100u, 4096u, 4097u}) {
    SCOPED_TRACE("page_count " + std::to_string(page_count));
    const Sample s = random_sample(rng, page_count, 0.4, 0.1);
    NaiveTree tree(s.cap.content_len(), s.leaves);
    const Hash32 root = s.cap.hash_tree_root();
    ASSERT_EQ(tree.at(1), root);
    const unsigned d = tree.depth();
    for (int trial = 0; trial < 8; ++trial) {
      const std::uint64_t p = rng() % page_count;
      const PageProof proof = prove_page(s.cap, p);
      const std::uint64_t g = page_gindex(page_count, p);
      ASSERT_EQ(g, (std::uint64_t{3} << d) + p);
      EXPECT_EQ(proof.leaf, tree.at(g));
      ASSERT_EQ(proof.branch.size(), d + 1u);
      std::uint64_t x = g;
      for (std::size_t k = 0; k < proof.branch.size(); ++k, x /= 2)
        EXPECT_EQ(proof.branch[k], tree.at(x ^ 1)) << k;
      EXPECT_TRUE(verify_page_proof(proof, root));
    }
    for (int trial = 0; trial < 6; ++trial) {
      std::set<std::uint64_t> chosen;
      const std::uint64_t want = 1 + rng() % std::min<std::uint64_t>(page_count, 40);
      while (chosen.size() < want) chosen.insert(rng() % page_count);
      const std::vector<std::uint64_t> pages(chosen.begin(), chosen.end());
      std::vector<std::uint64_t> gindices;
      for (std::uint64_t p : pages) gindices.push_back(page_gindex(page_count, p));
      const std::vector<std::uint64_t> helpers =
          multiproof_helper_gindices(s.cap.content_len(), pages);
      ASSERT_EQ(helpers, naive_helpers(gindices));
      const MultiProof proof = prove_pages(s.cap, pages);
      ASSERT_EQ(proof.helpers.size(), helpers.size());
      for (std::size_t k = 0; k < helpers.size(); ++k)
        EXPECT_EQ(proof.helpers[k], tree.at(helpers[k]));
      for (std::size_t k = 0; k < pages.size(); ++k)
        EXPECT_EQ(proof.leaves[k], tree.at(gindices[k]));
      EXPECT_TRUE(verify_multiproof(proof, root));
    }
  }
}

TEST(Proof, AnyTamperingFailsVerification) {
  std::mt19937_64 rng(testing::env_seed(11));
  const Sample s = random_sample(rng, 300, 0.5, 0.1);
  const Hash32 root = s.cap.hash_tree_root();
  const PageProof proof = prove_page(s.cap, 123);
  ASSERT_TRUE(verify_page_proof(proof, root));
  for (std::size_t k = 0; k < proof.branch.size(); ++k) {
    PageProof t = proof;
    t.branch[k][rng() % 32] ^= static_cast<std::uint8_t>(1 + rng() % 255);
    EXPECT_FALSE(verify_page_proof(t, root)) << "branch " << k;
  }
  PageProof t = proof;
  t.page_index = 122;
  EXPECT_FALSE(verify_page_proof(t, root));
  t = proof;
  t.page_index = 300;  // past the end
  EXPECT_FALSE(verify_page_proof(t, root));
  t = proof;
  t.content_len += PAGE_SIZE;  // size root no longer the last branch entry's
  EXPECT_FALSE(verify_page_proof(t, root));
  t = proof;
  t.content_len += 1;  // not a page multiple
  EXPECT_FALSE(verify_page_proof(t, root));
  t = proof;
  t.branch.pop_back();
  EXPECT_FALSE(verify_page_proof(t, root));
  t = proof;
  t.branch.push_back(Hash32{});
  EXPECT_FALSE(verify_page_proof(t, root));
  Hash32 other = root;
  other[31] ^= 0x80;
  EXPECT_FALSE(verify_page_proof(proof, other));

  const std::vector<std::uint64_t> pages = {0, 1, 2, 77, 123, 299};
  const MultiProof multi = prove_pages(s.cap, pages);
  ASSERT_TRUE(verify_multiproof(multi, root));
  for (std::size_t k = 0; k < multi.helpers.size(); ++k) {
    MultiProof m = multi;
    m.helpers[k][0] ^= 1;
    EXPECT_FALSE(verify_multiproof(m, root)) << "helper " << k;
  }
  for (std::size_t k = 0; k < multi.leaves.size(); ++k) {
    MultiProof m = multi;
    m.leaves[k][5] ^= 4;
    EXPECT_FALSE(verify_multiproof(m, root)) << "leaf " << k;
  }
  MultiProof m = multi;
  m.helpers.pop_back();
  EXPECT_FALSE(verify_multiproof(m, root));
  m = multi;
  m.helpers.push_back(Hash32{});
  EXPECT_FALSE(verify_multiproof(m, root));
  m = multi;
  std::swap(m.page_indices[0], m.page_indices[1]);
  EXPECT_FALSE(verify_multiproof(m, root));
  m = multi;
  m.page_indices[3] = 78;
  EXPECT_FALSE(verify_multiproof(m, root));
  m = multi;
  m.leaves.pop_back();
  EXPECT_FALSE(verify_multiproof(m, root));
  m = multi;
  m.page_indices.clear();
  m.leaves.clear();
  EXPECT_FALSE(verify_multiproof(m, root));
}

TEST(Proof, RangeProofsCarryTheBytesAndCheckThem) {
  std::mt19937_64 rng(testing::env_seed(13));
  const Sample s = random_sample(rng, 200, 0.6, 0.0);
  const Hash32 root = s.cap.hash_tree_root();
  for (int trial = 0; trial < 30; ++trial) {
    const std::uint64_t offset = rng() % s.cap.content_len();
    const std::uint64_t length =
        1 + rng() % std::min<std::uint64_t>(s.cap.content_len() - offset, 5 * PAGE_SIZE);
    const RangeProof proof = prove_range(s.cap, offset, length);
    ASSERT_TRUE(verify_range_proof(proof, root)) << offset << "+" << length;
    const auto got = proof.bytes();
    ASSERT_EQ(got.size(), length);
    EXPECT_TRUE(
        std::equal(got.begin(), got.end(), s.bytes.begin() + static_cast<std::ptrdiff_t>(offset)));
    RangeProof t = proof;
    t.page_bytes[rng() % t.page_bytes.size()] ^= 1;
    EXPECT_FALSE(verify_range_proof(t, root));
    t = proof;
    t.offset += PAGE_SIZE;  // claims other pages than it carries
    EXPECT_FALSE(verify_range_proof(t, root));
  }
  // Whole cap, and the last byte.
  EXPECT_TRUE(verify_range_proof(prove_range(s.cap, 0, s.cap.content_len()), root));
  EXPECT_TRUE(verify_range_proof(prove_range(s.cap, s.cap.content_len() - 1, 1), root));
}

TEST(Proof, ErrorsAreTyped) {
  std::mt19937_64 rng(testing::env_seed(17));
  Sample s = random_sample(rng, 10, 0.5, 0.0);
  EXPECT_THROW((void)prove_page(s.cap, 10), OutOfRange);
  EXPECT_THROW((void)page_gindex(10, 10), OutOfRange);
  const std::vector<std::uint64_t> unsorted = {3, 2};
  const std::vector<std::uint64_t> twice = {2, 2};
  const std::vector<std::uint64_t> past = {2, 10};
  EXPECT_THROW((void)prove_pages(s.cap, unsorted), InvalidArgument);
  EXPECT_THROW((void)prove_pages(s.cap, twice), InvalidArgument);
  EXPECT_THROW((void)prove_pages(s.cap, {}), InvalidArgument);
  EXPECT_THROW((void)prove_pages(s.cap, past), OutOfRange);
  EXPECT_THROW((void)multiproof_helper_gindices(PAGE_SIZE + 1, past), InvalidArgument);
  EXPECT_THROW((void)prove_range(s.cap, 0, 0), InvalidArgument);
  EXPECT_THROW((void)prove_range(s.cap, 10 * PAGE_SIZE - 1, 2), OutOfRange);
  EXPECT_THROW((void)prove_range(s.cap, ~std::uint64_t{0}, 2), OutOfRange);
  DataCap dirty = s.cap;
  dirty.write(5, Bytes{1, 2, 3});
  EXPECT_THROW((void)prove_page(dirty, 0), DirtyCap);
  EXPECT_THROW((void)prove_range(dirty, 0, 1), DirtyCap);
  EXPECT_THROW((void)diff_pages(dirty, s.cap), DirtyCap);
  DataCap with_missing = s.cap;
  with_missing.insert_overlay_page(4, PageSlot::missing(Hash32{1}));
  with_missing = std::move(with_missing).flush();
  try {
    (void)prove_range(with_missing, 4 * PAGE_SIZE + 10, 10);
    ADD_FAILURE() << "no MissingPage";
  } catch (const MissingPage& e) {
    EXPECT_EQ(e.page_index(), 4u);
  }
  // A Missing page still has a page proof: its leaf is its hash.
  const PageProof proof = prove_page(with_missing, 4);
  EXPECT_EQ(proof.leaf, Hash32{1});
  EXPECT_TRUE(verify_page_proof(proof, with_missing.hash_tree_root()));
}

std::vector<std::uint64_t> naive_diff(const Sample& a, const Sample& b) {
  std::vector<std::uint64_t> out;
  const std::size_t n = std::max(a.leaves.size(), b.leaves.size());
  for (std::size_t p = 0; p < n; ++p) {
    const Hash32 la = p < a.leaves.size() ? a.leaves[p] : Hash32{};
    const Hash32 lb = p < b.leaves.size() ? b.leaves[p] : Hash32{};
    if (la != lb) out.push_back(p);
  }
  return out;
}

TEST(Diff, MatchesThePageByPageComparison) {
  std::mt19937_64 rng(testing::env_seed(19));
  for (int trial = 0; trial < 40; ++trial) {
    const std::uint64_t n = 1 + rng() % (trial < 20 ? 300 : 9000);
    Sample a = random_sample(rng, n, 0.5, 0.05);
    // b: a copy of a with some pages rewritten (sharing the rest), sometimes resized.
    Sample b = a;
    const std::uint64_t writes = rng() % 12;
    for (std::uint64_t w = 0; w < writes; ++w) {
      const std::uint64_t p = rng() % n;
      Bytes page(PAGE_SIZE, 0);
      if (rng() % 4 != 0) page[rng() % PAGE_SIZE] = static_cast<std::uint8_t>(1 + rng() % 255);
      b.cap.write_page(p * PAGE_SIZE, page);
      b.leaves[p] = std::all_of(page.begin(), page.end(), [](std::uint8_t x) { return x == 0; })
                        ? Hash32{}
                        : naive_page_root(Digest::sha256, page);
    }
    b.cap = std::move(b.cap).flush();
    if (trial % 5 == 4) {  // a different size: a fresh, unshared cap of other depth
      b = random_sample(rng, 1 + rng() % 5000, 0.5, 0.0);
    }
    SCOPED_TRACE("trial " + std::to_string(trial) + ": " + std::to_string(a.leaves.size()) +
                 " vs " + std::to_string(b.leaves.size()) + " pages");
    EXPECT_EQ(diff_pages(a.cap, b.cap), naive_diff(a, b));
    EXPECT_EQ(diff_pages(b.cap, a.cap), naive_diff(b, a));
    EXPECT_TRUE(diff_pages(a.cap, a.cap).empty());
  }
}

TEST(Diff, LoadedAndMissingWithTheSameRootAreEqual) {
  std::mt19937_64 rng(testing::env_seed(23));
  const Sample a = random_sample(rng, 500, 0.8, 0.0);
  DataCap b = a.cap;
  std::vector<std::uint64_t> elide;
  for (std::uint64_t p = 0; p < 500; p += 7) elide.push_back(p);
  b.elide_pages(elide);
  EXPECT_TRUE(diff_pages(a.cap, b).empty());
  // An empty cap against a cap: every non-Empty page differs.
  const DataCap none = DataCap::zeroed(PAGE_SIZE);
  std::vector<std::uint64_t> expected;
  for (std::uint64_t p = 0; p < 500; ++p) {
    if (a.leaves[p] != Hash32{}) expected.push_back(p);
  }
  EXPECT_EQ(diff_pages(none, a.cap), expected);
}

}  // namespace
}  // namespace datacap
