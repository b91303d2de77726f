// Internal merkle helpers shared by the page root, the slab tree and the streaming builder.
#pragma once

#include <cstddef>
#include <cstdint>

#include "datacap/hash.hpp"
#include "datacap/merkle.hpp"

namespace datacap::detail {

// Folds `count` nodes (a power of two) of height `height` in place, `levels` times, so that
// nodes[0 .. count >> levels) hold the parents. A pair whose children are both zero[h] becomes
// zero[h+1] without hashing; the other pairs are hashed in batches.
void fold_levels(Digest digest, Hash32* nodes, std::size_t count, unsigned height, unsigned levels);

// Page roots of `count` pages (each PAGE_SIZE bytes at pages[i]) into out[i], hashed level by
// level across up to 16 pages at a time so that every SIMD lane stays busy, even on the top
// levels of each page's tree. No zero-page special case: all zeros → zero[7].
void page_roots(Digest digest, const std::uint8_t* const* pages, std::size_t count, Hash32* out);

// Page root of PAGE_SIZE bytes at `page` (no zero-page special case: all zeros → zero[7]).
Hash32 page_root_of(Digest digest, const std::uint8_t* page);

// True when all PAGE_SIZE bytes are zero.
bool is_zero_page(const std::uint8_t* page) noexcept;

// Cap root from a pages root: hash(size_root(content_len), pages_root).
Hash32 cap_root_of(Digest digest, std::uint64_t content_len, const Hash32& pages_root);

}  // namespace datacap::detail
