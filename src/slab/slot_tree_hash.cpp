// The incremental, batched root of a slot tree (see the invariants in slab/slot_tree.hpp).
//
// A root computation runs in three phases:
//   A. collect: walk down from the root into nodes whose hashes are not READY, following only
//      their dirty children; note the pages whose roots are not cached;
//   B. page roots: hash those pages in batches of 16 (page_roots), on several cores when many;
//   C. nodes: bottom-up, one tree level at a time; inside a level, one heap level at a time
//      across every node of that tree level, so each hash_pairs call carries the pairs of all
//      of them and the SIMD lanes stay full.
// B and C run for the leaves (level 0) during A, in chunks of at least 64 leaves (see collect):
// the leaves are then still in the cache, which they would not be after a walk over thousands.
// A pair whose two children are zero subtrees gets zero[h+1] without hashing.
#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "common/thread_pool.hpp"
#include "hash/digest.hpp"
#include "slab/slot_tree.hpp"
#include "tree/merkle.hpp"

namespace datacap::detail {
namespace {

constexpr std::size_t PAGE_TASK = 64;     // pages per parallel task
constexpr std::size_t NODE_TASK = 32;     // nodes per parallel task
constexpr std::size_t LEAF_CHUNK = 64;    // leaves settled together (batched, cache-resident)
constexpr std::size_t PAGE_CHUNK = 1024;  // pages hashed together when leaves are settled

NodeHashes* hashes_of(TreeNode* node, Digest digest) {
  auto& slot = node->hashes[static_cast<std::size_t>(digest)];
  NodeHashes* nh = slot.load(std::memory_order_acquire);
  if (nh != nullptr) return nh;
  auto* fresh = new NodeHashes();
  if (slot.compare_exchange_strong(nh, fresh, std::memory_order_acq_rel)) return fresh;
  delete fresh;  // another thread installed one first
  return nh;
}

bool is_ready(const NodeHashes* nh) {
  return nh->state.load(std::memory_order_acquire) == NodeHashes::READY;
}

struct Plan {
  std::vector<TreeNode*> by_level[MAX_LEVELS];
  std::vector<PageNode*> pages;
};

// Notes the dirty pages of a leaf whose roots are not cached.
void collect_leaf(TreeNode* leaf, const NodeHashes* nh, Digest digest, Plan& plan) {
  const std::uint64_t dirty = nh->dirty.load(std::memory_order_relaxed);
  for (std::uint64_t m = dirty; m != 0; m &= m - 1) {
    const std::size_t j = static_cast<std::size_t>(__builtin_ctzll(m));
    auto* page = static_cast<PageNode*>(leaf->child[j]);
    if (page == nullptr) continue;
    Hash32 ignored;
    if (!page->cached_root(digest, ignored)) plan.pages.push_back(page);
  }
}

void settle_leaves(Plan& plan, Digest digest);

void collect(TreeNode* node, Digest digest, Plan& plan) {
  NodeHashes* nh = hashes_of(node, digest);
  if (is_ready(nh)) return;
  plan.by_level[node->level].push_back(node);
  if (node->level == 0) {
    collect_leaf(node, nh, digest, plan);
    // Leaves are settled a chunk at a time, right after this walk has touched them, while
    // their lines are still in the cache (after a walk over all of them they would not be) —
    // once there are enough of them to fill the lanes, and either no pages to hash or enough
    // to keep every core busy.
    if (plan.by_level[0].size() >= LEAF_CHUNK &&
        (plan.pages.empty() || plan.pages.size() >= PAGE_CHUNK)) {
      settle_leaves(plan, digest);
    }
    return;
  }
  const std::uint64_t dirty = nh->dirty.load(std::memory_order_relaxed);
  for (std::uint64_t m = dirty; m != 0; m &= m - 1) {
    auto* child = static_cast<TreeNode*>(node->child[__builtin_ctzll(m)]);
    if (child != nullptr) collect(child, digest, plan);
  }
}

void hash_pages(const std::vector<PageNode*>& pages, Digest digest) {
  auto run = [&](std::size_t begin, std::size_t end) {
    std::vector<const std::uint8_t*> data(end - begin);
    std::vector<Hash32> roots(end - begin);
    for (std::size_t i = begin; i < end; ++i) data[i - begin] = pages[i]->data;
    page_roots(digest, data.data(), data.size(), roots.data());
    for (std::size_t i = begin; i < end; ++i) {
      pages[i]->check_borrowed_root(digest, roots[i - begin]);  // archives verified lazily
      pages[i]->publish_root(digest, roots[i - begin]);
    }
  };
  const std::size_t tasks = (pages.size() + PAGE_TASK - 1) / PAGE_TASK;
  if (tasks <= 1) {
    run(0, pages.size());
    return;
  }
  parallel_for(tasks, [&](std::size_t t) {
    run(t * PAGE_TASK, std::min(pages.size(), (t + 1) * PAGE_TASK));
  });
}

// The value of child j as a leaf of the node's heap.
Hash32 child_value(const TreeNode* node, std::size_t j, Digest digest);

Hash32 subtree_root_of(TreeNode* node, Digest digest);

Hash32 child_value(const TreeNode* node, std::size_t j, Digest digest) {
  void* c = node->child[j];
  if (node->level == 0) return slot_root(static_cast<PageNode*>(c), digest);
  if (c == nullptr) return zero_hash(digest, FANOUT_LOG2 * node->level);
  return subtree_root_of(static_cast<TreeNode*>(c), digest);
}

// Recomputes the dirty heap entries of nodes the caller has claimed (all of one tree level).
void compute_claimed(const std::vector<TreeNode*>& nodes, Digest digest) {
  if (nodes.empty()) return;
  const unsigned leaf_height = FANOUT_LOG2 * nodes[0]->level;
  std::vector<std::uint64_t> masks(nodes.size());
  std::vector<std::uint8_t> batch;
  std::vector<Hash32*> targets;
  // Heap level 5 (entries 32..63, parents of child pairs) up to heap level 0 (entry 1).
  for (unsigned heap_level = FANOUT_LOG2; heap_level-- > 0;) {
    const std::size_t first = std::size_t{1} << heap_level;
    const unsigned child_height = leaf_height + (FANOUT_LOG2 - 1 - heap_level);
    const Hash32& zero_child = zero_hash(digest, child_height);
    const Hash32& zero_parent = zero_hash(digest, child_height + 1);
    batch.clear();
    targets.clear();
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      TreeNode* node = nodes[n];
      NodeHashes* nh =
          node->hashes[static_cast<std::size_t>(digest)].load(std::memory_order_relaxed);
      // Entries of this heap level above something dirty below.
      const std::uint64_t below =
          heap_level + 1 == FANOUT_LOG2 ? nh->dirty.load(std::memory_order_relaxed) : masks[n];
      std::uint64_t mask = 0;
      for (std::uint64_t b = below; b != 0; b &= b - 1)
        mask |= std::uint64_t{1} << (__builtin_ctzll(b) >> 1);
      masks[n] = mask;
      for (std::uint64_t b = mask; b != 0; b &= b - 1) {
        const std::size_t k = static_cast<std::size_t>(__builtin_ctzll(b));
        const std::size_t entry = first + k;
        Hash32 left, right;
        if (heap_level + 1 == FANOUT_LOG2) {
          left = child_value(node, 2 * k, digest);
          right = child_value(node, 2 * k + 1, digest);
        } else {
          left = nh->h[2 * entry];
          right = nh->h[2 * entry + 1];
        }
        if (left == zero_child && right == zero_child) {
          nh->h[entry] = zero_parent;
          continue;
        }
        const std::size_t at = batch.size();
        batch.resize(at + 64);
        std::memcpy(batch.data() + at, left.data(), 32);
        std::memcpy(batch.data() + at + 32, right.data(), 32);
        targets.push_back(&nh->h[entry]);
      }
    }
    hash_pairs(digest, batch.data(), batch.data(), targets.size());
    for (std::size_t i = 0; i < targets.size(); ++i)
      std::memcpy(targets[i]->data(), batch.data() + 32 * i, 32);
  }
}

// Claims what it can of `nodes`, computes and publishes those, then waits for the rest (claimed
// by other threads, which never wait on us while holding a claim).
void compute_level(const std::vector<TreeNode*>& nodes, Digest digest) {
  std::vector<TreeNode*> mine, theirs;
  for (TreeNode* node : nodes) {
    NodeHashes* nh = node->hashes[static_cast<std::size_t>(digest)].load(std::memory_order_acquire);
    std::uint8_t expected = NodeHashes::EMPTY;
    if (nh->state.compare_exchange_strong(expected, NodeHashes::WRITING,
                                          std::memory_order_acquire)) {
      mine.push_back(node);
    } else if (expected == NodeHashes::WRITING) {
      theirs.push_back(node);
    }
  }
  try {
    compute_claimed(mine, digest);
  } catch (...) {
    // Give the claims back so that no thread waits on them; the nodes stay uncomputed.
    for (TreeNode* node : mine) {
      node->hashes[static_cast<std::size_t>(digest)]
          .load(std::memory_order_relaxed)
          ->state.store(NodeHashes::EMPTY, std::memory_order_release);
    }
    throw;
  }
  for (TreeNode* node : mine) {
    NodeHashes* nh = node->hashes[static_cast<std::size_t>(digest)].load(std::memory_order_relaxed);
    nh->dirty.store(0, std::memory_order_relaxed);
    nh->state.store(NodeHashes::READY, std::memory_order_release);
  }
  for (TreeNode* node : theirs) {
    NodeHashes* nh = node->hashes[static_cast<std::size_t>(digest)].load(std::memory_order_relaxed);
    while (!is_ready(nh)) std::this_thread::yield();
  }
}

// Computes the hashes of `nodes` (one tree level), split across cores when there are many.
void compute_nodes(const std::vector<TreeNode*>& nodes, Digest digest) {
  const std::size_t tasks = (nodes.size() + NODE_TASK - 1) / NODE_TASK;
  if (tasks <= 1) {
    compute_level(nodes, digest);
    return;
  }
  parallel_for(tasks, [&](std::size_t t) {
    const auto begin = nodes.begin() + static_cast<std::ptrdiff_t>(t * NODE_TASK);
    const auto end =
        nodes.begin() + static_cast<std::ptrdiff_t>(std::min(nodes.size(), (t + 1) * NODE_TASK));
    compute_level(std::vector<TreeNode*>(begin, end), digest);
  });
}

// Hashes the pages collected so far, then the leaves collected so far; empties both lists.
void settle_leaves(Plan& plan, Digest digest) {
  hash_pages(plan.pages, digest);
  plan.pages.clear();
  compute_nodes(plan.by_level[0], digest);
  plan.by_level[0].clear();
}

void ensure_hashes(TreeNode* root, Digest digest) {
  if (is_ready(hashes_of(root, digest))) return;
  Plan plan;
  collect(root, digest, plan);
  settle_leaves(plan, digest);
  for (unsigned level = 1; level < MAX_LEVELS; ++level) compute_nodes(plan.by_level[level], digest);
}

Hash32 subtree_root_of(TreeNode* node, Digest digest) {
  NodeHashes* nh = hashes_of(node, digest);
  if (!is_ready(nh)) ensure_hashes(node, digest);  // not expected below a computed level
  return nh->h[1];
}

}  // namespace

