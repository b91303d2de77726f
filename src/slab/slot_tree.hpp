// Internal: the persistent 64-way radix tree that maps page index → page node, used for both
// the backing (PageSlab) and the overlay of a DataCap.
//
// Invariants:
//  - A node reachable from more than one owner (refs > 1) is never written; writers make the
//    path unique first (copying shared nodes, which retains their children).
//  - Every node on the path of a write is unique after the write and its cached subtree roots
//    are reset, so a cached root is always the root of the node's current children.
//  - A null link means "all Empty" and costs nothing. A node whose children are all null is
//    removed when a slot is cleared through tree_set; tree_set_subtree may leave one (it is
//    still correct: its root is the zero subtree's).
//  - A node at level l covers 64^(l+1) pages. Per digest it may hold NodeHashes: the 63
//    internal hashes of the binary merkle tree over its 64 children (a heap: h[1] is the root of
//    the full subtree, height 6(l+1)) and a bitmask of the children changed since they were last
//    computed. A write marks the changed child's bit on every node of its path, so a root
//    re-hashes only the 6 entries above each changed child in each node — O(k · log n) hashes
//    for k changed pages. The cap's pages root is the heap entry of the root node that covers
//    the cap's actual depth.
//  - Writers reach a child slot only after making the node hold its own reference to it
//    (own_slot), so a borrowed child (see TreeNode::origin) is never released by the borrower.
//  - NodeHashes are claimed before they are written (EMPTY → WRITING → READY); a READY node is
//    never written again while shared, so any thread may read it. Threads that find a node
//    claimed by another wait for it only after publishing their own claims: no deadlock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/block_pool.hpp"
#include "datacap/hash.hpp"
#include "datacap/slab.hpp"
#include "page/page_node.hpp"

namespace datacap::detail {

inline constexpr unsigned FANOUT_LOG2 = 6;
inline constexpr std::size_t FANOUT = std::size_t{1} << FANOUT_LOG2;
inline constexpr unsigned MAX_LEVELS = 6;  // 64^6 = 2^36 ≥ 2^32 pages

// The cached merkle tree inside one node, for one digest.
struct NodeHashes {
  DATACAP_POOLED(NodeHashes)
  static constexpr std::uint8_t EMPTY = 0, WRITING = 1, READY = 2;
  std::atomic<std::uint8_t> state{EMPTY};
  std::atomic<std::uint64_t> dirty{~std::uint64_t{0}};  // bit j: child j changed
  Hash32 h[FANOUT];  // heap; h[0] unused; h[i] = hash(h[2i], h[2i+1]); children below h[32..63]
};

// Something a later component caches on a tree node for as long as the node's content stays
// as it is (a guest window's layout of the backing the node roots). Deleted with the node, and
// dropped when the node is changed in place (a unique node on a write path).
struct NodeAttachment {
  virtual ~NodeAttachment() = default;
};

struct TreeNode {
  DATACAP_POOLED(TreeNode)
  explicit TreeNode(unsigned lvl) noexcept : level(static_cast<std::uint8_t>(lvl)) {}
  TreeNode(const TreeNode&) = delete;
  TreeNode& operator=(const TreeNode&) = delete;

  std::atomic<std::uint32_t> refs{1};
  std::uint8_t level;                                  // 0: children are PageNode*
  std::atomic<NodeHashes*> hashes[DIGEST_COUNT] = {};  // allocated on first root
  // Copy-on-write without touching the children: a path copy of a shared node borrows that
  // node's children, kept alive by one reference on `origin`, and holds references of its own
  // only for the slots in `owned` (the ones it has written since). With origin == nullptr the
  // node owns every non-null child. An origin is never itself a copy (copies of copies share
  // the first origin), so a node keeps at most one other node's children alive. An origin is
  // reachable only through such references once its last tree holder is gone, so it is never
  // written again.
  TreeNode* origin = nullptr;
  std::uint64_t owned = 0;
  void* child[FANOUT] = {};  // null: all Empty
  // Set once by whoever computes it first (compare-exchange from null); see NodeAttachment.
  std::atomic<NodeAttachment*> attachment{nullptr};

