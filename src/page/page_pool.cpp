#include "page/page_pool.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <new>
#include <vector>

#include "datacap/types.hpp"

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
    const std::size_t first = out.size();
    for (; n > 0 && !from.empty(); --n) {
      out.push_back(from.back());
      from.pop_back();
    }
    if (&from == &returned_) populate(out.data() + first, out.size() - first);
  }

  // Gives back pages (already poisoned). Past FREE_RETAIN_PAGES resident free pages, the memory
  // goes back to the kernel (the address stays in the pool and reads as zeros when reused): one
  // madvise per run of adjacent pages of the call, not one per page (a dropped cap's pages come
  // back mostly in address order, a few dozen at a time).
  void give(std::uint8_t* const* pages, std::size_t n) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    std::size_t returning = 0;  // pages[returning..n) go back to the kernel
    if (kernel_page_is_ours_) {
      // Only where the kernel's page is ours: with 16 or 64 KiB kernel pages, MADV_DONTNEED
      // on one of our pages would zero its neighbours, which may still be in use.
      returning = free_.size() >= FREE_RETAIN_PAGES ? 0 : FREE_RETAIN_PAGES - free_.size();
      returning = std::min(returning, n);
    } else {
      returning = n;
    }
    for (std::size_t i = 0; i < returning; ++i) record(free_, pages[i]);
    if (returning == n) return;
    std::uint8_t* sorted[LOCAL_RUN];
    for (std::size_t at = returning; at < n; at += LOCAL_RUN) {
      const std::size_t count = std::min(LOCAL_RUN, n - at);
      std::copy(pages + at, pages + at + count, sorted);
      std::sort(sorted, sorted + count);
      for (std::size_t i = 0; i < count;) {
        std::size_t j = i + 1;
        while (j < count && sorted[j] == sorted[j - 1] + PAGE_SIZE) ++j;
        ::madvise(sorted[i], (j - i) * PAGE_SIZE, MADV_DONTNEED);
        for (; i < j; ++i) record(returned_, sorted[i]);
      }
    }
  }

  std::uint64_t mapped() const noexcept { return mapped_.load(std::memory_order_relaxed); }

 private:
  // Pages give() sorts at a time to find adjacent runs (on the stack).
  static constexpr std::size_t LOCAL_RUN = 64;

  // Maps pages given back to the kernel again, one madvise per run of adjacent pages: cheaper
  // than a fault per page on first touch. A kernel without MADV_POPULATE_WRITE (before 5.14)
  // refuses it, and the pages then fault on first touch as before.
  static void populate(std::uint8_t** pages, std::size_t n) noexcept {
#ifdef MADV_POPULATE_WRITE
    std::sort(pages, pages + n);
    for (std::size_t i = 0; i < n;) {
      std::size_t j = i + 1;
      while (j < n && pages[j] == pages[j - 1] + PAGE_SIZE) ++j;
      (void)::madvise(pages[i], (j - i) * PAGE_SIZE, MADV_POPULATE_WRITE);
      i = j;
    }
#else
    (void)pages;
    (void)n;
#endif
  }

  static void record(std::vector<std::uint8_t*>& to, std::uint8_t* page) noexcept {
    try {
      to.push_back(page);
    } catch (...) {
      // Cannot record it: leak the page rather than fail a release.
    }
  }

  void refill() {
    void* chunk =
        ::mmap(nullptr, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED) throw std::bad_alloc();
    free_.reserve(free_.size() + CHUNK_PAGES);
    auto* base = static_cast<std::uint8_t*>(chunk);
    // Pushed high to low so that pages are handed out in address order.
    for (std::size_t i = CHUNK_PAGES; i-- > 0;) free_.push_back(base + i * PAGE_SIZE);
    DATACAP_POISON(base, CHUNK_BYTES);
    mapped_.fetch_add(CHUNK_BYTES, std::memory_order_relaxed);
  }

  const bool kernel_page_is_ours_ = ::sysconf(_SC_PAGESIZE) == static_cast<long>(PAGE_SIZE);
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
//
// The cache is trivially destructible, so it stays usable for the whole life of its thread; a
// separate guard hands its pages back when the thread ends and marks it dead, after which the
// thread (e.g. static destructors dropping caps at exit) uses the shared pool directly.
constexpr std::size_t LOCAL_BATCH = 32;
constexpr std::size_t LOCAL_MAX = 2 * LOCAL_BATCH;

struct LocalPages {
  std::uint8_t* pages[LOCAL_MAX + 1];
  std::size_t count;
  bool dead;
};
thread_local LocalPages t_pages{};

struct LocalPagesGuard {
  bool armed = false;
  ~LocalPagesGuard() {
    pool().give(t_pages.pages, t_pages.count);
    t_pages.count = 0;
    t_pages.dead = true;
  }
};
thread_local LocalPagesGuard t_pages_guard;

}  // namespace

namespace {
thread_local std::int64_t t_allocations_left = -1;  // < 0: no failure injected
}  // namespace

void fail_page_allocations_after(std::int64_t count) noexcept { t_allocations_left = count; }

std::uint8_t* allocate_page_memory() {
  if (t_allocations_left >= 0 && t_allocations_left-- == 0) {
    t_allocations_left = -1;
    throw std::bad_alloc();
  }
  LocalPages& local = t_pages;
  std::uint8_t* page;
  if (local.dead) {
    std::vector<std::uint8_t*> one;
    pool().take(one, 1);
    page = one.back();
  } else {
    if (local.count == 0) {
      t_pages_guard.armed = true;  // registers the guard's destructor for this thread
      std::vector<std::uint8_t*> batch;
      batch.reserve(LOCAL_BATCH);
      pool().take(batch, LOCAL_BATCH);
      for (std::uint8_t* p : batch) local.pages[local.count++] = p;
    }
    page = local.pages[--local.count];
  }
  DATACAP_UNPOISON(page, PAGE_SIZE);
  return page;
}

void release_page_memory(std::uint8_t* page) noexcept {
  DATACAP_POISON(page, PAGE_SIZE);
  LocalPages& local = t_pages;
  if (local.dead) {
    pool().give(&page, 1);
    return;
  }
  local.pages[local.count++] = page;
  if (local.count > LOCAL_MAX) {
    pool().give(local.pages + LOCAL_BATCH, local.count - LOCAL_BATCH);
    local.count = LOCAL_BATCH;
  }
}

std::uint64_t page_pool_mapped_bytes() noexcept { return pool().mapped(); }

}  // namespace datacap::detail
