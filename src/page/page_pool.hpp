// Internal: PAGE_SIZE-aligned page memory carved from 2 MiB chunks.
//
// Why not aligned_alloc: glibc serves a 4 KiB-aligned 4 KiB block by over-allocating and
// splitting, so each page costs close to two pages of resident memory. The pool maps whole
// 2 MiB chunks and hands out their pages exactly; freed pages go to a free list and are reused.
// When the free list holds more than FREE_RETAIN_PAGES, further freed pages are returned to the
// kernel with madvise(MADV_DONTNEED) (their addresses stay in the pool), so dropping a large cap
// does not pin its memory.
//
// Thread-safety: allocate and release may be called from any thread (one mutex).
#pragma once

#include <cstddef>
#include <cstdint>

namespace datacap::detail {

// A page of uninitialized memory, PAGE_SIZE-aligned. Throws std::bad_alloc.
std::uint8_t* allocate_page_memory();
// REQUIRES: `page` came from allocate_page_memory and is not used again.
void release_page_memory(std::uint8_t* page) noexcept;

// For tests of the exception guarantees: on this thread, the allocation after the next `count`
// ones throws std::bad_alloc (once); a negative count turns that off.
void fail_page_allocations_after(std::int64_t count) noexcept;

// Bytes the pool has mapped from the kernel (for memory reports).
std::uint64_t page_pool_mapped_bytes() noexcept;

}  // namespace datacap::detail
