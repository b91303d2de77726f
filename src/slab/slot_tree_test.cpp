// The slot tree on its own, against a naive model (a map from page index to the page object
// stored there, and a textbook merkle over it), with check_tree_invariants after every
// mutation; and proof that each family of check_tree_invariants fires on a damaged tree.
//
// Seeds: DATACAP_SEED shifts every seed (support/seed.hpp); the seed is printed and recorded.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <span>
#include <vector>

#include "cap/cap_access.hpp"
#include "datacap/datacap.hpp"
#include "slab/slot_tree.hpp"
#include "slab/slot_tree_check.hpp"
#include "support/seed.hpp"

namespace datacap::detail {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Model = std::map<std::uint64_t, PageNode*>;  // absent: Empty; pointers compared by identity

constexpr Digest DIGESTS[] = {Digest::sha256, Digest::blake2b256};
constexpr std::uint64_t ALL = ~std::uint64_t{0};

// Pages made here stay alive to the end of the test (`keep`), so no address is reused and the
// naive roots may be memoized by address.
struct Pages {
  std::vector<PageRef> keep;
  std::mt19937_64 rng;
  std::map<std::pair<const PageNode*, Digest>, Hash32> roots;

  explicit Pages(std::uint64_t seed) : rng(seed) {}

  PageNode* held(PageNode* node) {
    node->retain();
    keep.push_back(PageNode::adopt_ref(node));
    return node;
  }
  // A new Loaded page with random bytes (some zero runs); the caller's reference moves into a
  // tree with tree_set.
  PageNode* loaded() {
    Bytes b(PAGE_SIZE);
    for (auto& x : b) x = static_cast<std::uint8_t>(rng() % 3 == 0 ? 0 : rng());
    return held(PageNode::copy_of(b.data(), b.size()));
  }
  PageNode* copy_of(const PageNode* page) { return held(PageNode::copy_of(page->data, PAGE_SIZE)); }
  PageNode* missing() {
    Hash32 h;
    for (auto& x : h) x = static_cast<std::uint8_t>(rng());
    return held(PageNode::missing(h));
  }
  PageNode* any() { return rng() % 5 == 0 ? missing() : loaded(); }

  // The slot root, naively: page_root of the bytes, or a Missing page's hash.
  Hash32 root(const PageNode* page, Digest d) {
    if (page == nullptr) return Hash32{};
    if (page->data == nullptr) return page->missing_hash();
    auto [it, fresh] = roots.try_emplace({page, d});
    if (fresh) it->second = page_root(d, std::span<const std::uint8_t>(page->data, PAGE_SIZE));
    return it->second;
  }
};

Hash32 naive_zero(Digest d, unsigned height) {
  Hash32 z{};
  for (unsigned h = 0; h < height; ++h) z = hash_pair(d, z, z);
  return z;
}

// The pages root of the model, recursively over [lo, lo + 2^height).
Hash32 naive_subtree(Pages& pages, const Model& m, Digest d, std::uint64_t lo, unsigned height) {
  const auto it = m.lower_bound(lo);
  if (it == m.end() || it->first >= lo + (std::uint64_t{1} << height)) return naive_zero(d, height);
  if (height == 0) return pages.root(it->second, d);
  const std::uint64_t half = std::uint64_t{1} << (height - 1);
  return hash_pair(d, naive_subtree(pages, m, d, lo, height - 1),
                   naive_subtree(pages, m, d, lo + half, height - 1));
}

Hash32 naive_pages_root(Pages& pages, const Model& m, Digest d, std::uint64_t page_count) {
  return naive_subtree(pages, m, d, 0, pages_depth(page_count));
}

// A tree with its model. Copies share every node (the root gains a reference).
struct Tree {
  std::uint64_t page_count;
  unsigned levels;
  TreeNode* root = nullptr;
  Model model;

  explicit Tree(std::uint64_t pages) : page_count(pages), levels(tree_levels(pages)) {}
  Tree(const Tree& o) : page_count(o.page_count), levels(o.levels), root(o.root), model(o.model) {
    tree_retain(root);
  }
  Tree& operator=(const Tree&) = delete;
  ~Tree() { tree_release(root); }

