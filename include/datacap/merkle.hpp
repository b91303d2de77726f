// Merkle roots over pages and caps (SPEC §4): the zero-subtree table, page roots, merkleize,
// the size root and a streaming cap-root builder.
//
// The cap root is an SSZ-style binary merkle tree over 32-byte chunks, hashed with a Digest
// (hash.hpp): hash(size_root, pages_root), the pages root a tree of depth pages_depth() over the
// pages' roots, each page's root a tree of depth 7 over its 128 chunks. Everything here is a
// pure function of its inputs.
//
// Thread-safety: the free functions are safe to call concurrently. A CapRootBuilder is a plain
// value: one thread at a time.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "datacap/export.hpp"
#include "datacap/hash.hpp"
#include "datacap/types.hpp"

namespace datacap {

// zero_hash(k) exists for k in [0, MAX_ZERO_HEIGHT]: enough for 2^32 pages of 2^7 chunks plus
// the container level above them.
inline constexpr unsigned MAX_ZERO_HEIGHT = 64;

// zero[k]: the root of a subtree of height k whose leaves are all the zero chunk
// (zero[0] = 0^32, zero[k+1] = hash(zero[k], zero[k])). Precomputed: O(1).
// Throws OutOfRange when height > MAX_ZERO_HEIGHT.
DATACAP_API const Hash32& zero_hash(Digest digest, unsigned height);

// Root of a Loaded page holding `bytes` zero-padded to PAGE_SIZE: merkleize(128 chunks, 128).
// Note an all-zero *Loaded* page has root zero[7]; the Empty slot's root is 0^32 (SPEC §4).
// Throws OutOfRange when bytes.size() > PAGE_SIZE. O(PAGE_SIZE).
DATACAP_API Hash32 page_root(Digest digest, std::span<const std::uint8_t> bytes);

// merkleize(chunks, limit) of SPEC §4: depth ceil(log2(limit)), chunks padded with zero chunks.
// Throws InvalidArgument when limit == 0 or chunks.size() > limit. O(chunks.size()) hashes.
DATACAP_API Hash32 merkleize(Digest digest, std::span<const Hash32> chunks, std::uint64_t limit);

// The size root: size as 8 little-endian bytes followed by 24 zero bytes.
DATACAP_API Hash32 size_root(std::uint64_t size);

// Depth of the pages tree of a cap of `page_count` pages: ceil(log2(max(page_count, 1))).
DATACAP_API unsigned pages_depth(std::uint64_t page_count) noexcept;

// Computes the cap root of a byte stream page by page without holding its pages: the root of
// from_bytes_sized(stream, size). Memory is O(log pages); a run of zero pages of any length
// costs O(log) (so a sparse 16 TiB size is immediate).
//
//   CapRootBuilder b(Digest::sha256);
//   while (read a page p) b.append_page(p);
//   Hash32 root = b.finish(target_size);
class DATACAP_API CapRootBuilder {
 public:
  explicit CapRootBuilder(Digest digest = Digest::sha256);

  // Appends the next page: `bytes` zero-padded to a page; an all-zero page counts as Empty.
  // Throws OutOfRange when bytes.size() > PAGE_SIZE or the cap would exceed 2^32 pages.
  void append_page(std::span<const std::uint8_t> bytes);
  // Appends consecutive pages: bytes.size() / PAGE_SIZE whole pages, then a partial last page
  // (zero-padded) if bytes.size() is not a multiple. Pages are hashed 16 at a time and, for
  // large inputs, on several threads (see set_hash_threads): the fast path for streams.
  // Throws OutOfRange when the cap would exceed 2^32 pages.
  void append_pages(std::span<const std::uint8_t> bytes);
  // Appends the next page by its page root (a Missing slot, or a root computed elsewhere).
  void append_page_root(const Hash32& root);
  // Appends `count` Empty pages in O(log count).
  void append_zero_pages(std::uint64_t count);
  // Pages appended so far.
  [[nodiscard]] std::uint64_t page_count() const noexcept { return page_count_; }

  // The cap root for a cap of max(size, pages appended), rounded up to a page, at least one
  // page. Leaves the builder reset to empty. Throws OutOfRange when the size exceeds 2^32
  // pages.
  [[nodiscard]] Hash32 finish(std::uint64_t size = 0);

 private:
  struct Subtree {
    unsigned height;
    Hash32 root;
  };
  void push(unsigned height, const Hash32& root);

  Digest digest_;
  std::uint64_t page_count_ = 0;
  std::vector<Subtree> stack_;  // complete subtrees, strictly decreasing heights
};

}  // namespace datacap
