#include "common/block_pool.hpp"

#include <sys/mman.h>

#include <cstdint>
#include <mutex>
#include <new>

namespace datacap::detail {
namespace {

// Chunks come from 2 MiB regions aligned to 2 MiB and marked for transparent huge pages: the
// library's bookkeeping for a 1 GiB cap (page objects, tree nodes, hashes) spans some 30 MB
// and is read at random, so with 4 KiB pages nearly every lookup would also miss the TLB.
constexpr std::size_t REGION = std::size_t{2} << 20;

struct Arena {
  std::mutex mu;
  unsigned char* next = nullptr;
  std::size_t left = 0;
};

Arena& arena() {
  static Arena* a = new Arena();  // never destroyed: chunks live until the process ends
  return *a;
}

unsigned char* map_region() {
  void* raw = mmap(nullptr, 2 * REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  auto* base = static_cast<unsigned char*>(raw);
  const auto addr = reinterpret_cast<std::uintptr_t>(base);
  auto* aligned = base + ((REGION - addr % REGION) % REGION);
  // Give back the unaligned head and the tail beyond one region.
  if (aligned != base) munmap(base, static_cast<std::size_t>(aligned - base));
  const std::size_t tail = static_cast<std::size_t>(base + 2 * REGION - (aligned + REGION));
  if (tail != 0) munmap(aligned + REGION, tail);
  (void)madvise(aligned, REGION, MADV_HUGEPAGE);  // a hint: without it, 4 KiB pages still work
  return aligned;
}

}  // namespace

void* pool_chunk(std::size_t bytes) {
  bytes = (bytes + 63) / 64 * 64;
  if (bytes > REGION / 4) return ::operator new (bytes, std::align_val_t{64});
  Arena& a = arena();
  std::lock_guard<std::mutex> lock(a.mu);
  if (bytes > a.left) {  // the old region's rest (less than this chunk) stays unused
    a.next = map_region();
    a.left = REGION;
  }
  void* chunk = a.next;
  a.next += bytes;
  a.left -= bytes;
  return chunk;
}

}  // namespace datacap::detail