  void set(std::uint64_t page_index, PageNode* page) {
    tree_set(root, levels, page_index, page);
    if (page == nullptr) {
      model.erase(page_index);
    } else {
      model[page_index] = page;
    }
  }
  void check() const { check_tree_invariants(root, levels, page_count); }
  TreeNode* node_at(std::uint64_t page_index, unsigned level) const {
    return const_cast<TreeNode*>(tree_node_at(root, levels, page_index, level));
  }
};

// Content: every model page by pointer, nothing else (count and an in-order walk), and some
// ranges of tree_for_each.
void expect_content(const Tree& t, std::mt19937_64& rng) {
  ASSERT_EQ(tree_count(t.root), t.model.size());
  for (const auto& [i, page] : t.model)
    ASSERT_EQ(tree_get(t.root, t.levels, i), page) << "page " << i;
  std::vector<std::pair<std::uint64_t, PageNode*>> walked;
  tree_for_each(t.root, t.levels, 0, t.page_count,
                [&](std::uint64_t i, PageNode* p) { walked.emplace_back(i, p); });
  const std::vector<std::pair<std::uint64_t, PageNode*>> want_all(t.model.begin(), t.model.end());
  ASSERT_EQ(walked, want_all);
  for (int k = 0; k < 3; ++k) {
    const std::uint64_t lo = rng() % (t.page_count + 1);
    const std::uint64_t hi = lo + rng() % (t.page_count + 1 - lo);
    std::vector<std::pair<std::uint64_t, PageNode*>> got, want;
    tree_for_each(t.root, t.levels, lo, hi,
                  [&](std::uint64_t i, PageNode* p) { got.emplace_back(i, p); });
    for (auto it = t.model.lower_bound(lo); it != t.model.end() && it->first < hi; ++it)
      want.emplace_back(*it);
    ASSERT_EQ(got, want) << "tree_for_each [" << lo << ", " << hi << ")";
  }
}

void expect_roots(Pages& pages, const Tree& t) {
  for (Digest d : DIGESTS) {
    ASSERT_EQ(to_hex(tree_pages_root(t.root, t.levels, t.page_count, d)),
              to_hex(naive_pages_root(pages, t.model, d, t.page_count)))
        << "pages root, " << to_string(d);
  }
}

// Checks several trees that are alive together, reference counts included.
void check_together(std::initializer_list<const Tree*> trees) {
  TreeChecker checker;
  int n = 0;
  for (const Tree* t : trees)
    checker.add_tree(t->root, t->levels, t->page_count, "tree " + std::to_string(n++));
  checker.finish();
}

std::uint64_t random_index(std::mt19937_64& rng, std::uint64_t page_count) {
  // Clustered: most writes land in a few leaves, some anywhere, some on the last pages.
  switch (rng() % 4) {
    case 0:
      return rng() % page_count;
    case 1:
      return page_count - 1 - rng() % std::min<std::uint64_t>(page_count, 70);
    default:
      return ((rng() % 4) * 64 + rng() % 64) % page_count;
  }
}

template <class F>
TreeRule rule_of(F&& f) {
  try {
    f();
  } catch (const TreeInvariantError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::integrity);
    EXPECT_NE(std::string(e.what()).find("slot tree invariant"), std::string::npos) << e.what();
    return e.rule();
  }
  ADD_FAILURE() << "no TreeInvariantError";
  return TreeRule::shape;
}

NodeHashes* hashes(TreeNode* node, Digest d) {
  return node->hashes[static_cast<std::size_t>(d)].load();
}

// ---- levels and basic shape ------------------------------------------------------------------

TEST(SlotTree, LevelsCoverThePageCount) {
  EXPECT_EQ(tree_levels(0), 0u);
  EXPECT_EQ(tree_levels(1), 1u);
  EXPECT_EQ(tree_levels(64), 1u);
  EXPECT_EQ(tree_levels(65), 2u);
  EXPECT_EQ(tree_levels(4096), 2u);
  EXPECT_EQ(tree_levels(4097), 3u);
  EXPECT_EQ(tree_levels(std::uint64_t{1} << 32), 6u);
  for (std::uint64_t pages :
       {1ull, 2ull, 63ull, 64ull, 65ull, 4096ull, 4097ull, 262144ull, 262145ull}) {
    const unsigned levels = tree_levels(pages);
    EXPECT_GE(std::uint64_t{1} << (FANOUT_LOG2 * levels), pages) << pages;
    if (levels > 1) {
      EXPECT_LT(std::uint64_t{1} << (FANOUT_LOG2 * (levels - 1)), pages) << pages;
    }
  }
}

// Every page count shape (one page, one leaf, partial and full levels), random sets and
// clears, each followed by the invariant check, content against the model and roots.
TEST(SlotTree, SetGetCountAndRootsMatchTheModel) {
  const std::uint64_t seed = testing::env_seed(150401);
  Pages pages(seed);
  std::mt19937_64 rng(seed);
  for (std::uint64_t page_count : {1ull, 2ull, 3ull, 64ull, 65ull, 130ull, 4096ull, 5000ull}) {
    SCOPED_TRACE("page_count " + std::to_string(page_count) + ", seed " + std::to_string(seed));
    Tree t(page_count);
    for (int op = 0; op < 150; ++op) {
      const std::uint64_t i = random_index(rng, page_count);
      t.set(i, rng() % 4 == 0 ? nullptr : pages.any());
      ASSERT_NO_THROW(t.check()) << "after op " << op;
      ASSERT_EQ(tree_get(t.root, t.levels, i), t.model.count(i) ? t.model[i] : nullptr);
      if (op % 25 == 0) {
        expect_content(t, rng);
        expect_roots(pages, t);
        ASSERT_NO_THROW(t.check()) << "after hashing, op " << op;
      }
    }
    // Clearing everything removes every node (tree_set drops emptied nodes).
    const Model m = t.model;
    for (const auto& [i, page] : m) t.set(i, nullptr);
    EXPECT_EQ(t.root, nullptr);
    expect_roots(pages, t);
  }
}

