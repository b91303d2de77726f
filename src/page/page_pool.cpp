#include "page/page_pool.hpp"

#include <sys/mman.h>

#include <atomic>
#include <mutex>
#include <new>
#include <vector>

#include "datacap/hash.hpp"

// Under AddressSanitizer a page in the free list is poisoned, so a use after release is caught
// as it would be with malloc.
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define DATACAP_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define DATACAP_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define DATACAP_POISON(p, n) ((void)(p), (void)(n))
#define DATACAP_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace datacap::detail {
namespace {

constexpr std::size_t CHUNK_BYTES = std::size_t{2} << 20;
constexpr std::size_t CHUNK_PAGES = CHUNK_BYTES / PAGE_SIZE;
constexpr std::size_t FREE_RETAIN_PAGES = 16384;  // 64 MiB kept resident for reuse

class PagePool {
 public:
  std::uint8_t* allocate() {
    std::lock_guard<std::mutex> lock(mu_);
    // Resident pages first; pages given back to the kernel would fault on first touch.
    std::vector<std::uint8_t*>& from = !free_.empty() ? free_ : (!returned_.empty() ? returned_ : refill());
    std::uint8_t* page = from.back();
    from.pop_back();
    DATACAP_UNPOISON(page, PAGE_SIZE);
    return page;
  }

  void release(std::uint8_t* page) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::uint8_t*>* to = &free_;
    if (free_.size() >= FREE_RETAIN_PAGES) {
      // Hand the memory back; the address is reused later (it reads as zeros then).
      ::madvise(page, PAGE_SIZE, MADV_DONTNEED);
      to = &returned_;
    }
    DATACAP_POISON(page, PAGE_SIZE);
    try {
      to->push_back(page);
    } catch (...) {
      // Cannot record it: leak the page rather than fail a release.
    }
  }

  std::uint64_t mapped() const noexcept { return mapped_.load(std::memory_order_relaxed); }

 private:
  std::vector<std::uint8_t*>& refill() {
    void* chunk = ::mmap(nullptr, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED) throw std::bad_alloc();
    free_.reserve(free_.size() + CHUNK_PAGES);
    auto* base = static_cast<std::uint8_t*>(chunk);
    // Pushed high to low so that pages are handed out in address order.
    for (std::size_t i = CHUNK_PAGES; i-- > 0;) free_.push_back(base + i * PAGE_SIZE);
    DATACAP_POISON(base, CHUNK_BYTES);
    mapped_.fetch_add(CHUNK_BYTES, std::memory_order_relaxed);
    return free_;
  }

  std::mutex mu_;
  std::vector<std::uint8_t*> free_;      // resident, ready for reuse
  std::vector<std::uint8_t*> returned_;  // given back with MADV_DONTNEED; reused last
  std::atomic<std::uint64_t> mapped_{0};
};

// Never destroyed: pages may be released by static destructors of other translation units.
PagePool& pool() {
  static PagePool* instance = new PagePool();
  return *instance;
}

}  // namespace

std::uint8_t* allocate_page_memory() { return pool().allocate(); }
void release_page_memory(std::uint8_t* page) noexcept { pool().release(page); }
std::uint64_t page_pool_mapped_bytes() noexcept { return pool().mapped(); }

}  // namespace datacap::detail
