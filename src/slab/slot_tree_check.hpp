// Internal: a full walk of a slot tree (slab/slot_tree.hpp) that checks its invariants, for
// tests and debugging. Nothing in the library calls it on a hot path.
//
// Rules checked, each under the TreeRule named in the error:
//   shape        levels == tree_levels(page_count) ≤ MAX_LEVELS; a null root when levels == 0;
//                the root's level is levels - 1 and each child node's level is its parent's - 1
//                (leaves are level 0, their children pages).
//   bounds       no child covers only pages at or past page_count (those slots are null).
//   refcount     every reachable node and page has refs ≥ 1, and refs ≥ the references the
//                checked trees themselves hold on it: one per owned slot (every non-null slot
//                of a node without origin), one per slot of an origin whose child the walk
//                reached, one per copy on its origin, one per tree handle. So an owned bit over
//                a borrowed slot (no reference taken) shows as one reference too many.
//   origin       an origin is not itself a copy and is at the node's level; a copy that owns
//                every slot has dropped its origin; a slot the copy does not own is exactly the
//                origin's slot there (same pointer, or both null).
//   node_hash    per digest, NodeHashes are EMPTY or READY (WRITING is a claim in progress: the
//                tree must be quiescent); READY has no dirty bits; every heap entry with no
//                dirty child beneath it equals the root recomputed naively from the children
//                (page_root / zero_hash / hash_pair, not the cached code); a child node whose
//                dirty bit is clear in a parent's NodeHashes has NodeHashes of its own under
//                that digest, READY (collect() does not descend under a clean bit, and
//                subtree_root_of "does not expect" to compute there).
//   page_hash    a Loaded page's cached root (either digest) is page_root of its bytes; a
//                Missing page has its hash (its root under every digest).
//   overlay      (check_cap_invariants) every overlay node holds at least one child — a merge
//                finds an overlay node's first child by scanning, so an all-null one reads past
//                the child array — and the cap's overlay_count_ is the overlay's page count.
//
// Cost: O(nodes + pages) for the structure, plus O(64 · nodes) hashes for the nodes that carry
// cached hashes and one page hash per Loaded page that has a cached root or sits under one.
// Each distinct node and page is checked once however often it is shared.
//
// Thread-safety: REQUIRES that nothing mutates or hashes the trees while they are checked.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "datacap/error.hpp"
#include "slab/slot_tree.hpp"

namespace datacap::detail {

enum class TreeRule { shape, bounds, refcount, origin, node_hash, page_hash, overlay };
const char* to_string(TreeRule rule) noexcept;

// A broken slot tree invariant. There is no "internal" ErrorKind, so its kind() is
// ErrorKind::integrity (stored state that does not match what it must be). The message reads
// "slot tree invariant (<rule>) in <tree> at level <l>, page <p>: <what>", where the page is
// the first page the offending node or slot covers.
class TreeInvariantError : public Error {
 public:
  TreeInvariantError(TreeRule rule, const std::string& tree, unsigned level,
                     std::uint64_t page_index, const std::string& what);
  [[nodiscard]] TreeRule rule() const noexcept { return rule_; }
  [[nodiscard]] unsigned level() const noexcept { return level_; }
  [[nodiscard]] std::uint64_t page_index() const noexcept { return page_index_; }

 private:
  TreeRule rule_;
  unsigned level_;
  std::uint64_t page_index_;
};

// Checks one tree of `levels` radix levels holding a cap of `page_count` pages (the caller
// holds one reference on the root). Throws TreeInvariantError on the first broken rule.
void check_tree_invariants(const TreeNode* root, unsigned levels, std::uint64_t page_count);

// The same checks over several trees that hold references together (a cap's backing and
// overlay): add each tree, then finish() checks the reference counts against the references
// all of them hold.
class TreeChecker {
 public:
  TreeChecker();
  ~TreeChecker();
  TreeChecker(const TreeChecker&) = delete;
  TreeChecker& operator=(const TreeChecker&) = delete;

  // Checks every rule but the reference counts on one tree (one reference held on its root);
  // `name` ("backing", "overlay") goes into error messages. With `no_empty_nodes`, a node with
  // no children breaks the overlay rule. Returns the tree's non-null page slots.
  std::uint64_t add_tree(const TreeNode* root, unsigned levels, std::uint64_t page_count,
                         const std::string& name, bool no_empty_nodes = false);
  // The refcount rule over everything added.
  void finish();

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace datacap::detail