// Path copies of shared trees: snapshots taken along the way keep their content and roots
// while the tree they were copied from goes on changing (and the other way round).
TEST(SlotTree, PathCopiesLeaveSharedTreesUnchanged) {
  const std::uint64_t seed = testing::env_seed(150402);
  Pages pages(seed);
  std::mt19937_64 rng(seed);
  constexpr std::uint64_t PAGES = 5000;  // three levels
  Tree t(PAGES);
  std::vector<std::unique_ptr<Tree>> snaps;
  std::vector<Hash32> snap_roots;
  for (int op = 0; op < 400; ++op) {
    if (op % 40 == 0) {
      snaps.push_back(std::make_unique<Tree>(t));
      if (op % 80 == 0)
        (void)tree_pages_root(t.root, t.levels, PAGES, Digest::sha256);  // READY hashes shared too
      snap_roots.push_back(naive_pages_root(pages, t.model, Digest::sha256, PAGES));
    }
    t.set(random_index(rng, PAGES), rng() % 5 == 0 ? nullptr : pages.any());
    ASSERT_NO_THROW(t.check()) << "op " << op;
  }
  for (std::size_t s = 0; s < snaps.size(); ++s) {
    SCOPED_TRACE("snapshot " + std::to_string(s));
    expect_content(*snaps[s], rng);
    EXPECT_EQ(to_hex(tree_pages_root(snaps[s]->root, snaps[s]->levels, PAGES, Digest::sha256)),
              to_hex(snap_roots[s]));
    ASSERT_NO_THROW(snaps[s]->check());
  }
  // Then write into the snapshots: t must not move.
  const Hash32 t_root = naive_pages_root(pages, t.model, Digest::blake2b256, PAGES);
  for (auto& s : snaps) {
    for (int k = 0; k < 10; ++k) s->set(random_index(rng, PAGES), pages.any());
  }
  expect_content(t, rng);
  EXPECT_EQ(to_hex(tree_pages_root(t.root, t.levels, PAGES, Digest::blake2b256)), to_hex(t_root));
  TreeChecker checker;
  checker.add_tree(t.root, t.levels, PAGES, "t");
  for (std::size_t s = 0; s < snaps.size(); ++s)
    checker.add_tree(snaps[s]->root, snaps[s]->levels, PAGES, "snapshot " + std::to_string(s));
  ASSERT_NO_THROW(checker.finish());
  for (auto& s : snaps) expect_roots(pages, *s);
}

// A path copy of a shared node borrows its origin's children and owns only what it writes;
// a copy of that copy shares the first origin; owning every slot drops the origin.
TEST(SlotTree, PathCopiesBorrowFromTheirOrigin) {
  Pages pages(150403);
  Tree a(4096);  // two levels
  for (std::uint64_t i = 0; i < 64; ++i) a.set(i, pages.loaded());
  a.set(100, pages.loaded());
  TreeNode* a_leaf = a.node_at(0, 0);
  TreeNode* a_root = a.root;
  ASSERT_EQ(a_leaf->refs.load(), 1u);

  Tree b(a);
  b.set(3, pages.loaded());
  TreeNode* b_leaf = b.node_at(0, 0);
  ASSERT_NE(b_leaf, a_leaf);
  EXPECT_EQ(b_leaf->origin, a_leaf);
  EXPECT_EQ(b_leaf->owned, std::uint64_t{1} << 3);
  EXPECT_EQ(b.root->origin, a_root);                // the root was shared too
  EXPECT_EQ(b.root->owned, std::uint64_t{1} << 0);  // it owns the slot it wrote: the new leaf
  // A's leaf: held by A's root and by B's leaf (as its origin); its pages by A's leaf alone.
  EXPECT_EQ(a_leaf->refs.load(), 2u);
  EXPECT_EQ(a.model[5]->refs.load(), 2u);  // A's leaf + `keep`
  for (std::size_t j = 0; j < 64; ++j) {
    if (j != 3) {
      EXPECT_EQ(b_leaf->child[j], a_leaf->child[j]) << j;
    }
  }
  b.set(5, pages.loaded());
  b.set(7, nullptr);
  EXPECT_EQ(b_leaf->owned, (std::uint64_t{1} << 3) | (1u << 5) | (1u << 7));
  EXPECT_EQ(a.model[5]->refs.load(), 2u);  // a borrowed page that is replaced is not touched
  ASSERT_NO_THROW(check_together({&a, &b}));
  EXPECT_EQ(tree_get(a.root, a.levels, 7), a.model[7]);

  // A copy of the copy: same origin, the owned slots retained.
  Tree c(b);
  c.set(9, pages.loaded());
  TreeNode* c_leaf = c.node_at(0, 0);
  EXPECT_EQ(c_leaf->origin, a_leaf);
  EXPECT_EQ(c_leaf->owned, (std::uint64_t{1} << 3) | (1u << 5) | (1u << 7) | (1u << 9));
  EXPECT_EQ(a_leaf->refs.load(), 3u);      // A's root, B's leaf, C's leaf
  EXPECT_EQ(b.model[3]->refs.load(), 3u);  // B's leaf, C's leaf, `keep`
  ASSERT_NO_THROW(check_together({&a, &b, &c}));

  // Writing every slot of C's leaf: it owns them all and lets go of the origin.
  for (std::uint64_t i = 0; i < 64; ++i) c.set(i, pages.loaded());
  EXPECT_EQ(c_leaf->origin, nullptr);
  EXPECT_EQ(a_leaf->refs.load(), 2u);
  ASSERT_NO_THROW(check_together({&a, &b, &c}));
  std::mt19937_64 rng(1);
  expect_content(a, rng);
  expect_content(b, rng);
  expect_content(c, rng);
  expect_roots(pages, a);
  expect_roots(pages, b);
  expect_roots(pages, c);
}

