#include "slab/slot_tree.hpp"

#include "tree/merkle.hpp"

namespace datacap::detail {
namespace {

inline std::size_t child_index(std::uint64_t page_index, unsigned level) noexcept {
  return static_cast<std::size_t>(page_index >> (FANOUT_LOG2 * level)) & (FANOUT - 1);
}

// Makes the node behind `link` unique (allocating it at `level` when null) and resets its
// cached roots, since the caller is about to change something below it.
TreeNode* make_unique(void*& link, unsigned level) {
  auto* node = static_cast<TreeNode*>(link);
  if (node == nullptr) {
    node = new TreeNode(level);
    link = node;
    return node;
  }
  if (node->unique()) {
    for (auto& r : node->roots) r.reset();
    return node;
  }
  auto* copy = new TreeNode(level);
  for (std::size_t i = 0; i < FANOUT; ++i) {
    void* c = node->child[i];
    copy->child[i] = c;
    if (c == nullptr) continue;
    if (level == 0) {
      static_cast<PageNode*>(c)->retain();
    } else {
      static_cast<TreeNode*>(c)->retain();
    }
  }
  link = copy;
  node->release();
  return copy;
}

bool all_null(const TreeNode* node) noexcept {
  for (void* c : node->child) {
    if (c != nullptr) return false;
  }
  return true;
}

void for_each_rec(const TreeNode* node, std::uint64_t base, std::uint64_t lo, std::uint64_t hi,
                  const std::function<void(std::uint64_t, PageNode*)>& fn) {
  const unsigned shift = FANOUT_LOG2 * node->level;
  const std::uint64_t span = std::uint64_t{1} << shift;
  for (std::size_t i = 0; i < FANOUT; ++i) {
    void* c = node->child[i];
    if (c == nullptr) continue;
    const std::uint64_t first = base + i * span;
    if (first >= hi) break;
    if (first + span <= lo) continue;
    if (node->level == 0) {
      fn(first, static_cast<PageNode*>(c));
    } else {
      for_each_rec(static_cast<const TreeNode*>(c), first, lo, hi, fn);
    }
  }
}

std::uint64_t count_rec(const TreeNode* node) noexcept {
  std::uint64_t n = 0;
  for (void* c : node->child) {
    if (c == nullptr) continue;
    n += node->level == 0 ? 1 : count_rec(static_cast<const TreeNode*>(c));
  }
  return n;
}

// Leaves of `node` as merkle nodes of height 6·level: page roots, or children's subtree roots.
void child_roots(TreeNode* node, Digest digest, Hash32* out, std::size_t width);

Hash32 subtree_root(TreeNode* node, Digest digest) {
  HashCache& cache = node->roots[static_cast<std::size_t>(digest)];
  Hash32 h;
  if (cache.get(h)) return h;
  Hash32 kids[FANOUT];
  child_roots(node, digest, kids, FANOUT);
  fold_levels(digest, kids, FANOUT, FANOUT_LOG2 * node->level, FANOUT_LOG2);
  cache.publish(kids[0]);
  return kids[0];
}

void child_roots(TreeNode* node, Digest digest, Hash32* out, std::size_t width) {
  if (node->level == 0) {
    for (std::size_t i = 0; i < width; ++i) {
      out[i] = slot_root(static_cast<PageNode*>(node->child[i]), digest);
    }
    return;
  }
  const Hash32& zero = zero_hash(digest, FANOUT_LOG2 * node->level);
  for (std::size_t i = 0; i < width; ++i) {
    auto* c = static_cast<TreeNode*>(node->child[i]);
    out[i] = c == nullptr ? zero : subtree_root(c, digest);
  }
}

}  // namespace

void TreeNode::destroy() noexcept {
  for (void* c : child) {
    if (c == nullptr) continue;
    if (level == 0) {
      static_cast<PageNode*>(c)->release();
    } else {
      static_cast<TreeNode*>(c)->release();
    }
  }
  delete this;
}

unsigned tree_levels(std::uint64_t page_count) noexcept {
  if (page_count == 0) return 0;
  const unsigned depth = pages_depth(page_count);
  return depth == 0 ? 1 : (depth + FANOUT_LOG2 - 1) / FANOUT_LOG2;
}

PageNode* tree_get(const TreeNode* root, unsigned levels, std::uint64_t page_index) noexcept {
  const TreeNode* node = root;
  for (unsigned level = levels; level-- > 1;) {
    if (node == nullptr) return nullptr;
    node = static_cast<const TreeNode*>(node->child[child_index(page_index, level)]);
  }
  return node == nullptr ? nullptr : static_cast<PageNode*>(node->child[page_index & (FANOUT - 1)]);
}

void*& tree_link_for_write(TreeNode*& root, unsigned levels, std::uint64_t page_index) {
  void* root_link = root;
  TreeNode* node = make_unique(root_link, levels - 1);
  root = node;
  for (unsigned level = levels - 1; level > 0; --level) {
    node = make_unique(node->child[child_index(page_index, level)], level - 1);
  }
  return node->child[page_index & (FANOUT - 1)];
}

void tree_set(TreeNode*& root, unsigned levels, std::uint64_t page_index, PageNode* adopted) {
  if (adopted != nullptr) {
    void*& link = tree_link_for_write(root, levels, page_index);
    auto* old = static_cast<PageNode*>(link);
    link = adopted;
    if (old) old->release();
    return;
  }
  if (tree_get(root, levels, page_index) == nullptr) return;
  // Clear the slot on a unique path, then drop nodes that became all-null, bottom up.
  TreeNode* path[MAX_LEVELS];
  void* root_link = root;
  path[levels - 1] = make_unique(root_link, levels - 1);
  root = path[levels - 1];
  for (unsigned level = levels - 1; level > 0; --level) {
    path[level - 1] = make_unique(path[level]->child[child_index(page_index, level)], level - 1);
  }
  void*& leaf_link = path[0]->child[page_index & (FANOUT - 1)];
  static_cast<PageNode*>(leaf_link)->release();
  leaf_link = nullptr;
  for (unsigned level = 0; level < levels; ++level) {
    if (!all_null(path[level])) return;
    path[level]->release();  // unique: frees it
    if (level + 1 < levels) {
      path[level + 1]->child[child_index(page_index, level + 1)] = nullptr;
    } else {
      root = nullptr;
    }
  }
}

void tree_for_each(const TreeNode* root, unsigned levels, std::uint64_t lo, std::uint64_t hi,
                   const std::function<void(std::uint64_t, PageNode*)>& fn) {
  if (root == nullptr || lo >= hi || levels == 0) return;
  for_each_rec(root, 0, lo, hi, fn);
}

std::uint64_t tree_count(const TreeNode* root, unsigned levels) noexcept {
  (void)levels;
  return root == nullptr ? 0 : count_rec(root);
}

Hash32 tree_pages_root(const TreeNode* root, unsigned levels, std::uint64_t page_count,
                       Digest digest) {
  const unsigned depth = pages_depth(page_count);
  if (root == nullptr) return zero_hash(digest, depth);
  auto* node = const_cast<TreeNode*>(root);  // only the race-free caches are written
  const unsigned top = depth - FANOUT_LOG2 * (levels - 1);
  if (top == FANOUT_LOG2) return subtree_root(node, digest);
  const std::size_t width = std::size_t{1} << top;
  Hash32 kids[FANOUT];
  child_roots(node, digest, kids, width);
  fold_levels(digest, kids, width, FANOUT_LOG2 * node->level, top);
  return kids[0];
}

}  // namespace datacap::detail