Hash32 tree_pages_root(const TreeNode* root, unsigned levels, std::uint64_t page_count,
                       Digest digest) {
  const unsigned depth = pages_depth(page_count);
  if (root == nullptr) return zero_hash(digest, depth);
  auto* node = const_cast<TreeNode*>(root);  // only the race-free hash caches are written
  const unsigned top = depth - FANOUT_LOG2 * (levels - 1);
  if (top == 0) return child_value(node, 0, digest);  // a one-page cap: its page is the root
  ensure_hashes(node, digest);
  return node->hashes[static_cast<std::size_t>(digest)]
      .load(std::memory_order_acquire)
      ->h[std::size_t{1} << (FANOUT_LOG2 - top)];
}

void hash_page_roots(const std::vector<PageNode*>& pages, Digest digest) {
  hash_pages(pages, digest);
}

bool tree_root_cached(const TreeNode* root, Digest digest) noexcept {
  if (root == nullptr) return true;
  const NodeHashes* nh =
      root->hashes[static_cast<std::size_t>(digest)].load(std::memory_order_acquire);
  return nh != nullptr && is_ready(nh);
}

Hash32 tree_subtree_root(const TreeNode* root, unsigned levels, unsigned height,
                         std::uint64_t index, Digest digest) {
  const std::uint64_t first = index << height;
  if (height == 0) return slot_root(tree_get(root, levels, first), digest);
  // Heights 6l+1 .. 6l+6 live in the heap of the level-l node covering the subtree.
  const unsigned level = (height - 1) / FANOUT_LOG2;
  const TreeNode* node = tree_node_at(root, levels, first, level);
  if (node == nullptr) return zero_hash(digest, height);
  auto* mutable_node = const_cast<TreeNode*>(node);  // only the race-free caches are written
  NodeHashes* nh = hashes_of(mutable_node, digest);
  if (!is_ready(nh)) ensure_hashes(mutable_node, digest);
  const unsigned above_children = height - FANOUT_LOG2 * level;  // 1..6
  const std::size_t base = FANOUT >> above_children;
  return nh->h[base + ((first >> (FANOUT_LOG2 * level + above_children)) & (base - 1))];
}