// After every tree is released, every node and page is freed: live pages back to the start,
// and pages held outside the trees back to one reference.
TEST(SlotTree, ReferenceCountsReturnToTheStart) {
  const std::uint64_t live = live_page_count();
  std::mt19937_64 rng(testing::env_seed(150404));
  std::vector<PageRef> outside;
  {
    std::vector<std::unique_ptr<Tree>> trees;
    trees.push_back(std::make_unique<Tree>(5000));
    for (int op = 0; op < 600; ++op) {
      Tree& t = *trees[rng() % trees.size()];
      switch (rng() % 6) {
        case 0:
          trees.push_back(std::make_unique<Tree>(t));
          break;
        case 1: {  // a page also held outside
          PageNode* p = PageNode::copy_of(reinterpret_cast<const std::uint8_t*>("outside"), 7);
          p->retain();
          outside.push_back(PageNode::adopt_ref(p));
          t.set(random_index(rng, t.page_count), p);
          break;
        }
        case 2:
          t.set(random_index(rng, t.page_count), nullptr);
          break;
        default:
          t.set(random_index(rng, t.page_count),
                PageNode::copy_of(reinterpret_cast<const std::uint8_t*>(&op), sizeof op));
      }
      if (op % 50 == 0) {
        (void)tree_pages_root(t.root, t.levels, t.page_count, Digest::sha256);
        TreeChecker checker;
        for (auto& tr : trees) checker.add_tree(tr->root, tr->levels, tr->page_count, "t");
        ASSERT_NO_THROW(checker.finish());
      }
    }
    // Merges consume some of them.
    for (std::size_t k = 1; k + 1 < trees.size(); k += 2) {
      TreeNode* ov = trees[k]->root;
      trees[k]->root = nullptr;
      tree_merge_consume(trees[k + 1]->root, trees[k + 1]->levels, ov,
                         [](std::uint64_t, PageNode* p) {
                           p->retain();
                           return p;
                         });
      ASSERT_EQ(ov, nullptr);
    }
  }
  EXPECT_EQ(live_page_count(), live + outside.size());
  for (const PageRef& p : outside) EXPECT_EQ(p.use_count(), 1u);
  outside.clear();
  EXPECT_EQ(live_page_count(), live);
}

// ---- merges ------------------------------------------------------------------------------------

PageNode* adopt_canonical(std::uint64_t, PageNode* p) {
  if (p->data != nullptr && p->data[0] == 0xEE) return nullptr;  // this test's "zero page"
  p->retain();
  return p;
}

void merge_model(Model& backing, const Model& overlay) {
  for (const auto& [i, p] : overlay) {
    if (p->data != nullptr && p->data[0] == 0xEE) {
      backing.erase(i);
    } else {
      backing[i] = p;
    }
  }
}

TEST(SlotTree, MergeAndMergeConsumeMatchTheModel) {
  const std::uint64_t seed = testing::env_seed(150405);
  Pages pages(seed);
  std::mt19937_64 rng(seed);
  for (std::uint64_t page_count : {1ull, 64ull, 65ull, 5000ull, 300000ull}) {
    SCOPED_TRACE("page_count " + std::to_string(page_count) + ", seed " + std::to_string(seed));
    for (int round = 0; round < 6; ++round) {
      Tree backing(page_count);
      for (int k = 0; k < 120; ++k) backing.set(random_index(rng, page_count), pages.any());
      if (round % 2 == 0)
        (void)tree_pages_root(backing.root, backing.levels, page_count, Digest::sha256);
      const Tree backing_before(backing);  // shared: must not change
      Tree overlay(page_count);
      for (int k = 0; k < 80; ++k) {
        PageNode* p = pages.any();
        if (rng() % 6 == 0 && p->data != nullptr) p->data[0] = 0xEE;  // folds to Empty
        overlay.set(random_index(rng, page_count), p);
      }
      if (round >= 3) {  // an overlay that is partly a path copy of another
        Tree base_overlay(overlay);
        overlay.set(random_index(rng, page_count), pages.loaded());
      }
      const Tree overlay_before(overlay);
      Model want = backing.model;
      merge_model(want, overlay.model);
      if (round % 3 != 2) {
        tree_merge(backing.root, backing.levels, overlay.root, adopt_canonical);
      } else {
        // Consume a reference of its own (overlay_before keeps the nodes shared; a second
        // reference makes the root shared too, which must not be written).
        TreeNode* ov = overlay.root;
        overlay.root = nullptr;
        tree_merge_consume(backing.root, backing.levels, ov, adopt_canonical);
        EXPECT_EQ(ov, nullptr);
        overlay.model.clear();
      }
      backing.model = want;
      ASSERT_NO_THROW(check_together({&backing, &backing_before, &overlay_before}))
          << "round " << round;
      expect_content(backing, rng);
      expect_content(backing_before, rng);
      expect_content(overlay_before, rng);
      expect_roots(pages, backing);
      expect_roots(pages, backing_before);
      ASSERT_NO_THROW(check_together({&backing, &backing_before, &overlay_before}));
    }
  }
}

// An overlay held by nobody else is freed during the merge, node by node.
TEST(SlotTree, MergeConsumeFreesAnUnsharedOverlay) {
  Pages pages(150406);
  pages.keep.clear();
  const std::uint64_t live = live_page_count();
  {
    Tree backing(5000);
    for (std::uint64_t i = 0; i < 5000; i += 37)
      backing.set(i, PageNode::copy_of(reinterpret_cast<const std::uint8_t*>(&i), 8));
    TreeNode* ov = nullptr;
    const unsigned levels = backing.levels;
    for (std::uint64_t i = 0; i < 5000; i += 91) {
      tree_set(ov, levels, i, PageNode::copy_of(reinterpret_cast<const std::uint8_t*>(&levels), 1));
    }
    tree_merge_consume(backing.root, levels, ov, [](std::uint64_t, PageNode* p) {
      p->retain();
      return p;
    });
    EXPECT_EQ(ov, nullptr);
    ASSERT_NO_THROW(backing.check());
    EXPECT_EQ(tree_count(backing.root), 136u + 55u - 2u);  // 0 and 3367 hit by both
  }
  EXPECT_EQ(live_page_count(), live);
}

