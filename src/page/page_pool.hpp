// Internal: PAGE_SIZE-aligned page memory carved from 2 MiB chunks.
//
// Chunks are anonymous memory until use_mappable_page_memory() (the first guest window); after
// it they come from memfd "arenas" (see page_file_location), so that windows can map pages from
// their own storage — or anonymous memory still where memfd_create, or an arena within the
// process's limits, is refused. A child of fork() gets private copies of the arenas (O(pages in
// use), made in the child before fork() returns there, the parent waiting for it).
//
// Why not aligned_alloc: glibc serves a 4 KiB-aligned 4 KiB block by over-allocating and
// splitting, so each page costs close to two pages of resident memory. The pool maps whole
// 2 MiB chunks and hands out their pages exactly; freed pages go to a free list and are reused.
// Freed pages stay resident for reuse, as in any allocator (a node that drops a cap and loads the
// next would otherwise pay a fault and a zeroed kernel page per page again): 64 MiB always, and
// up to 1/16 of the process's memory (physical or its cgroup's limit; at most 1 GiB) while they
// are reused. Pages that no allocation reached during a whole second are returned to the kernel
// (MADV_REMOVE in an arena, MADV_DONTNEED otherwise; their addresses stay in the pool), 16 MiB at
// each later call into the shared pool, as are pages freed past that bound at once and, before
// fork(), everything past 64 MiB. With kernel pages larger than 4 KiB nothing is returned.
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
// Bytes of freed pages the pool keeps resident at most (64 MiB always, more while reused).
std::uint64_t page_pool_retained_limit_bytes() noexcept;

// Where a page's bytes are in a file that can be mapped: the pool's memfd arenas (shared file
// mappings whose file offsets follow the addresses). A window maps `fd` at `offset` privately to
// show the page without copying it.
struct PageFileLocation {
  int fd = -1;
  std::uint64_t offset = 0;
};
// True when `fd` named an arena this process (a child of fork() that could not copy it) no
// longer maps as its own: a window layout naming it is out of date.
bool page_fd_stale(int fd) noexcept;

// From now on, new chunks come from memfd arenas (pages allocated before stay where they are).
// Called by the first GuestWindow. Idempotent.
void use_mappable_page_memory() noexcept;

// True (and `where` filled) when `page`, from allocate_page_memory, lives in an arena. False
// for memory the pool had to take anonymously (no memfd here) and for anything not from the
// pool. Lock-free, allocation-free, async-signal-safe.
bool page_file_location(const std::uint8_t* page, PageFileLocation& where) noexcept;

}  // namespace datacap::detail