namespace {

// One side of a diff at some tree level: a real node (or null: all Empty), or a stand-in for
// the levels above a shorter tree's root, whose only child is the path down to that root.
struct DiffSide {
  const TreeNode* node = nullptr;
  bool above_root = false;  // node is the real root, some levels below the current one
  unsigned root_level = 0;  // with above_root: the real root's level
};

struct DiffContext {
  Digest digest;
  std::uint64_t limit;
  std::vector<std::uint64_t>* out;
};

const NodeHashes* ready_hashes(const TreeNode* node, Digest digest) {
  if (node == nullptr) return nullptr;
  auto* mutable_node = const_cast<TreeNode*>(node);
  NodeHashes* nh = hashes_of(mutable_node, digest);
  if (!is_ready(nh)) ensure_hashes(mutable_node, digest);
  return nh;
}

DiffSide child_side(const DiffSide& side, unsigned level, std::size_t j) {
  if (side.above_root) {
    if (j != 0) return {};
    if (level - 1 == side.root_level) return {side.node, false, 0};
    return side;
  }
  if (side.node == nullptr) return {};
  return {static_cast<const TreeNode*>(side.node->child[j]), false, 0};
}

void diff_nodes(const DiffSide& a, const DiffSide& b, unsigned level, std::uint64_t base,
                const DiffContext& ctx);

// Compares child j of a and b (at `level`) and descends when they differ.
void diff_child(const DiffSide& a, const DiffSide& b, unsigned level, std::uint64_t base,
                std::size_t j, const DiffContext& ctx) {
  const std::uint64_t first = base + (std::uint64_t{j} << (FANOUT_LOG2 * level));
  if (first >= ctx.limit) return;
  if (level == 0) {
    auto* pa =
        a.node == nullptr || a.above_root ? nullptr : static_cast<PageNode*>(a.node->child[j]);
    auto* pb =
        b.node == nullptr || b.above_root ? nullptr : static_cast<PageNode*>(b.node->child[j]);
    if (pa == pb) return;
    if (slot_root(pa, ctx.digest) != slot_root(pb, ctx.digest)) ctx.out->push_back(first);
    return;
  }
  const DiffSide ca = child_side(a, level, j);
  const DiffSide cb = child_side(b, level, j);
  if (!ca.above_root && !cb.above_root) {
    if (ca.node == cb.node) return;  // shared subtree (or both Empty)
    const Hash32& zero = zero_hash(ctx.digest, FANOUT_LOG2 * level);
    const Hash32 ra = ca.node == nullptr ? zero : ready_hashes(ca.node, ctx.digest)->h[1];
    const Hash32 rb = cb.node == nullptr ? zero : ready_hashes(cb.node, ctx.digest)->h[1];
    if (ra == rb) return;
  }
  diff_nodes(ca, cb, level - 1, first, ctx);
}

// Walks the heaps of two real nodes in step, into the children under differing entries.
void diff_heap(const DiffSide& a, const NodeHashes* ha, const DiffSide& b, const NodeHashes* hb,
               unsigned level, std::uint64_t base, std::size_t entry, const DiffContext& ctx) {
  if (entry >= FANOUT) {
    diff_child(a, b, level, base, entry - FANOUT, ctx);
    return;
  }
  const unsigned height = FANOUT_LOG2 * (level + 1) -
                          (31 - static_cast<unsigned>(__builtin_clz(static_cast<unsigned>(entry))));
  const Hash32& zero = zero_hash(ctx.digest, height);
  const Hash32& va = ha == nullptr ? zero : ha->h[entry];
  const Hash32& vb = hb == nullptr ? zero : hb->h[entry];
  if (va == vb) return;
  diff_heap(a, ha, b, hb, level, base, 2 * entry, ctx);
  diff_heap(a, ha, b, hb, level, base, 2 * entry + 1, ctx);
}

void diff_nodes(const DiffSide& a, const DiffSide& b, unsigned level, std::uint64_t base,
                const DiffContext& ctx) {
  if (!a.above_root && !b.above_root) {
    if (a.node == b.node) return;
    diff_heap(a, ready_hashes(a.node, ctx.digest), b, ready_hashes(b.node, ctx.digest), level, base,
              1, ctx);
    return;
  }
  for (std::size_t j = 0; j < FANOUT; ++j) diff_child(a, b, level, base, j, ctx);
}

}  // namespace

void tree_diff(const TreeNode* a, unsigned levels_a, const TreeNode* b, unsigned levels_b,
               std::uint64_t limit, Digest digest, std::vector<std::uint64_t>& out) {
  const unsigned levels = std::max(levels_a, levels_b);
  if (levels == 0) return;
  const DiffContext ctx{digest, limit, &out};
  auto top = [&](const TreeNode* root, unsigned own) {
    if (own == levels || root == nullptr) return DiffSide{root, false, 0};
    return DiffSide{root, true, own - 1};
  };
  diff_nodes(top(a, levels_a), top(b, levels_b), levels - 1, 0, ctx);
}

}  // namespace datacap::detail