// ---- subtrees, same-root replacement, diffs, links ------------------------------------------

TEST(SlotTree, SetSubtreeSharesAWholeNode) {
  Pages pages(150407);
  std::mt19937_64 rng(150407);
  constexpr std::uint64_t PAGES = 16384;  // three levels; level-1 nodes cover 4096 pages
  Tree src(PAGES), dst(PAGES);
  for (int k = 0; k < 300; ++k) src.set(rng() % PAGES, pages.any());
  for (int k = 0; k < 300; ++k) dst.set(rng() % PAGES, pages.any());
  (void)tree_pages_root(src.root, src.levels, PAGES, Digest::sha256);
  (void)tree_pages_root(dst.root, dst.levels, PAGES, Digest::sha256);
  const Tree dst_before(dst);
  auto place = [&](std::uint64_t from, std::uint64_t to, unsigned level) {
    const std::uint64_t span = std::uint64_t{1} << (FANOUT_LOG2 * (level + 1));
    TreeNode* node = src.node_at(from, level);
    if (node != nullptr) node->retain();
    tree_set_subtree(dst.root, dst.levels, to, level, node);
    for (auto it = dst.model.lower_bound(to); it != dst.model.end() && it->first < to + span;)
      it = dst.model.erase(it);
    for (auto it = src.model.lower_bound(from); it != src.model.end() && it->first < from + span;
         ++it) {
      dst.model[to + (it->first - from)] = it->second;
    }
    ASSERT_NO_THROW(check_together({&src, &dst, &dst_before}));
    expect_content(dst, rng);
    expect_roots(pages, dst);
  };
  place(4096, 8192, 1);
  place(64, 12288 + 128, 0);
  place(0, 4096, 1);
  EXPECT_EQ(dst.node_at(4096, 1), src.node_at(0, 1));  // the node itself, hashes and all
  place(PAGES, 0, 1);  // null: past src's pages, so clears dst's first 4096
  EXPECT_EQ(dst.node_at(0, 1), nullptr);
  place(0, 0, 2);  // the root itself
  EXPECT_EQ(dst.root, src.root);
  expect_content(dst_before, rng);
  expect_roots(pages, dst_before);
}

TEST(SlotTree, ReplaceSameRootKeepsTheKeptDigestCached) {
  Pages pages(150408);
  std::mt19937_64 rng(150408);
  Tree t(5000);
  for (int k = 0; k < 200; ++k) t.set(random_index(rng, 5000), pages.loaded());
  expect_roots(pages, t);  // both digests computed
  const Tree shared(t);
  const Hash32 sha_before = tree_pages_root(t.root, t.levels, 5000, Digest::sha256);
  int replaced = 0;
  for (const auto& [i, page] : Model(t.model)) {
    if (i % 3 != 0) continue;
    PageNode* missing = PageNode::missing(page->root(Digest::sha256));
    pages.held(missing);
    tree_replace_same_root(t.root, t.levels, i, missing, Digest::sha256);
    t.model[i] = missing;
    ++replaced;
    ASSERT_NO_THROW(check_together({&t, &shared}));
    EXPECT_TRUE(tree_root_cached(t.root, Digest::sha256));
    EXPECT_FALSE(tree_root_cached(t.root, Digest::blake2b256));
  }
  ASSERT_GT(replaced, 10);
  EXPECT_EQ(to_hex(tree_pages_root(t.root, t.levels, 5000, Digest::sha256)), to_hex(sha_before));
  expect_roots(pages, t);  // BLAKE2b changes: a Missing leaf is its (SHA-256) hash
  expect_roots(pages, shared);
  expect_content(shared, rng);
  ASSERT_NO_THROW(check_together({&t, &shared}));
}

TEST(SlotTree, DiffReportsExactlyThePagesWhoseRootsDiffer) {
  const std::uint64_t seed = testing::env_seed(150409);
  Pages pages(seed);
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 8; ++round) {
    SCOPED_TRACE("round " + std::to_string(round) + ", seed " + std::to_string(seed));
    const std::uint64_t count_a =
        round < 4 ? 5000 : 3000;  // the later rounds: fewer levels on one side
    Tree a(count_a);
    for (int k = 0; k < 150; ++k) a.set(random_index(rng, count_a), pages.any());
    Tree b(5000);
    if (count_a == 5000) {
      tree_release(b.root);
      b.root = a.root;
      tree_retain(b.root);
      b.model = a.model;
    } else {
      for (const auto& [i, p] : a.model) {
        p->retain();
        b.set(i, p);
      }
    }
    for (int k = 0; k < 30; ++k) {
      const std::uint64_t i = random_index(rng, 5000);
      switch (rng() % 4) {
        case 0:
          b.set(i, nullptr);
          break;
        case 1:  // same bytes, another object: equal roots, not a difference
          if (b.model.count(i) && b.model[i]->data != nullptr) {
            b.set(i, pages.copy_of(b.model[i]));
            break;
          }
          [[fallthrough]];
        default:
          b.set(i, pages.any());
      }
    }
    ASSERT_NO_THROW(check_together({&a, &b}));
    for (Digest d : DIGESTS) {
      const std::uint64_t limit = rng() % 2 == 0 ? 5000 : rng() % 5000;
      std::set<std::uint64_t> want;
      std::set<std::uint64_t> touched;
      for (const auto& [i, p] : a.model) touched.insert(i);
      for (const auto& [i, p] : b.model) touched.insert(i);
      for (std::uint64_t i : touched) {
        if (i >= limit) continue;
        const PageNode* pa = a.model.count(i) ? a.model[i] : nullptr;
        const PageNode* pb = b.model.count(i) ? b.model[i] : nullptr;
        if (pages.root(pa, d) != pages.root(pb, d)) want.insert(i);
      }
      std::vector<std::uint64_t> got;
      tree_diff(a.root, a.levels, b.root, b.levels, limit, d, got);
      EXPECT_EQ(got, std::vector<std::uint64_t>(want.begin(), want.end()))
          << to_string(d) << " limit " << limit;
      got.clear();
      tree_diff(b.root, b.levels, a.root, a.levels, limit, d, got);
      EXPECT_EQ(got, std::vector<std::uint64_t>(want.begin(), want.end())) << "reversed";
      ASSERT_NO_THROW(check_together({&a, &b}));  // the diff computed hashes: still valid
    }
  }
}

