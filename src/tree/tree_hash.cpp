// The incremental, batched root of a slot tree (see the invariants in slab/slot_tree.hpp).
//
// A root computation runs in three phases:
//   A. collect: walk down from the root into nodes whose hashes are not READY, following only
//      their dirty children; note the pages whose roots are not cached;
//   B. page roots: hash those pages in batches of 16 (page_roots), on several cores when many;
//   C. nodes: bottom-up, one tree level at a time; inside a level, one heap level at a time
//      across every node of that tree level, so each hash_pairs call carries the pairs of all
//      of them and the SIMD lanes stay full.
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

constexpr std::size_t PAGE_TASK = 64;  // pages per parallel task
constexpr std::size_t NODE_TASK = 32;  // nodes per parallel task

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

void collect(TreeNode* node, Digest digest, Plan& plan) {
  NodeHashes* nh = hashes_of(node, digest);
  if (is_ready(nh)) return;
  plan.by_level[node->level].push_back(node);
  const std::uint64_t dirty = nh->dirty.load(std::memory_order_relaxed);
  for (std::size_t j = 0; j < FANOUT; ++j) {
    if (((dirty >> j) & 1) == 0 || node->child[j] == nullptr) continue;
    if (node->level == 0) {
      auto* page = static_cast<PageNode*>(node->child[j]);
      Hash32 ignored;
      if (!page->cached_root(digest, ignored)) {
        plan.pages.push_back(page);
      }
    } else {
      collect(static_cast<TreeNode*>(node->child[j]), digest, plan);
    }
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
      NodeHashes* nh = node->hashes[static_cast<std::size_t>(digest)].load(std::memory_order_relaxed);
      // Entries of this heap level above something dirty below.
      const std::uint64_t below = heap_level + 1 == FANOUT_LOG2
                                      ? nh->dirty.load(std::memory_order_relaxed)
                                      : masks[n];
      std::uint64_t mask = 0;
      for (std::uint64_t b = below; b != 0; b &= b - 1) mask |= std::uint64_t{1} << (__builtin_ctzll(b) >> 1);
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
    for (std::size_t i = 0; i < targets.size(); ++i) std::memcpy(targets[i]->data(), batch.data() + 32 * i, 32);
  }
}

// Claims what it can of `nodes`, computes and publishes those, then waits for the rest (claimed
// by other threads, which never wait on us while holding a claim).
void compute_level(const std::vector<TreeNode*>& nodes, Digest digest) {
  std::vector<TreeNode*> mine, theirs;
  for (TreeNode* node : nodes) {
    NodeHashes* nh = node->hashes[static_cast<std::size_t>(digest)].load(std::memory_order_acquire);
    std::uint8_t expected = NodeHashes::EMPTY;
    if (nh->state.compare_exchange_strong(expected, NodeHashes::WRITING, std::memory_order_acquire)) {
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
      node->hashes[static_cast<std::size_t>(digest)].load(std::memory_order_relaxed)->state.store(
          NodeHashes::EMPTY, std::memory_order_release);
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

void ensure_hashes(TreeNode* root, Digest digest) {
  if (is_ready(hashes_of(root, digest))) return;
  Plan plan;
  collect(root, digest, plan);
  hash_pages(plan.pages, digest);
  for (auto& nodes : plan.by_level) {
    const std::size_t tasks = (nodes.size() + NODE_TASK - 1) / NODE_TASK;
    if (tasks <= 1) {
      compute_level(nodes, digest);
      continue;
    }
    parallel_for(tasks, [&](std::size_t t) {
      const auto begin = nodes.begin() + static_cast<std::ptrdiff_t>(t * NODE_TASK);
      const auto end = nodes.begin() + static_cast<std::ptrdiff_t>(std::min(nodes.size(), (t + 1) * NODE_TASK));
      compute_level(std::vector<TreeNode*>(begin, end), digest);
    });
  }
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
  return node->hashes[static_cast<std::size_t>(digest)].load(std::memory_order_acquire)->h[std::size_t{1} << (FANOUT_LOG2 - top)];
}

}  // namespace datacap::detail
