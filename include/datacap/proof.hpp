// Merkle proofs against a cap root, and the diff of two caps by their cached hashes.
//
// Positions are SSZ generalized indices (gindex) in the tree of the cap root (SPEC §4): the cap
// root is 1, the size root 2, the pages root 3, and with pages depth d = pages_depth(page_count)
// page i is 3·2^d + i. A node's children are 2g and 2g+1; its sibling is g^1.
//
// A proof carries the leaf (the page's slot root: Empty → 0^32, Loaded → page root, Missing →
// its hash) and the sibling hashes needed to fold it up to the root. Verification is a free
// function of the proof and the root alone: it trusts nothing else in the proof (the depth,
// gindices and branch lengths are recomputed from the size and page indices, and the size root
// is checked against the size).
//
// Building a proof needs a clean cap (DirtyCap otherwise) and computes its root if it is not
// cached; after that, each sibling is a cached hash found in O(L) pointer hops.
//
// Thread-safety: the functions only read the cap (and fill its race-free hash caches), so they
// may run concurrently with other readers of the same cap; proofs are plain values.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "datacap/cap.hpp"
#include "datacap/export.hpp"
#include "datacap/hash.hpp"

namespace datacap {

// gindex of page `page_index` in a cap of `page_count` pages: 3·2^d + page_index.
// Throws OutOfRange when page_index >= page_count.
DATACAP_API std::uint64_t page_gindex(std::uint64_t page_count, std::uint64_t page_index);

// ---- one page --------------------------------------------------------------------------------
struct PageProof {
  std::uint64_t content_len = 0;  // the cap's size in bytes
  std::uint64_t page_index = 0;
  Hash32 leaf{};  // the page's slot root
  // Siblings from the leaf's level up to the root: d hashes inside the pages tree, then the
  // size root (so branch.size() == d + 1).
  std::vector<Hash32> branch;
};

// Proof of page `page_index` of a clean cap. Throws DirtyCap, OutOfRange. O(d · L) after the
// root is known.
[[nodiscard]] DATACAP_API PageProof prove_page(const DataCap& cap, std::uint64_t page_index,
                                               Digest digest = Digest::sha256);

// True iff `proof` folds to `root`: content_len is a page multiple within the 2^32-page limit,
// page_index < page_count, branch has d + 1 entries, its last is size_root(content_len), and
// the fold of leaf and branch by the bits of page_index equals root. Never throws for a bad
// proof; O(d) pair hashes.
[[nodiscard]] DATACAP_API bool verify_page_proof(const PageProof& proof, const Hash32& root,
                                                 Digest digest = Digest::sha256) noexcept;

// ---- many pages: one multiproof with shared siblings ----------------------------------------
struct MultiProof {
  std::uint64_t content_len = 0;
  std::vector<std::uint64_t> page_indices;  // ascending, distinct
  std::vector<Hash32> leaves;               // leaves[k] is the slot root of page_indices[k]
  // The hashes at multiproof_helper_gindices(content_len, page_indices), in that order.
  std::vector<Hash32> helpers;
};

// The gindices of the helper nodes a multiproof of these pages carries: every sibling of a node
// on the paths from the pages to the root that is not itself on a path, in descending order
// (deepest first; the size root, gindex 2, last). Throws OutOfRange for an index >=
// page_count, InvalidArgument when page_indices is empty, unsorted or repeats an index.
// O(k · d).
[[nodiscard]] DATACAP_API std::vector<std::uint64_t> multiproof_helper_gindices(
    std::uint64_t content_len, std::span<const std::uint64_t> page_indices);

// Proof of the pages at `page_indices` (ascending, distinct) of a clean cap. Throws DirtyCap
// and as multiproof_helper_gindices. O(k · d · L) after the root is known.
[[nodiscard]] DATACAP_API MultiProof prove_pages(const DataCap& cap,
                                                 std::span<const std::uint64_t> page_indices,
                                                 Digest digest = Digest::sha256);

// True iff the multiproof folds to `root` (with the same checks as verify_page_proof, and the
// helper count equal to the recomputed helper gindices'). Never throws for a bad proof.
// O(k · d) pair hashes.
[[nodiscard]] DATACAP_API bool verify_multiproof(const MultiProof& proof, const Hash32& root,
                                                 Digest digest = Digest::sha256) noexcept;

// ---- a byte range: the pages that cover it, with their bytes --------------------------------
struct RangeProof {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  MultiProof pages;                      // the pages covering [offset, offset + length)
  std::vector<std::uint8_t> page_bytes;  // PAGE_SIZE bytes per page of pages.page_indices

  // The proven bytes [offset, offset + length). REQUIRES: a well-formed proof (verified).
  [[nodiscard]] std::span<const std::uint8_t> bytes() const noexcept {
    return std::span<const std::uint8_t>(page_bytes).subspan(offset % PAGE_SIZE, length);
  }
};

// Proof of bytes [offset, offset + length) of a clean cap. Throws DirtyCap, InvalidArgument
// when length is 0, OutOfRange when the range ends past content_len(), MissingPage when a
// covering page is Missing (its bytes are not known). O(length + pages · d · L).
[[nodiscard]] DATACAP_API RangeProof prove_range(const DataCap& cap, std::uint64_t offset,
                                                 std::uint64_t length,
                                                 Digest digest = Digest::sha256);

// True iff the pages are exactly those covering the range, each page's bytes match its leaf
// (page root, or all zeros for an Empty leaf 0^32) and the multiproof folds to `root`.
// Never throws for a bad proof. O(pages · PAGE_SIZE) hashing.
[[nodiscard]] DATACAP_API bool verify_range_proof(const RangeProof& proof, const Hash32& root,
                                                  Digest digest = Digest::sha256) noexcept;

// ---- diff ----------------------------------------------------------------------------------
// The page indices (ascending) at which two clean caps' slot roots differ, over the pages of
// the larger cap (a page past the smaller cap's end counts as Empty; compare content_len()
// for the size). Loaded and Missing slots with the same root are equal. Computes either root
// if it is not cached, then descends only into subtrees whose cached hashes differ:
// O(d · log n) for d differing pages. Throws DirtyCap.
[[nodiscard]] DATACAP_API std::vector<std::uint64_t> diff_pages(const DataCap& a, const DataCap& b,
                                                                Digest digest = Digest::sha256);

}  // namespace datacap