TEST(SlotTree, LinkAndLeafForWrite) {
  Pages pages(150410);
  std::mt19937_64 rng(150410);
  Tree t(5000);
  for (int k = 0; k < 50; ++k) t.set(random_index(rng, 5000), pages.loaded());
  (void)tree_pages_root(t.root, t.levels, 5000, Digest::sha256);
  const Tree shared(t);
  // A link: the caller replaces the value, releasing the old page and adopting the new one.
  for (std::uint64_t i : {7ull, 130ull, 4999ull}) {
    void*& link = tree_link_for_write(t.root, t.levels, i);
    auto* old = static_cast<PageNode*>(link);
    link = pages.loaded();
    if (old != nullptr) old->release();
    t.model[i] = static_cast<PageNode*>(link);
    ASSERT_NO_THROW(check_together({&t, &shared}));
  }
  // A leaf a builder fills directly (here a new one, as archives do).
  Tree built(5000);
  TreeNode* leaf = tree_leaf_for_write(built.root, built.levels, 4100);
  for (std::uint64_t j = 0; j < 64; j += 3) {
    leaf->child[j] = pages.loaded();
    built.model[4096 + j] = static_cast<PageNode*>(leaf->child[j]);
  }
  ASSERT_NO_THROW(built.check());
  expect_content(built, rng);
  expect_content(t, rng);
  expect_content(shared, rng);
  expect_roots(pages, built);
  expect_roots(pages, t);
  expect_roots(pages, shared);
}

// ---- cached hashes: reused where nothing changed, recomputed on the path -----------------------

// Every node of a tree, with its first page.
void nodes_of(TreeNode* node, std::uint64_t first,
              std::vector<std::pair<TreeNode*, std::uint64_t>>& out) {
  if (node == nullptr) return;
  out.emplace_back(node, first);
  if (node->level == 0) return;
  const std::uint64_t span = std::uint64_t{1} << (FANOUT_LOG2 * node->level);
  for (std::size_t j = 0; j < FANOUT; ++j)
    nodes_of(static_cast<TreeNode*>(node->child[j]), first + j * span, out);
}

bool covers(const TreeNode* node, std::uint64_t first, std::uint64_t page_index) {
  return page_index >= first &&
         page_index - first < (std::uint64_t{1} << (FANOUT_LOG2 * (node->level + 1)));
}

TEST(SlotTree, CachedHashesAreReusedOffThePathAndRecomputedOnIt) {
  const std::uint64_t seed = testing::env_seed(150411);
  Pages pages(seed);
  std::mt19937_64 rng(seed);
  constexpr std::uint64_t PAGES = 300000;  // four levels
  Tree t(PAGES);
  for (int k = 0; k < 400; ++k) t.set(rng() % PAGES, pages.any());
  expect_roots(pages, t);
  for (int step = 0; step < 20; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    std::vector<std::pair<TreeNode*, std::uint64_t>> before;
    nodes_of(t.root, 0, before);
    std::map<TreeNode*, std::pair<NodeHashes*, Hash32>> cached;
    for (auto [node, first] : before) {
      NodeHashes* nh = hashes(node, Digest::sha256);
      ASSERT_NE(nh, nullptr);
      ASSERT_EQ(nh->state.load(), NodeHashes::READY);
      cached[node] = {nh, nh->h[1]};
    }
    const bool share = step % 2 == 1;  // a path copy instead of an in-place change
    std::unique_ptr<Tree> snapshot = share ? std::make_unique<Tree>(t) : nullptr;
    const std::uint64_t i =
        t.model.empty() || rng() % 2
            ? rng() % PAGES
            : std::next(t.model.begin(), static_cast<long>(rng() % t.model.size()))->first;
    t.set(i, pages.any());
    ASSERT_NO_THROW(t.check());  // every clean heap entry still right
    std::vector<std::pair<TreeNode*, std::uint64_t>> after;
    nodes_of(t.root, 0, after);
    for (auto [node, first] : after) {
      NodeHashes* nh = hashes(node, Digest::sha256);
      if (!covers(node, first, i)) {  // off the path: the same node and the same READY hashes
        ASSERT_TRUE(cached.count(node)) << "a node off the path was replaced";
        EXPECT_EQ(nh, cached[node].first);
        EXPECT_EQ(nh->state.load(), NodeHashes::READY);
        continue;
      }
      // On the path: the one changed child marked, the rest of the heap carried over.
      const std::uint64_t bit = std::uint64_t{1}
                                << ((i >> (FANOUT_LOG2 * node->level)) & (FANOUT - 1));
      if (nh == nullptr) {  // a node created for this write
        EXPECT_FALSE(cached.count(node));
        continue;
      }
      EXPECT_EQ(nh->state.load(), NodeHashes::EMPTY);
      EXPECT_EQ(nh->dirty.load(), bit) << "level " << int{node->level};
      if (share) {
        EXPECT_EQ(cached.count(node), 0u) << "a shared node on the path was written in place";
      } else if (cached.count(node) == 0) {
        // Not shared with any tree, yet copied: a slot borrowed from an origin (a copy's
        // origin keeps its own reference on the child, so own_slot makes it look shared).
        EXPECT_NE(node->origin, nullptr) << "an unshared node on the path was copied";
      }
    }
    expect_roots(pages, t);
    ASSERT_NO_THROW(t.check());
    if (snapshot) {
      for (auto& [node, c] : cached) {  // the snapshot's nodes kept their hashes
        EXPECT_EQ(hashes(node, Digest::sha256), c.first);
        EXPECT_EQ(c.first->state.load(), NodeHashes::READY);
        EXPECT_EQ(c.first->h[1], c.second);
      }
      ASSERT_NO_THROW(check_together({&t, snapshot.get()}));
    }
  }
}

