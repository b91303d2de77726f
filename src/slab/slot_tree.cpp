#include "slab/slot_tree.hpp"

#include <cstddef>
#include <cstring>
#include <utility>

#include "tree/merkle.hpp"

namespace datacap::detail {
namespace {

inline std::size_t child_index(std::uint64_t page_index, unsigned level) noexcept {
  return static_cast<std::size_t>(page_index >> (FANOUT_LOG2 * level)) & (FANOUT - 1);
}

constexpr int KEEP_NONE = -1;

inline void retain_child(void* c, unsigned level) noexcept {
  if (c == nullptr) return;
  if (level == 0) {
    static_cast<PageNode*>(c)->retain();
  } else {
    static_cast<TreeNode*>(c)->retain();
  }
}

inline void release_child(void* c, unsigned level) noexcept {
  if (c == nullptr) return;
  if (level == 0) {
    static_cast<PageNode*>(c)->release();
  } else {
    static_cast<TreeNode*>(c)->release();
  }
}

// Gives up the origin once the node holds its own reference to every slot.
inline void drop_origin_if_all_owned(TreeNode* node) noexcept {
  if (node->owned != ~std::uint64_t{0}) return;
  TreeNode* origin = node->origin;
  node->origin = nullptr;
  origin->release();
}

// Makes the (unique) node hold its own reference to child j, so that the slot may be written.
inline void own_slot(TreeNode* node, std::size_t j) noexcept {
  if (node->origin == nullptr) return;
  const std::uint64_t bit = std::uint64_t{1} << j;
  if ((node->owned & bit) != 0) return;
  retain_child(node->child[j], node->level);
  node->owned |= bit;
  drop_origin_if_all_owned(node);
}

// Makes the (unique) node own every child (for builders that fill slots directly).
void own_all(TreeNode* node) noexcept {
  if (node->origin == nullptr) return;
  for (std::size_t j = 0; j < FANOUT; ++j) {
    if ((node->owned >> j & 1) == 0) retain_child(node->child[j], node->level);
  }
  node->owned = ~std::uint64_t{0};
  drop_origin_if_all_owned(node);
}

// Makes the node behind `link` unique (allocating it at `level` when null) and marks child
// `changed` dirty in its hash caches, since the caller is about to change that child. The
// hashes of digest index `keep` (if any) are left valid: the caller promises the child's root
// under that digest does not change.
TreeNode* make_unique(void*& link, unsigned level, std::size_t changed, int keep = KEEP_NONE) {
  const std::uint64_t bit = std::uint64_t{1} << changed;
  auto* node = static_cast<TreeNode*>(link);
  if (node == nullptr) {
    node = new TreeNode(level);
    link = node;
    return node;
  }
  if (node->unique()) {
    node->drop_attachment();
    for (std::size_t d = 0; d < DIGEST_COUNT; ++d) {
      NodeHashes* nh = node->hashes[d].load(std::memory_order_relaxed);
      if (nh == nullptr || static_cast<int>(d) == keep) continue;
      nh->dirty.fetch_or(bit, std::memory_order_relaxed);
      nh->state.store(NodeHashes::EMPTY, std::memory_order_relaxed);
    }
    return node;
  }
  auto* copy = new TreeNode(level);
  // Keep the source's hashes when they are complete (READY is final while the node is shared);
  // a copy of anything else would race with a thread computing it, so the copy starts over.
  try {
    for (std::size_t d = 0; d < DIGEST_COUNT; ++d) {
      NodeHashes* nh = node->hashes[d].load(std::memory_order_acquire);
      if (nh == nullptr || nh->state.load(std::memory_order_acquire) != NodeHashes::READY) continue;
      auto* mine =
          new NodeHashes;  // default-initialized: h is about to be copied over, not zeroed first
      std::memcpy(mine->h, nh->h, sizeof mine->h);
      if (static_cast<int>(d) == keep) {  // the child's root is unchanged: still complete
        mine->dirty.store(0, std::memory_order_relaxed);
        mine->state.store(NodeHashes::READY, std::memory_order_relaxed);
      } else {
        mine->dirty.store(bit, std::memory_order_relaxed);
      }
      copy->hashes[d].store(mine, std::memory_order_relaxed);
    }
  } catch (...) {
    copy->release();
    throw;
  }
  // The copy borrows the children (one reference on their origin) instead of taking 64
  // references on scattered objects; it takes its own only for the slots the source owned
  // beyond its origin, and for those it writes later (own_slot).
  TreeNode* origin = node->origin != nullptr ? node->origin : node;
  origin->retain();
  copy->origin = origin;
  copy->owned = node->origin != nullptr ? node->owned : 0;
  std::memcpy(copy->child, node->child, sizeof copy->child);
  for (std::uint64_t m = copy->owned; m != 0; m &= m - 1) {
    retain_child(copy->child[__builtin_ctzll(m)], level);
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

void missing_rec(const TreeNode* node, std::uint64_t base, std::uint64_t lo, std::uint64_t hi,
                 std::vector<std::uint64_t>& out) {
  const unsigned shift = FANOUT_LOG2 * node->level;
  const std::uint64_t span = std::uint64_t{1} << shift;
  if (node->level == 0) {
    // Each page object is a cache miss of its own: ask for all of the leaf's at once.
    for (void* c : node->child) {
      if (c != nullptr) __builtin_prefetch(&static_cast<const PageNode*>(c)->data);
    }
    const std::uint64_t from = lo > base ? lo - base : 0;
    const std::uint64_t to = std::min<std::uint64_t>(FANOUT, hi - base);
    for (std::uint64_t i = from; i < to; ++i) {
      const auto* page = static_cast<const PageNode*>(node->child[i]);
      if (page != nullptr && page->is_missing()) out.push_back(base + i);
    }
    return;
  }
  for (std::size_t i = 0; i < FANOUT; ++i) {
    const auto* c = static_cast<const TreeNode*>(node->child[i]);
    if (c == nullptr) continue;
    const std::uint64_t first = base + i * span;
    if (first >= hi) break;
    if (first + span <= lo) continue;
    missing_rec(c, first, lo, hi, out);
  }
}

// for_each_rec over two trees of one shape at once: the first's page where it has one.
void for_each_either_rec(const TreeNode* first_tree, const TreeNode* second_tree, unsigned level,
                         std::uint64_t base,
                         const std::function<void(std::uint64_t, PageNode*)>& fn) {
  const std::uint64_t span = std::uint64_t{1} << (FANOUT_LOG2 * level);
  for (std::size_t i = 0; i < FANOUT; ++i) {
    void* a = first_tree != nullptr ? first_tree->child[i] : nullptr;
    void* b = second_tree != nullptr ? second_tree->child[i] : nullptr;
    if (a == nullptr && b == nullptr) continue;
    if (level == 0) {
      fn(base + i, static_cast<PageNode*>(a != nullptr ? a : b));
    } else {
      for_each_either_rec(static_cast<const TreeNode*>(a), static_cast<const TreeNode*>(b),
                          level - 1, base + i * span, fn);
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

}  // namespace

void TreeNode::destroy() noexcept {
  delete attachment.load(std::memory_order_acquire);
  for (auto& nh : hashes) delete nh.load(std::memory_order_relaxed);
  if (origin != nullptr) {
    for (std::uint64_t m = owned; m != 0; m &= m - 1)
      release_child(child[__builtin_ctzll(m)], level);
    origin->release();
    delete this;
    return;
  }
  for (void* c : child) {  // as in make_unique: overlap the misses before the locked decrements
    if (c != nullptr) __builtin_prefetch(c, 1);
  }
  for (void* c : child) release_child(c, level);
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

PageNode* tree_get_either(const TreeNode* overlay, const TreeNode* backing, unsigned levels,
                          std::uint64_t page_index) noexcept {
  const TreeNode* o = overlay;
  const TreeNode* b = backing;
  for (unsigned level = levels; level-- > 1;) {
    const std::size_t i = child_index(page_index, level);
    o = o == nullptr ? nullptr : static_cast<const TreeNode*>(o->child[i]);
    b = b == nullptr ? nullptr : static_cast<const TreeNode*>(b->child[i]);
  }
  const std::size_t i = page_index & (FANOUT - 1);
  if (o != nullptr && o->child[i] != nullptr) return static_cast<PageNode*>(o->child[i]);
  return b == nullptr ? nullptr : static_cast<PageNode*>(b->child[i]);
}

namespace {

// Makes every node on page_index's path unique (creating missing ones, marking the path dirty
// except in digest `keep`) and returns the leaf; with `path`, path[l] is the node at level l.
// The leaf's slot for page_index is not yet owned by it: see own_slot and put_page.
TreeNode* unique_leaf(TreeNode*& root, unsigned levels, std::uint64_t page_index,
                      int keep = KEEP_NONE, TreeNode** path = nullptr) {
  void* root_link = root;
  TreeNode* node = make_unique(root_link, levels - 1, child_index(page_index, levels - 1), keep);
  root = node;
  if (path != nullptr) path[levels - 1] = node;
  for (unsigned level = levels - 1; level > 0; --level) {
    own_slot(node, child_index(page_index, level));
    node = make_unique(node->child[child_index(page_index, level)], level - 1,
                       child_index(page_index, level - 1), keep);
    if (path != nullptr) path[level - 1] = node;
  }
  return node;
}

// Stores `adopted` (its reference moves in) in slot j of a unique leaf and releases what the
// leaf held there. A borrowed slot's old page belongs to the origin, which keeps it alive: it
// is not touched at all (it is usually cold; retaining it only to release it cost a miss).
inline void put_page(TreeNode* leaf, std::size_t j, PageNode* adopted) noexcept {
  const std::uint64_t bit = std::uint64_t{1} << j;
  auto* old = static_cast<PageNode*>(leaf->child[j]);
  leaf->child[j] = adopted;
  if (leaf->origin != nullptr && (leaf->owned & bit) == 0) {
    leaf->owned |= bit;
    drop_origin_if_all_owned(leaf);
    return;
  }
  if (old != nullptr) old->release();
}

// Stores `adopted` (non-null; its reference moves in) at page_index on a unique path. If a path
// copy fails to allocate, `adopted` is released and the content is unchanged (the copies made
// so far are content-equal).
void set_page(TreeNode*& root, unsigned levels, std::uint64_t page_index, PageNode* adopted,
              int keep) {
  TreeNode* leaf = nullptr;
  try {
    leaf = unique_leaf(root, levels, page_index, keep);
  } catch (...) {
    adopted->release();
    tree_prune_path(root, levels, page_index);
    throw;
  }
  put_page(leaf, page_index & (FANOUT - 1), adopted);
}

}  // namespace

void tree_prune_path(TreeNode*& root, unsigned levels, std::uint64_t page_index) noexcept {
  if (root == nullptr || levels == 0) return;
  TreeNode* path[MAX_LEVELS] = {};
  unsigned level = levels - 1;
  path[level] = root;
  while (level > 0) {
    auto* child = static_cast<TreeNode*>(path[level]->child[child_index(page_index, level)]);
    if (child == nullptr) break;
    path[--level] = child;
  }
  for (; level < levels; ++level) {
    TreeNode* node = path[level];
    if (!all_null(node) || !node->unique()) return;
    if (level + 1 < levels) {
      TreeNode* parent = path[level + 1];
      const std::size_t j = child_index(page_index, level + 1);
      // Only a reference the parent holds itself may go (a borrowed one is the origin's).
      if (!parent->unique() ||
          (parent->origin != nullptr && (parent->owned & (std::uint64_t{1} << j)) == 0))
        return;
      node->release();
      parent->child[j] = nullptr;
    } else {
      node->release();
      root = nullptr;
    }
  }
}

void*& tree_link_for_write(TreeNode*& root, unsigned levels, std::uint64_t page_index) {
  TreeNode* leaf = unique_leaf(root, levels, page_index);
  own_slot(leaf, page_index & (FANOUT - 1));
  return leaf->child[page_index & (FANOUT - 1)];
}

namespace {

// Marks child j of a unique node changed in every digest's cached hashes.
void mark_changed(TreeNode* node, std::size_t j) noexcept {
  node->drop_attachment();
  const std::uint64_t bit = std::uint64_t{1} << j;
  for (auto& slot : node->hashes) {
    NodeHashes* nh = slot.load(std::memory_order_relaxed);
    if (nh == nullptr) continue;
    nh->dirty.fetch_or(bit, std::memory_order_relaxed);
    nh->state.store(NodeHashes::EMPTY, std::memory_order_relaxed);
  }
}

// Starts fetching a node's first lines (counts, hash pointers, origin).
inline void prefetch_node(const TreeNode* node) noexcept {
  if (node != nullptr) __builtin_prefetch(node, 0, 1);
}

// Starts fetching what a path copy of the node reads: its child array and READY hash arrays.
// Reads the node's first line, so that should have been prefetched a while ago.
inline void prefetch_node_body(const TreeNode* node) noexcept {
  if (node == nullptr) return;
  constexpr std::size_t LINE = 64;
  const auto* bytes = reinterpret_cast<const unsigned char*>(node);
  for (std::size_t off = LINE; off < sizeof(TreeNode); off += LINE)
    __builtin_prefetch(bytes + off, 0, 1);
  for (const auto& slot : node->hashes) {
    const NodeHashes* nh = slot.load(std::memory_order_relaxed);
    if (nh == nullptr) continue;
    const auto* h = reinterpret_cast<const unsigned char*>(nh);
    for (std::size_t off = 0; off < sizeof(NodeHashes); off += LINE)
      __builtin_prefetch(h + off, 0, 1);
  }
}

// Merges the overlay node `ov` (at `level`, first page `base`) into the backing node behind
// `link`, which its parent already owns. Returns true when the backing node is left all-null
// (the caller removes it).
//
// With `consume` the caller owns `ov` alone (and the slots it may give up): each overlay child
// node that is likewise ours alone is released as soon as it is merged, while it is still in
// the cache, instead of in a second walk over the whole overlay afterwards.
bool merge_rec(void*& link, unsigned level, TreeNode* ov, std::uint64_t base,
               const std::function<PageNode*(std::uint64_t, PageNode*)>& adopt, bool consume) {
  std::size_t first = 0;
  while (ov->child[first] == nullptr) ++first;  // an overlay node is never all-null
  TreeNode* node = make_unique(link, level, first);
  const std::uint64_t span = std::uint64_t{1} << (FANOUT_LOG2 * level);
  std::uint64_t todo = 0;  // overlay children, in order
  for (std::size_t j = first; j < FANOUT; ++j) {
    if (ov->child[j] != nullptr) todo |= std::uint64_t{1} << j;
  }
  // The backing children about to be path-copied are usually cold, and each copy reads a node
  // and its hash arrays: fetch the node two children ahead and, once it has arrived, its
  // arrays one child ahead, so the misses overlap the work on the current child.
  auto ahead = [&](std::uint64_t rest, unsigned n) -> const TreeNode* {
    for (; rest != 0 && n > 0; --n) rest &= rest - 1;
    return rest == 0 ? nullptr : static_cast<const TreeNode*>(node->child[__builtin_ctzll(rest)]);
  };
  if (level > 0) prefetch_node(ahead(todo, 0));
  for (std::uint64_t rest = todo; rest != 0; rest &= rest - 1) {
    const std::size_t j = static_cast<std::size_t>(__builtin_ctzll(rest));
    void* oc = ov->child[j];
    mark_changed(node, j);
    if (level == 0) {
      put_page(node, j, adopt(base + j, static_cast<PageNode*>(oc)));
      continue;
    }
    prefetch_node(ahead(rest, 2));
    prefetch_node_body(ahead(rest, 1));
    own_slot(node, j);
    auto* ov_child = static_cast<TreeNode*>(oc);
    const bool consume_child =
        consume && (ov->origin == nullptr || (ov->owned >> j & 1) != 0) && ov_child->unique();
    if (merge_rec(node->child[j], level - 1, ov_child, base + j * span, adopt, consume_child)) {
      static_cast<TreeNode*>(node->child[j])->release();  // unique: frees it
      node->child[j] = nullptr;
    }
    if (consume_child) {
      ov->child[j] = nullptr;
      ov_child->release();
    }
  }
  return all_null(node);
}

}  // namespace

void tree_merge(TreeNode*& root, unsigned levels, const TreeNode* overlay,
                const std::function<PageNode*(std::uint64_t, PageNode*)>& adopt) {
  if (overlay == nullptr || levels == 0) return;
  void* root_link = root;
  // Not consumed: merge_rec only reads the overlay when told not to consume it.
  const bool emptied =
      merge_rec(root_link, levels - 1, const_cast<TreeNode*>(overlay), 0, adopt, false);
  root = static_cast<TreeNode*>(root_link);
  if (emptied) {
    root->release();
    root = nullptr;
  }
}

void tree_merge_consume(TreeNode*& root, unsigned levels, TreeNode*& overlay,
                        const std::function<PageNode*(std::uint64_t, PageNode*)>& adopt) {
  TreeNode* ov = std::exchange(overlay, nullptr);
  if (ov == nullptr) return;
  if (levels == 0) {
    ov->release();
    return;
  }
  void* root_link = root;
  bool emptied = false;
  try {
    emptied = merge_rec(root_link, levels - 1, ov, 0, adopt, ov->unique());
  } catch (...) {
    root = static_cast<TreeNode*>(root_link);
    ov->release();
    throw;
  }
  ov->release();
  root = static_cast<TreeNode*>(root_link);
  if (emptied) {
    root->release();
    root = nullptr;
  }
}

void tree_replace_same_root(TreeNode*& root, unsigned levels, std::uint64_t page_index,
                            PageNode* adopted, Digest kept) {
  set_page(root, levels, page_index, adopted, static_cast<int>(kept));
}

TreeNode* tree_leaf_for_write(TreeNode*& root, unsigned levels, std::uint64_t page_index) {
  void*& link = tree_link_for_write(root, levels, page_index);
  // The link is a slot of the leaf's child array: step back to the node that holds it.
  auto* slots =
      reinterpret_cast<std::uint8_t*>(&link) - sizeof(void*) * (page_index & (FANOUT - 1));
  auto* leaf = reinterpret_cast<TreeNode*>(slots - offsetof(TreeNode, child));
  own_all(leaf);  // the builder writes any of its slots
  return leaf;
}

void tree_set(TreeNode*& root, unsigned levels, std::uint64_t page_index, PageNode* adopted) {
  if (adopted != nullptr) {
    set_page(root, levels, page_index, adopted, KEEP_NONE);
    return;
  }
  if (tree_get(root, levels, page_index) == nullptr) return;
  // Clear the slot on a unique path, then drop nodes that became all-null, bottom up.
  TreeNode* path[MAX_LEVELS];
  put_page(unique_leaf(root, levels, page_index, KEEP_NONE, path), page_index & (FANOUT - 1),
           nullptr);
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

const TreeNode* tree_node_at(const TreeNode* root, unsigned levels, std::uint64_t page_index,
                             unsigned level) noexcept {
  const TreeNode* node = root;
  for (unsigned l = levels - 1; node != nullptr && l > level; --l) {
    node = static_cast<const TreeNode*>(node->child[child_index(page_index, l)]);
  }
  return node;
}

void tree_set_subtree(TreeNode*& root, unsigned levels, std::uint64_t first_page, unsigned level,
                      TreeNode* adopted) {
  if (level + 1 == levels) {
    TreeNode* old = root;
    root = adopted;
    if (old) old->release();
    return;
  }
  void* root_link = root;
  TreeNode* node = make_unique(root_link, levels - 1, child_index(first_page, levels - 1));
  root = node;
  for (unsigned l = levels - 1; l > level + 1; --l) {
    own_slot(node, child_index(first_page, l));
    node =
        make_unique(node->child[child_index(first_page, l)], l - 1, child_index(first_page, l - 1));
  }
  own_slot(node, child_index(first_page, level + 1));
  void*& link = node->child[child_index(first_page, level + 1)];
  auto* old = static_cast<TreeNode*>(link);
  link = adopted;
  if (old) old->release();
}

void tree_for_each(const TreeNode* root, unsigned levels, std::uint64_t lo, std::uint64_t hi,
                   const std::function<void(std::uint64_t, PageNode*)>& fn) {
  if (root == nullptr || lo >= hi || levels == 0) return;
  for_each_rec(root, 0, lo, hi, fn);
}

void tree_missing(const TreeNode* root, unsigned levels, std::uint64_t lo, std::uint64_t hi,
                  std::vector<std::uint64_t>& out) {
  if (root == nullptr || lo >= hi || levels == 0) return;
  missing_rec(root, 0, lo, hi, out);
}

void tree_for_each_either(const TreeNode* overlay, const TreeNode* backing, unsigned levels,
                          const std::function<void(std::uint64_t, PageNode*)>& fn) {
  if (levels == 0 || (overlay == nullptr && backing == nullptr)) return;
  for_each_either_rec(overlay, backing, levels - 1, 0, fn);
}

std::uint64_t tree_count(const TreeNode* root) noexcept {
  return root == nullptr ? 0 : count_rec(root);
}

namespace {

constexpr std::size_t pooled(std::size_t size) { return (size + 7) / 8 * 8; }  // BlockPool sizes

// Bytes of the nodes, hash arrays and page objects below `node`; with `exclusive`, only what is
// reachable through singly referenced nodes and pages (then page bytes count too).
std::uint64_t tree_bytes(const TreeNode* node, bool exclusive) noexcept {
  if (node == nullptr || (exclusive && node->refs.load(std::memory_order_relaxed) != 1)) return 0;
  std::uint64_t bytes = pooled(sizeof(TreeNode));
  for (const auto& nh : node->hashes) {
    if (nh.load(std::memory_order_relaxed) != nullptr) bytes += pooled(sizeof(NodeHashes));
  }
  for (std::size_t j = 0; j < FANOUT; ++j) {
    void* c = node->child[j];
    if (c == nullptr) continue;
    if (exclusive && node->origin != nullptr && (node->owned >> j & 1) == 0) continue;  // borrowed
    if (node->level > 0) {
      bytes += tree_bytes(static_cast<const TreeNode*>(c), exclusive);
      continue;
    }
    const auto* page = static_cast<const PageNode*>(c);
    if (!exclusive) {
      bytes += pooled(sizeof(PageNode));
      if (page->blake2b_root.load(std::memory_order_relaxed) != nullptr) bytes += sizeof(Hash32);
    } else if (page->refs.load(std::memory_order_relaxed) == 1) {
      bytes += pooled(sizeof(PageNode)) + (page->writable() ? PAGE_SIZE : 0);
    }
  }
  return bytes;
}

}  // namespace

std::uint64_t tree_metadata_bytes(const TreeNode* root) noexcept { return tree_bytes(root, false); }

std::uint64_t tree_exclusive_bytes(const TreeNode* root) noexcept { return tree_bytes(root, true); }

}  // namespace datacap::detail
