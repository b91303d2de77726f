// PageSlab: the immutable backing of a cap (SPEC §2).
//
// A slab has a size in bytes (a PAGE_SIZE multiple) and the slots of its pages. Internally it
// is a persistent radix tree of 64-way nodes (depth ceil(log2(page_count)/6), at most 6), whose
// nodes and pages are reference-counted and shared between slabs: copying a slab is O(1); a
// change to a shared slab copies only the nodes on the path to the changed page, never the
// pages of others (it never mutates anything another slab can see). Unstored pages are Empty
// and cost nothing, so a 2^32-page slab with a few pages is small.
//
// Each node caches the merkle root of its subtree (per digest), computed lazily and shared with
// every slab that shares the node, so a root after k changes re-hashes O(k · log n) nodes.
//
// Canonical form: a page of all-zero bytes is never stored as Loaded in a slab; it is Empty.
//
// Thread-safety: const methods may run concurrently on one slab and on slabs that share nodes.
// Mutating one slab object needs outside synchronization.
#pragma once

#include <cstdint>
#include <functional>

#include "datacap/export.hpp"
#include "datacap/hash.hpp"
#include "datacap/page.hpp"

namespace datacap {

namespace detail {
struct TreeNode;
struct SlabAccess;
}  // namespace detail

class DATACAP_API PageSlab {
 public:
  // A slab of size 0 (no pages).
  PageSlab() noexcept = default;
  // A slab of `content_len` bytes, every page Empty. Throws InvalidArgument when content_len is
  // not a PAGE_SIZE multiple, OutOfRange when it exceeds 2^32 pages. O(1).
  explicit PageSlab(std::uint64_t content_len);
  PageSlab(const PageSlab& other) noexcept;  // O(1): shares every node
  PageSlab(PageSlab&& other) noexcept;
  PageSlab& operator=(const PageSlab& other) noexcept;
  PageSlab& operator=(PageSlab&& other) noexcept;
  ~PageSlab();

  [[nodiscard]] std::uint64_t content_len() const noexcept { return content_len_; }
  [[nodiscard]] std::uint64_t page_count() const noexcept { return content_len_ / PAGE_SIZE; }
  // Radix levels of the tree (1..6); 0 for a slab of size 0.
  [[nodiscard]] unsigned levels() const noexcept { return levels_; }

  // The slot of page `page_index`. Throws OutOfRange when page_index >= page_count().
  // O(levels) pointer hops.
  [[nodiscard]] PageSlot page_slot(std::uint64_t page_index) const;
  // Sets the slot of one page, canonically: a Loaded page whose bytes are all zero becomes
  // Empty. Copies the shared nodes on the path (O(levels · 64)), never the pages. Strong
  // guarantee. Throws OutOfRange when page_index >= page_count().
  void set_page_slot(std::uint64_t page_index, PageSlot slot);
  // Calls fn(page_index, slot) for every non-Empty page in ascending order. O(stored + nodes).
  void for_each_stored(const std::function<void(std::uint32_t, const PageSlot&)>& fn) const;
  // Pages that are Loaded or Missing. O(nodes).
  [[nodiscard]] std::uint64_t stored_page_count() const;

  // The cap root of this slab (SPEC §4) under `digest`. O(1) when cached; otherwise hashes the
  // pages and nodes changed since the last root, zero subtrees never hashed.
  [[nodiscard]] Hash32 root(Digest digest = Digest::sha256) const;
  // The pages root alone (the right child of the cap root).
  [[nodiscard]] Hash32 pages_root(Digest digest = Digest::sha256) const;

  // Bytes of bookkeeping behind this slab: tree nodes, cached node hashes and page objects —
  // everything but the page bytes themselves. Shared structure is counted as if this slab owned
  // it alone. O(nodes + stored pages).
  [[nodiscard]] std::uint64_t metadata_bytes() const noexcept;

  // Bytes this slab holds alone: tree nodes, their cached hashes, page objects and page bytes
  // that no other slab or cap can reach (a shared subtree counts nothing). What dropping this
  // slab would free. O(exclusive nodes).
  [[nodiscard]] std::uint64_t exclusive_bytes() const noexcept;

  // True when both slabs are the same tree object (cheap identity, not content equality).
  [[nodiscard]] bool shares_root_with(const PageSlab& other) const noexcept {
    return root_ == other.root_ && content_len_ == other.content_len_;
  }

 private:
  friend struct detail::SlabAccess;
  std::uint64_t content_len_ = 0;
  unsigned levels_ = 0;
  detail::TreeNode* root_ = nullptr;  // null: every page Empty
};

}  // namespace datacap