// ---- the checker fires -------------------------------------------------------------------------

TEST(SlotTreeCheck, AcceptsValidTreesAndCaps) {
  Pages pages(150412);
  for (std::uint64_t page_count : {0ull, 1ull, 64ull, 65ull, 4097ull}) {
    Tree t(page_count);
    for (std::uint64_t i = 0; i < page_count; i += 17) t.set(i, pages.any());
    EXPECT_NO_THROW(t.check());
    expect_roots(pages, t);
    EXPECT_NO_THROW(t.check());
  }
  DataCap cap = DataCap::zeroed(5000 * PAGE_SIZE);
  cap.write(3 * PAGE_SIZE + 5, Bytes(9000, 1));
  cap.put_page(4000 * PAGE_SIZE, Bytes(10, 2));
  const DataCap copy = cap;
  cap.write(4 * PAGE_SIZE, Bytes(3, 3));
  EXPECT_NO_THROW(check_cap_invariants(cap));
  EXPECT_NO_THROW(check_cap_invariants(copy));
  const DataCap flushed = cap.flush();
  (void)flushed.hash_tree_root(Digest::blake2b256);
  EXPECT_NO_THROW(check_cap_invariants(flushed));
  EXPECT_NO_THROW(check_cap_invariants(cap));
  EXPECT_NO_THROW(check_cap_invariants(DataCap()));
}

TEST(SlotTreeCheck, ShapeFires) {
  Pages pages(150413);
  Tree t(5000);
  t.set(4100, pages.loaded());
  EXPECT_EQ(rule_of([&] { check_tree_invariants(t.root, t.levels + 1, t.page_count); }),
            TreeRule::shape);
  EXPECT_EQ(rule_of([&] { check_tree_invariants(t.root, t.levels, 300000); }), TreeRule::shape);
  TreeNode* leaf = t.node_at(4100, 0);
  leaf->level = 1;
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::shape);
  leaf->level = 0;
  TreeNode* mid = t.node_at(4100, 1);
  mid->level = 2;
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::shape);
  mid->level = 1;
  EXPECT_NO_THROW(t.check());
}

TEST(SlotTreeCheck, BoundsFires) {
  Pages pages(150414);
  Tree t(100);  // two levels: the root covers 4096 pages
  t.set(99, pages.loaded());
  EXPECT_NO_THROW(t.check());
  tree_set(t.root, t.levels, 120, pages.loaded());  // a leaf slot past the end
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::bounds);
  tree_set(t.root, t.levels, 120, nullptr);
  tree_set(t.root, t.levels, 200, pages.loaded());  // a whole leaf past the end
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::bounds);
  tree_set(t.root, t.levels, 200, nullptr);
  EXPECT_NO_THROW(t.check());
}

TEST(SlotTreeCheck, RefcountFires) {
  Pages pages(150415);
  Tree a(5000);
  for (std::uint64_t i = 0; i < 5000; i += 300) a.set(i, pages.loaded());
  PageNode* page = a.model[600];
  page->refs.fetch_sub(2);  // the tree's and `keep`'s references gone: 0
  EXPECT_EQ(rule_of([&] { a.check(); }), TreeRule::refcount);
  page->refs.fetch_add(2);
  const Tree b(a);  // the root is held twice now
  a.root->refs.fetch_sub(1);
  EXPECT_NO_THROW(a.check());  // one handle alone cannot tell
  EXPECT_EQ(rule_of([&] { check_together({&a, &b}); }), TreeRule::refcount);
  a.root->refs.fetch_add(1);
  EXPECT_NO_THROW(check_together({&a, &b}));
}

TEST(SlotTreeCheck, OriginFires) {
  Pages pages(150416);
  Tree a(4096);
  for (std::uint64_t i = 0; i < 64; ++i) a.set(i, pages.loaded());
  Tree b(a);
  b.set(3, pages.loaded());
  TreeNode* leaf = b.node_at(0, 0);
  TreeNode* origin = leaf->origin;
  ASSERT_EQ(origin, a.node_at(0, 0));
  ASSERT_NO_THROW(b.check());

  // A borrowed slot that is not the origin's.
  void* borrowed = leaf->child[5];
  leaf->child[5] = leaf->child[6];
  EXPECT_EQ(rule_of([&] { b.check(); }), TreeRule::origin);
  leaf->child[5] = borrowed;
  // Every slot owned but the origin kept.
  const std::uint64_t owned = leaf->owned;
  leaf->owned = ALL;
  EXPECT_EQ(rule_of([&] { b.check(); }), TreeRule::origin);
  leaf->owned = owned;
  // An origin that is itself a copy.
  origin->origin = b.root;
  EXPECT_EQ(rule_of([&] { b.check(); }), TreeRule::origin);
  origin->origin = nullptr;
  // An owned bit over a borrowed slot (no reference of its own behind it): the page is then
  // counted for the copy and for the origin, one more than it has.
  a.model[5]->refs.fetch_sub(1);  // drop `keep`'s reference for the count to be exact
  leaf->owned |= std::uint64_t{1} << 5;
  EXPECT_EQ(rule_of([&] { b.check(); }), TreeRule::refcount);
  leaf->owned = owned;
  a.model[5]->refs.fetch_add(1);
  EXPECT_NO_THROW(check_together({&a, &b}));
}