  void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }
  [[nodiscard]] bool unique() const noexcept { return refs.load(std::memory_order_acquire) == 1; }
  // REQUIRES: unique() (the node is about to change in place).
  void drop_attachment() noexcept {
    if (attachment.load(std::memory_order_relaxed) != nullptr)
      delete attachment.exchange(nullptr, std::memory_order_relaxed);
  }

 private:
  void destroy() noexcept;
};

// Radix levels for a tree of `page_count` pages: 0 for no pages, else max(1, ceil(depth/6)).
unsigned tree_levels(std::uint64_t page_count) noexcept;

// The page node at page_index, or null (Empty). Borrowed: valid while the tree is unchanged.
PageNode* tree_get(const TreeNode* root, unsigned levels, std::uint64_t page_index) noexcept;

// The page node at page_index in `overlay` if it has one, else in `backing` (null: Empty). The
// two trees (same shape) are walked in lockstep, so their cache misses overlap rather than
// follow each other.
PageNode* tree_get_either(const TreeNode* overlay, const TreeNode* backing, unsigned levels,
                          std::uint64_t page_index) noexcept;

// The leaf link for page_index after making every node on its path unique (creating missing
// nodes). The caller may replace the link's value (releasing the old node, adopting the new).
// If an allocation fails, nodes made so far stay (content-equal; new ones empty): a caller that
// gives up calls tree_prune_path.
void*& tree_link_for_write(TreeNode*& root, unsigned levels, std::uint64_t page_index);

// Removes the nodes on page_index's path that hold nothing (bottom up, while each is all-null,
// unique and held by its parent itself): what an interrupted write leaves. The overlay must
// never keep a node with no page beneath it (tree_merge relies on that). O(levels · 64).
void tree_prune_path(TreeNode*& root, unsigned levels, std::uint64_t page_index) noexcept;

// The leaf (level 0) node holding page_index, unique, created if needed, with page_index's slot
// marked dirty on its path: for builders that fill a leaf's 64 slots directly. REQUIRES: no
// hashes computed for the leaf yet (a tree being built): only that one slot is marked dirty.
TreeNode* tree_leaf_for_write(TreeNode*& root, unsigned levels, std::uint64_t page_index);

// Writes every page of `overlay` (a tree of the same shape) into `root` in one walk: each node
// on the way is path-copied once, not once per page. adopt(page_index, overlay_page) returns
// the node to store there, with a reference the tree takes (null: Empty, and nodes left empty
// are removed).
void tree_merge(TreeNode*& root, unsigned levels, const TreeNode* overlay,
                const std::function<PageNode*(std::uint64_t, PageNode*)>& adopt);

// tree_merge, then releases the overlay (set to null), which the caller gives up: overlay nodes
// held by nobody else are freed during the walk, each right after it is merged. If the merge
// throws, `root` is a valid tree (some pages merged) and the overlay is released all the same.
void tree_merge_consume(TreeNode*& root, unsigned levels, TreeNode*& overlay,
                        const std::function<PageNode*(std::uint64_t, PageNode*)>& adopt);

// Replaces the (non-null) page at page_index with `adopted`, whose root under `kept` is the
// same: the cached hashes under `kept` stay valid along the path (other digests' are reset).
// Path-copies shared nodes, so no other tree sees the change. REQUIRES: a page is stored there.
// If a path copy fails to allocate, `adopted` is released and the content is unchanged.
void tree_replace_same_root(TreeNode*& root, unsigned levels, std::uint64_t page_index,
                            PageNode* adopted, Digest kept);

// Sets page_index to `adopted` (null: Empty, removing emptied nodes). Releases the old page.
// If a path copy fails to allocate, `adopted` is released and the content is unchanged.
void tree_set(TreeNode*& root, unsigned levels, std::uint64_t page_index, PageNode* adopted);

// The node at `level` covering page_index (its subtree starts at page_index rounded down to
// 64^(level+1)), or null when that subtree is all Empty. REQUIRES level < levels.
const TreeNode* tree_node_at(const TreeNode* root, unsigned levels, std::uint64_t page_index,
                             unsigned level) noexcept;

