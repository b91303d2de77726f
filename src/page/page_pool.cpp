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
  // Takes up to `n` pages into `out`: resident pages first (pages given back to the kernel
  // would fault on first touch), then returned ones, then a new chunk.
  void take(std::vector<std::uint8_t*>& out, std::size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty() && returned_.empty()) refill();
    std::vector<std::uint8_t*>& from = !free_.empty() ? free_ : returned_;
    for (; n > 0 && !from.empty(); --n) {
      out.push_back(from.back());
      from.pop_back();
    }
  }

  // Gives back pages (already poisoned). Past FREE_RETAIN_PAGES resident free pages, the memory
  // goes back to the kernel (the address stays in the pool and reads as zeros when reused).
  void give(std::uint8_t* const* pages, std::size_t n) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<std::uint8_t*>* to = &free_;
      if (free_.size() >= FREE_RETAIN_PAGES) {
        ::madvise(pages[i], PAGE_SIZE, MADV_DONTNEED);
        to = &returned_;
      }
      try {
        to->push_back(pages[i]);
      } catch (...) {
        // Cannot record it: leak the page rather than fail a release.
      }
    }
  }

  std::uint64_t mapped() const noexcept { return mapped_.load(std::memory_order_relaxed); }

 private:
  void refill() {
    void* chunk = ::mmap(nullptr, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED) throw std::bad_alloc();
    free_.reserve(free_.size() + CHUNK_PAGES);
    auto* base = static_cast<std::uint8_t*>(chunk);
    // Pushed high to low so that pages are handed out in address order.
    for (std::size_t i = CHUNK_PAGES; i-- > 0;) free_.push_back(base + i * PAGE_SIZE);
    DATACAP_POISON(base, CHUNK_BYTES);
    mapped_.fetch_add(CHUNK_BYTES, std::memory_order_relaxed);
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

// Each thread keeps a few pages of its own, so a copy-on-write takes no lock; pages move to and
// from the shared pool LOCAL_BATCH at a time.
constexpr std::size_t LOCAL_BATCH = 32;
constexpr std::size_t LOCAL_MAX = 2 * LOCAL_BATCH;

struct LocalPages {
  std::vector<std::uint8_t*> pages;
  LocalPages() { pages.reserve(LOCAL_MAX + 1); }
  ~LocalPages() { pool().give(pages.data(), pages.size()); }
};

LocalPages& local_pages() {
  thread_local LocalPages local;
  return local;
}

}  // namespace

std::uint8_t* allocate_page_memory() {
  auto& local = local_pages().pages;
  if (local.empty()) pool().take(local, LOCAL_BATCH);
  std::uint8_t* page = local.back();
  local.pop_back();
  DATACAP_UNPOISON(page, PAGE_SIZE);
  return page;
}

void release_page_memory(std::uint8_t* page) noexcept {
  DATACAP_POISON(page, PAGE_SIZE);
  auto& local = local_pages().pages;
  local.push_back(page);  // capacity reserved: never allocates
  if (local.size() > LOCAL_MAX) {
    pool().give(local.data() + LOCAL_BATCH, local.size() - LOCAL_BATCH);
    local.resize(LOCAL_BATCH);
  }
}
std::uint64_t page_pool_mapped_bytes() noexcept { return pool().mapped(); }

}  // namespace datacap::detail