TEST(SlotTreeCheck, NodeHashFires) {
  Pages pages(150417);
  Tree t(5000);
  for (std::uint64_t i = 0; i < 5000; i += 61) t.set(i, pages.loaded());
  expect_roots(pages, t);
  NodeHashes* root_h = hashes(t.root, Digest::sha256);
  TreeNode* leaf = t.node_at(4880, 0);
  NodeHashes* leaf_h = hashes(leaf, Digest::blake2b256);

  // A wrong cached hash in a READY node.
  root_h->h[1][7] ^= 1;
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::node_hash);
  root_h->h[1][7] ^= 1;
  leaf_h->h[40][0] ^= 0x80;
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::node_hash);
  leaf_h->h[40][0] ^= 0x80;
  // READY with a dirty bit; a claim left WRITING.
  leaf_h->dirty.store(1);
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::node_hash);
  leaf_h->dirty.store(0);
  leaf_h->state.store(NodeHashes::WRITING);
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::node_hash);
  // A child that is not READY under its parent's clean bit.
  leaf_h->state.store(NodeHashes::EMPTY);
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::node_hash);
  leaf_h->state.store(NodeHashes::READY);
  EXPECT_NO_THROW(t.check());

  // A clear dirty bit over a changed child: the stale pair above it is caught.
  t.set(4880 + 2, pages.loaded());
  EXPECT_NO_THROW(t.check());
  leaf = t.node_at(4880, 0);
  leaf_h = hashes(leaf, Digest::sha256);
  const std::uint64_t dirty = leaf_h->dirty.load();
  ASSERT_NE(dirty, 0u);
  leaf_h->dirty.store(0);
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::node_hash);
  leaf_h->dirty.store(dirty);
  // And on a node above (its clean bit over a leaf that is not READY).
  NodeHashes* mid_h = hashes(t.node_at(4880, 1), Digest::sha256);
  const std::uint64_t mid_dirty = mid_h->dirty.load();
  mid_h->dirty.store(0);
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::node_hash);
  mid_h->dirty.store(mid_dirty);
  EXPECT_NO_THROW(t.check());
  expect_roots(pages, t);
}

TEST(SlotTreeCheck, PageHashFires) {
  Pages pages(150418);
  Tree t(100);
  PageNode* loaded = pages.loaded();
  PageNode* missing = pages.missing();
  t.set(1, loaded);
  t.set(2, missing);
  expect_roots(pages, t);
  Hash32 sha;
  ASSERT_TRUE(loaded->cached_root(Digest::sha256, sha));
  Hash32 wrong = sha;
  wrong[0] ^= 1;
  loaded->sha256_root.set(wrong);
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::page_hash);
  loaded->sha256_root.set(sha);
  Hash32* blake = loaded->blake2b_root.load();
  ASSERT_NE(blake, nullptr);
  (*blake)[31] ^= 4;
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::page_hash);
  (*blake)[31] ^= 4;
  const Hash32 hash = missing->missing_hash();
  missing->sha256_root.reset();
  EXPECT_EQ(rule_of([&] { t.check(); }), TreeRule::page_hash);
  missing->sha256_root.set(hash);
  EXPECT_NO_THROW(t.check());
}

TEST(SlotTreeCheck, OverlayFires) {
  DataCap cap = DataCap::zeroed(5000 * PAGE_SIZE);
  cap.write(10, Bytes(5, 1));
  ASSERT_NO_THROW(check_cap_invariants(cap));
  ++CapAccess::overlay_count(cap);
  EXPECT_EQ(rule_of([&] { check_cap_invariants(cap); }), TreeRule::overlay);
  --CapAccess::overlay_count(cap);
  // What a write leaves when its page allocation fails after the overlay path was made: a
  // node with no children.
  DataCap clean = DataCap::zeroed(5000 * PAGE_SIZE);
  const unsigned levels = clean.backing().levels();
  (void)tree_link_for_write(CapAccess::overlay(clean), levels, 4500);
  EXPECT_EQ(rule_of([&] { check_cap_invariants(clean); }), TreeRule::overlay);
  tree_release(CapAccess::overlay(clean));
  CapAccess::overlay(clean) = nullptr;
  EXPECT_NO_THROW(check_cap_invariants(clean));
  // A backing checked along with the overlay: a page past the end of either is caught.
  tree_set(SlabAccess::root(CapAccess::backing(cap)), levels, 5000, PageNode::copy_of(nullptr, 0));
  EXPECT_EQ(rule_of([&] { check_cap_invariants(cap); }), TreeRule::bounds);
  tree_set(SlabAccess::root(CapAccess::backing(cap)), levels, 5000, nullptr);
  EXPECT_NO_THROW(check_cap_invariants(cap));
}

}  // namespace
}  // namespace datacap::detail