// Replaces the subtree at `level` whose first page is first_page (a multiple of 64^(level+1))
// with `adopted` (the caller's reference moves in; null clears it). Path-copies shared nodes
// above it and marks them dirty. REQUIRES level < levels; at level == levels - 1 the root itself
// is replaced, so the subtree must cover the whole tree.
void tree_set_subtree(TreeNode*& root, unsigned levels, std::uint64_t first_page, unsigned level,
                      TreeNode* adopted);

// Calls fn(page_index, node) for non-null pages with lo <= page_index < hi, ascending.
void tree_for_each(const TreeNode* root, unsigned levels, std::uint64_t lo, std::uint64_t hi,
                   const std::function<void(std::uint64_t, PageNode*)>& fn);

// Appends to `out` the indices of the Missing pages with lo <= page_index < hi, ascending.
// O(nodes) like tree_for_each, but without a call per page: the page objects of each leaf are
// prefetched together, so a 1 GiB cap's 262,144 pages cost a few hundred microseconds.
void tree_missing(const TreeNode* root, unsigned levels, std::uint64_t lo, std::uint64_t hi,
                  std::vector<std::uint64_t>& out);

// Calls fn(page_index, node) for every page either tree (same shape) holds, ascending: the
// overlay's node where it has one, else the backing's. One walk of both trees, O(nodes).
void tree_for_each_either(const TreeNode* overlay, const TreeNode* backing, unsigned levels,
                          const std::function<void(std::uint64_t, PageNode*)>& fn);

// Computes and caches the roots of `pages` (Loaded, roots not cached), batched and on every
// core when there are many.
void hash_page_roots(const std::vector<PageNode*>& pages, Digest digest);

// True when the tree's root node has its hashes under `digest` computed (so the pages root is
// known in O(1)); an empty tree counts as computed.
bool tree_root_cached(const TreeNode* root, Digest digest) noexcept;

// The root of the subtree of height `height` (0: one page) whose pages are
// [index·2^height, (index+1)·2^height), from cached hashes (computed first if needed).
// REQUIRES height ≤ 6·levels.
Hash32 tree_subtree_root(const TreeNode* root, unsigned levels, unsigned height,
                         std::uint64_t index, Digest digest);

// Appends to `out`, ascending, every page index below `limit` whose slot root differs between
// tree a (levels_a) and tree b (levels_b), pages past a tree's reach counting as Empty.
// Descends only into subtrees whose cached roots differ: O(d · log n) for d differing pages
// once both trees' hashes are computed.
void tree_diff(const TreeNode* a, unsigned levels_a, const TreeNode* b, unsigned levels_b,
               std::uint64_t limit, Digest digest, std::vector<std::uint64_t>& out);

// Bytes of bookkeeping in the tree: nodes, node hash arrays and page objects (not page bytes),
// at the sizes the block pools allocate; a shared node is counted at each place it appears.
std::uint64_t tree_metadata_bytes(const TreeNode* root) noexcept;

// Bytes reachable only through `root` (nodes with one reference, all the way down).
std::uint64_t tree_exclusive_bytes(const TreeNode* root) noexcept;

// Non-null pages. O(nodes).
std::uint64_t tree_count(const TreeNode* root) noexcept;

// The pages root (SPEC §4) of a tree of page_count pages.
Hash32 tree_pages_root(const TreeNode* root, unsigned levels, std::uint64_t page_count,
                       Digest digest);

// For builders inside the library (archives) that fill a slab's tree directly.
struct SlabAccess {
  static TreeNode*& root(PageSlab& slab) noexcept { return slab.root_; }
  static const TreeNode* root(const PageSlab& slab) noexcept { return slab.root_; }
};

inline void tree_retain(TreeNode* root) noexcept {
  if (root) root->retain();
}
inline void tree_release(TreeNode* root) noexcept {
  if (root) root->release();
}

// A reference of its own to a tree (null: empty), released at the end of its scope: the copy
// a multi-page change is built on before it is committed.
struct TreeHolder {
  explicit TreeHolder(TreeNode* tree) noexcept : root(tree) { tree_retain(root); }
  TreeHolder(const TreeHolder&) = delete;
  TreeHolder& operator=(const TreeHolder&) = delete;
  ~TreeHolder() { tree_release(root); }
  TreeNode* root;
};

}  // namespace datacap::detail
