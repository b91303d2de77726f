#include "page/page_pool.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
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
// Memory of freed pages stays resident for reuse, as in any allocator: a process that drops a
// cap and loads the next one (a VM node cycling snapshots) would otherwise pay a fault and a
// zeroed kernel page for every page again (~0.5 s per GiB on these machines). Up to
// FREE_RETAIN_PAGES stay always; up to warm_limit() pages in all stay while they are reused:
// pages that no take() reached during a whole DECAY period go back to the kernel at the next
// take() or give() (the low-water mark of the free list over the period, as allocators decay
// their dirty pages). Past warm_limit() pages go back at once.
constexpr std::size_t FREE_RETAIN_PAGES = 16384;  // 64 MiB
constexpr std::chrono::milliseconds DECAY{1000};
constexpr std::size_t DECAY_STEP = 4096;  // pages one call gives back at most (16 MiB)

// The memory limit of this process's cgroup (v2 memory.max, else v1 memory.limit_in_bytes), or
// 0 when there is none or it cannot be read.
std::uint64_t cgroup_memory_limit() noexcept {
  for (const char* path :
       {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char text[32] = {};
    const ssize_t got = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    if (got <= 0 || text[0] < '0' || text[0] > '9') return 0;  // "max": no limit
    std::uint64_t value = 0;
    for (ssize_t i = 0; i < got && text[i] >= '0' && text[i] <= '9'; ++i) {
      if (value > (~std::uint64_t{0} - 9) / 10) return 0;  // v1's "no limit" is near 2^63
      value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
    }
    return value;
  }
  return 0;
}

// 1/16 of the memory this process may use (physical memory, or its cgroup's limit when lower),
// at most 1 GiB of pages, at least FREE_RETAIN_PAGES.
std::size_t warm_limit() noexcept {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  std::uint64_t memory = ~std::uint64_t{0};
  if (pages > 0 && size > 0) {
    memory = static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(size);
  }
  const std::uint64_t limit = cgroup_memory_limit();
  if (limit != 0) memory = std::min(memory, limit);
  const std::uint64_t bytes = std::min(std::uint64_t{1} << 30, memory / 16);
  return std::max<std::size_t>(FREE_RETAIN_PAGES, static_cast<std::size_t>(bytes / PAGE_SIZE));
}

// Pages of processes that use guest windows live in memfd "arenas": one shared file mapping
// each, with the file offset of a page equal to its distance from the arena's base, so a window
// can map the very frames a page uses (MAP_PRIVATE of the arena's file at the page's offset)
// instead of copying them. Until use_mappable_page_memory() is called, chunks are anonymous
// memory as in any allocator (fork() copies them lazily, no file limit applies). The file is
// sparse: an arena reserves address space only; memory is used when a page is touched.
// Sanitizers shadow what is mapped, so arenas are smaller under them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr std::uint64_t ARENA_BYTES = std::uint64_t{1} << 30;
#else
constexpr std::uint64_t ARENA_BYTES = std::uint64_t{16} << 30;
#endif
constexpr std::size_t MAX_ARENAS = 4096;

std::atomic<bool> g_mappable{false};
std::atomic<bool> g_arenas_refused{false};  // memfd_create or an arena refused: no more tries

// After the switch to arenas, while arenas can be had: a page not in one is set aside.
bool set_aside(const std::uint8_t* page) noexcept {
  if (!g_mappable.load(std::memory_order_relaxed) ||
      g_arenas_refused.load(std::memory_order_relaxed)) {
    return false;
  }
  PageFileLocation where;
  return !page_file_location(page, where);
}

struct Arena {
  std::uint8_t* base = nullptr;
  std::uint64_t len = 0;
  std::atomic<int> fd{-1};  // -1: not mappable by windows (see the fork handler)
  std::uint64_t used = 0;   // bytes handed out to chunks (guarded by the pool's mutex)
  int stale_fd = -1;        // a child's: the descriptor of the parent's file it could not copy
  bool exhausted = false;   // no more chunks from this arena
};

// Fixed storage so that lookups and the fork handlers need no lock and no allocation; entries
// below g_arena_count are published (base, len and fd set) before the count moves past them.
Arena g_arenas[MAX_ARENAS];
std::atomic<std::size_t> g_arena_count{0};

// The largest arena this process may have: within RLIMIT_FSIZE (a file grown past it raises
// SIGXFSZ, which kills by default) and an eighth of RLIMIT_AS (address space an arena reserves
// is not available to anything else). 0 when not even a chunk fits.
std::uint64_t arena_limit() noexcept {
  std::uint64_t len = ARENA_BYTES;
  rlimit r{};
  if (::getrlimit(RLIMIT_FSIZE, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
    len = std::min<std::uint64_t>(len, r.rlim_cur);
  }
  if (::getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
    len = std::min<std::uint64_t>(len, r.rlim_cur / 8);
  }
  len = len / CHUNK_BYTES * CHUNK_BYTES;
  return len;
}

std::mutex& pool_mutex();
void before_fork() noexcept;
void in_parent_after_fork() noexcept;
void in_child_after_fork() noexcept;

class PagePool {
 public:
  // Takes up to `n` pages into `out`: resident pages first (pages given back to the kernel
  // would fault on first touch), then returned ones, then a new chunk.
  void take(std::vector<std::uint8_t*>& out, std::size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    decay();
    if (free_.empty() && returned_.empty()) {
      // Anonymous pages left from before the switch to arenas serve only when arenas cannot.
      if (anonymous_spare_.empty() || arenas_usable()) {
        refill();
      } else {
        take_from(anonymous_spare_, out, n);
        return;
      }
    }
    take_from(!free_.empty() ? free_ : returned_, out, n);
  }

  // From now on anonymous pages go aside (see use_mappable_page_memory).
  void switch_to_arenas() noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      anonymous_spare_.insert(anonymous_spare_.end(), free_.begin(), free_.end());
      anonymous_spare_.insert(anonymous_spare_.end(), returned_.begin(), returned_.end());
      free_.clear();
      returned_.clear();
    } catch (...) {
      // No memory to move them: they stay where they are and are used up first.
    }
  }

  // Gives back pages (already poisoned). Past warm_limit_ resident free pages, the memory
  // goes back to the kernel (the address stays in the pool and reads as zeros when reused): one
  // madvise per run of adjacent pages of the call, not one per page (a dropped cap's pages come
  // back mostly in address order, a few dozen at a time). In an arena a page is punched out of
  // the file (MADV_REMOVE; MADV_DONTNEED would only unmap it).
  void give(std::uint8_t* const* pages, std::size_t n) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    decay();
    std::uint8_t* kept[LOCAL_RUN];
    for (std::size_t at = 0; at < n; at += LOCAL_RUN) {
      const std::size_t count = std::min(LOCAL_RUN, n - at);
      std::size_t m = 0;
      for (std::size_t i = at; i < at + count; ++i) {
        if (set_aside(pages[i])) {
          // Anonymous memory from before the switch to arenas: set aside, given back to the
          // kernel (it is reused only if arenas cannot be had).
          if (kernel_page_is_ours_) ::madvise(pages[i], PAGE_SIZE, MADV_DONTNEED);
          record(anonymous_spare_, pages[i]);
        } else {
          kept[m++] = pages[i];
        }
      }
      give_run(kept, m);
    }
  }

  std::uint64_t mapped() const noexcept { return mapped_.load(std::memory_order_relaxed); }
  std::size_t retained_limit() const noexcept { return warm_limit_; }
  std::mutex& mutex() noexcept { return mu_; }

 private:
  // Pages give() sorts at a time to find adjacent runs (on the stack).
  static constexpr std::size_t LOCAL_RUN = 64;

  void take_from(std::vector<std::uint8_t*>& from, std::vector<std::uint8_t*>& out, std::size_t n) {
    const std::size_t first = out.size();
    for (; n > 0 && !from.empty(); --n) {
      out.push_back(from.back());
      from.pop_back();
    }
    if (&from != &free_) {
      populate(out.data() + first, out.size() - first);
    } else {
      low_water_ = std::min(low_water_, free_.size());
    }
  }

  // Gives the free pages that sat unused through the last DECAY back to the kernel (the oldest:
  // the free list is a stack), keeping FREE_RETAIN_PAGES. At most DECAY_STEP pages per call, so
  // no allocation waits behind a gigabyte of madvise: the rest follow on the next calls (the
  // period is not restarted until they are gone). O(free pages) per call that releases.
  void decay() noexcept {
    if (!kernel_page_is_ours_ || free_.size() <= FREE_RETAIN_PAGES) {
      low_water_ = std::min(low_water_, free_.size());
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - epoch_ < DECAY) return;
    const std::size_t idle = std::min(low_water_, free_.size());
    if (idle > FREE_RETAIN_PAGES) {
      const std::size_t n = std::min(idle - FREE_RETAIN_PAGES, DECAY_STEP);
      if (!release_oldest(n)) return;  // no memory to list them: they stay, tried again later
      low_water_ = idle - n;
      if (low_water_ > FREE_RETAIN_PAGES) return;
    }
    epoch_ = now;
    low_water_ = free_.size();
  }

  // Gives the n oldest free pages back to the kernel and lists them as returned. False (nothing
  // changed) when the returned list cannot grow to hold them: a page listed nowhere would be
  // lost to the pool for good.
  bool release_oldest(std::size_t n) noexcept {
    try {
      returned_.reserve(returned_.size() + n);
    } catch (...) {
      return false;
    }
    return_to_kernel(free_.data(), n);
    free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(n));
    return true;
  }

 public:
  // Before fork(), with the pool's lock held: free pages past FREE_RETAIN_PAGES go back to the
  // kernel, so that a child copying the arenas copies the pages in use, not up to warm_limit()
  // of dropped ones.
  void trim_for_fork() noexcept {
    if (!kernel_page_is_ours_ || free_.size() <= FREE_RETAIN_PAGES) return;
    if (release_oldest(free_.size() - FREE_RETAIN_PAGES)) low_water_ = free_.size();
  }

 private:
  bool arenas_usable() const noexcept {
    return g_mappable.load(std::memory_order_relaxed) && !memfd_refused_;
  }

  // give() for up to LOCAL_RUN pages (sorted in place).
  void give_run(std::uint8_t** pages, std::size_t n) noexcept {
    std::size_t returning = 0;  // pages[returning..n) go back to the kernel
    if (kernel_page_is_ours_) {
      // Only where the kernel's page is ours: with 16 or 64 KiB kernel pages, MADV_DONTNEED
      // on one of our pages would zero its neighbours, which may still be in use.
      returning = free_.size() >= warm_limit_ ? 0 : warm_limit_ - free_.size();
      returning = std::min(returning, n);
    } else {
      returning = n;
    }
    for (std::size_t i = 0; i < returning; ++i) record(free_, pages[i]);
    return_to_kernel(pages + returning, n - returning);
  }

  // Gives pages' memory back to the kernel and lists them as returned (sorts them in place): one
  // madvise per run of adjacent pages.
  void return_to_kernel(std::uint8_t** pages, std::size_t n) noexcept {
    std::sort(pages, pages + n);
    PageFileLocation where;
    for (std::size_t i = 0; i < n;) {
      const bool in_arena = page_file_location(pages[i], where);
      std::size_t j = i + 1;
      while (j < n && pages[j] == pages[j - 1] + PAGE_SIZE &&
             page_file_location(pages[j], where) == in_arena) {
        ++j;
      }
      ::madvise(pages[i], (j - i) * PAGE_SIZE, in_arena ? MADV_REMOVE : MADV_DONTNEED);
      for (; i < j; ++i) record(returned_, pages[i]);
    }
  }

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
    std::uint8_t* base = take_chunk();
    free_.reserve(free_.size() + CHUNK_PAGES);
    // Pushed high to low so that pages are handed out in address order (and, in an arena, in
    // file order: a cap built in one go then maps as one run).
    for (std::size_t i = CHUNK_PAGES; i-- > 0;) free_.push_back(base + i * PAGE_SIZE);
    DATACAP_POISON(base, CHUNK_BYTES);
    mapped_.fetch_add(CHUNK_BYTES, std::memory_order_relaxed);
  }

  std::uint8_t* take_chunk() {
    const std::size_t n = g_arena_count.load(std::memory_order_relaxed);
    if (n > 0) {
      Arena& last = g_arenas[n - 1];
      if (!last.exhausted && last.used + CHUNK_BYTES <= last.len) {
        std::uint8_t* chunk = last.base + last.used;
        last.used += CHUNK_BYTES;
        return chunk;
      }
    }
    if (n < MAX_ARENAS && !memfd_refused_ && g_mappable.load(std::memory_order_relaxed)) {
      if (std::uint8_t* chunk = new_arena(n)) return chunk;
      memfd_refused_ = true;  // not again on every refill: anonymous chunks from now on
      g_arenas_refused.store(true, std::memory_order_relaxed);
    }
    void* chunk =
        ::mmap(nullptr, CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (chunk == MAP_FAILED) throw std::bad_alloc();
    return static_cast<std::uint8_t*>(chunk);
  }

  // A new arena at g_arenas[n] with its first chunk taken, or nullptr when the system refuses
  // (no memfd_create under a sandbox, an address-space limit): anonymous chunks then.
  std::uint8_t* new_arena(std::size_t n) {
    const std::uint64_t len = arena_limit();
    if (len < CHUNK_BYTES) return nullptr;
    const int fd = ::memfd_create("datacap-pages", MFD_CLOEXEC);
    if (fd < 0) return nullptr;
    void* base = MAP_FAILED;
    if (::ftruncate(fd, static_cast<off_t>(len)) == 0) {
      base = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    }
    if (base == MAP_FAILED) {
      ::close(fd);
      return nullptr;
    }
    Arena& a = g_arenas[n];
    a.base = static_cast<std::uint8_t*>(base);
    a.len = len;
    a.used = CHUNK_BYTES;
    a.fd.store(fd, std::memory_order_relaxed);
    g_arena_count.store(n + 1, std::memory_order_release);
    return a.base;
  }

  const bool kernel_page_is_ours_ = ::sysconf(_SC_PAGESIZE) == static_cast<long>(PAGE_SIZE);
  const std::size_t warm_limit_ = warm_limit();
  std::size_t low_water_ = 0;  // the free list's smallest size since epoch_
  std::chrono::steady_clock::time_point epoch_ = std::chrono::steady_clock::now();
  bool memfd_refused_ = false;
  std::mutex mu_;
  std::vector<std::uint8_t*> free_;      // resident, ready for reuse
  std::vector<std::uint8_t*> returned_;  // given back to the kernel; reused last
  // Anonymous pages freed after the switch to arenas (or free then), given back to the kernel:
  // used only when arenas cannot be had, so that pages made after the switch are mappable.
  std::vector<std::uint8_t*> anonymous_spare_;
  std::atomic<std::uint64_t> mapped_{0};
};

// Never destroyed: pages may be released by static destructors of other translation units.
PagePool& pool() {
  static PagePool* instance = [] {
    auto* p = new PagePool();
    ::pthread_atfork(before_fork, in_parent_after_fork, in_child_after_fork);
    return p;
  }();
  return *instance;
}

std::mutex& pool_mutex() { return pool().mutex(); }

// fork(): the arenas are shared memory, so the child would share its pages with the parent (and
// the free list, so both would hand out the same page). The child copies each arena into a file
// of its own, mapped at the same address under the same descriptor number (cached window
// layouts name it), before fork() returns there; the parent waits for that copy, and holds the
// pool's lock meanwhile, so neither sees the other's later changes and no thread of the parent
// hands out or takes back a page during the copy. O(pages in use) per fork (free pages past
// FREE_RETAIN_PAGES are given back to the kernel first, so they are not copied). Everything the
// child needs (the pipe, a file per arena) is made by the parent before the fork, so a child at the
// descriptor or file-size limit does not fail; where even that is refused, the child copies the
// arena into anonymous memory instead (its pages are then no longer mappable by windows).
// Threads of the parent writing into pages in place (a cap's own overlay pages) during the copy
// are not stopped: such a cap reaches the child in whatever state it was (as fork() in a threaded
// program gives the child a consistent state only of what no other thread is changing).
int g_fork_pipe[2] = {-1, -1};
int g_child_fds[MAX_ARENAS];
std::size_t g_child_fd_count = 0;

void before_fork() noexcept {
  pool_mutex().lock();
  g_child_fd_count = 0;
  const std::size_t n = g_arena_count.load(std::memory_order_acquire);
  if (n == 0) return;
  pool().trim_for_fork();
  if (::pipe2(g_fork_pipe, O_CLOEXEC) != 0) g_fork_pipe[0] = g_fork_pipe[1] = -1;
  rlimit limit{};
  const bool limited = ::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY;
  for (std::size_t i = 0; i < n; ++i) {
    const Arena& a = g_arenas[i];
    int fd = -1;
    if (a.fd.load(std::memory_order_relaxed) >= 0 && (!limited || a.len <= limit.rlim_cur)) {
      fd = ::memfd_create("datacap-pages", MFD_CLOEXEC);
      if (fd >= 0 && ::ftruncate(fd, static_cast<off_t>(a.len)) != 0) {
        ::close(fd);
        fd = -1;
      }
    }
    g_child_fds[i] = fd;
  }
  g_child_fd_count = n;
}

void close_child_fds() noexcept {
  for (std::size_t i = 0; i < g_child_fd_count; ++i) {
    if (g_child_fds[i] >= 0) ::close(g_child_fds[i]);
    g_child_fds[i] = -1;
  }
  g_child_fd_count = 0;
}

void in_parent_after_fork() noexcept {
  if (g_fork_pipe[0] >= 0) {
    ::close(g_fork_pipe[1]);
    char done = 0;
    while (::read(g_fork_pipe[0], &done, 1) < 0 && errno == EINTR) {
    }  // one byte, or end of file when the child died first
    ::close(g_fork_pipe[0]);
    g_fork_pipe[0] = g_fork_pipe[1] = -1;
  }
  close_child_fds();
  pool_mutex().unlock();
}

// Copies the data ranges of the arena (holes — never used, or given back — read as zeros
// either way) from its mapping to `to` at the same offsets, through `write_at`.
template <typename WriteAt>
bool copy_arena_data(const Arena& a, int from, WriteAt&& write_at) noexcept {
  off_t pos = 0;
  const off_t end = static_cast<off_t>(a.used);
  while (pos < end) {
    const off_t data = ::lseek(from, pos, SEEK_DATA);
    if (data < 0 || data >= end) break;
    off_t hole = ::lseek(from, data, SEEK_HOLE);
    if (hole < 0 || hole > end) hole = end;
    if (!write_at(data, hole)) return false;
    pos = hole;
  }
  return true;
}

void in_child_after_fork() noexcept {
  for (std::size_t i = 0; i < g_child_fd_count; ++i) {
    Arena& a = g_arenas[i];
    const int old_fd = a.fd.load(std::memory_order_relaxed);
    if (old_fd < 0) continue;
    const int fd = g_child_fds[i];
    g_child_fds[i] = -1;
    // The raw system call: a sanitizer's write() interceptor would object to the poisoned free
    // pages the range may hold.
    if (fd >= 0 &&
        copy_arena_data(a, old_fd,
                        [&](off_t lo, off_t hi) {
                          for (off_t at = lo; at < hi;) {
                            const long wrote = ::syscall(SYS_pwrite64, fd, a.base + at,
                                                         static_cast<std::size_t>(hi - at), at);
                            if (wrote <= 0) return false;
                            at += wrote;
                          }
                          return true;
                        }) &&
        ::mmap(a.base, a.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_NORESERVE, fd,
               0) != MAP_FAILED &&
        ::dup3(fd, old_fd, O_CLOEXEC) == old_fd) {
      ::close(fd);
      continue;
    }
    if (fd >= 0) ::close(fd);
    // Anonymous memory instead: the used part copied aside, then moved over the arena; the
    // arena hands out no more chunks (the rest of it is still the parent's file) and its pages
    // are no longer mappable (windows' cached layouts naming it are not used: page_fd_stale).
    a.stale_fd = old_fd;
    a.fd.store(-1, std::memory_order_relaxed);
    void* aside = a.used == 0 ? MAP_FAILED
                              : ::mmap(nullptr, a.used, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (aside != MAP_FAILED &&
        copy_arena_data(a, old_fd,
                        [&](off_t lo, off_t hi) {
                          for (off_t at = lo; at < hi;) {
                            const long got = ::syscall(SYS_pread64, old_fd,
                                                       static_cast<std::uint8_t*>(aside) + at,
                                                       static_cast<std::size_t>(hi - at), at);
                            if (got <= 0) return false;
                            at += got;
                          }
                          return true;
                        }) &&
        ::mremap(aside, a.used, a.used, MREMAP_MAYMOVE | MREMAP_FIXED, a.base) != MAP_FAILED) {
      a.exhausted = true;
      continue;
    }
    // Last resort: a private view of the parent's file keeps this process's writes to itself,
    // but pages it has not written show the parent's later changes.
    ::mmap(a.base, a.len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE, old_fd,
           0);
    a.exhausted = true;
  }
  g_child_fd_count = 0;
  if (g_fork_pipe[1] >= 0) {
    const char done = 1;
    while (::write(g_fork_pipe[1], &done, 1) < 0 && errno == EINTR) {
    }
    ::close(g_fork_pipe[1]);
    ::close(g_fork_pipe[0]);
    g_fork_pipe[0] = g_fork_pipe[1] = -1;
  }
  pool_mutex().unlock();
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
  bool mappable;  // the cache was filled after the switch to arenas
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
    if (!local.mappable && g_mappable.load(std::memory_order_relaxed)) {
      pool().give(local.pages, local.count);  // anonymous pages from before the switch
      local.count = 0;
      local.mappable = true;
    }
    if (local.count == 0) {
      t_pages_guard.armed = true;  // registers the guard's destructor for this thread
      std::vector<std::uint8_t*> batch;
      batch.reserve(LOCAL_BATCH);
      pool().take(batch, LOCAL_BATCH);
      // Stacked in reverse, so pages leave in the pool's (address, and file) order: a cap
      // built in one go lies in one run of its arena and a window maps it with one call.
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) local.pages[local.count++] = *it;
    }
    page = local.pages[--local.count];
  }
  DATACAP_UNPOISON(page, PAGE_SIZE);
  return page;
}

void release_page_memory(std::uint8_t* page) noexcept {
  DATACAP_POISON(page, PAGE_SIZE);
  LocalPages& local = t_pages;
  if (local.dead || set_aside(page)) {
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

std::uint64_t page_pool_retained_limit_bytes() noexcept {
  return static_cast<std::uint64_t>(pool().retained_limit()) * PAGE_SIZE;
}

bool page_fd_stale(int fd) noexcept {
  const std::size_t n = g_arena_count.load(std::memory_order_acquire);
  for (std::size_t i = 0; i < n; ++i) {
    if (g_arenas[i].stale_fd == fd && fd >= 0) return true;
  }
  return false;
}

void use_mappable_page_memory() noexcept {
  if (g_mappable.load(std::memory_order_acquire)) return;
  if (!g_mappable.exchange(true, std::memory_order_acq_rel)) pool().switch_to_arenas();
}

bool page_file_location(const std::uint8_t* page, PageFileLocation& where) noexcept {
  const std::size_t n = g_arena_count.load(std::memory_order_acquire);
  for (std::size_t i = n; i-- > 0;) {
    const Arena& a = g_arenas[i];
    if (page >= a.base && page < a.base + a.len) {
      const int fd = a.fd.load(std::memory_order_relaxed);
      if (fd < 0) return false;
      where.fd = fd;
      where.offset = static_cast<std::uint64_t>(page - a.base);
      return true;
    }
  }
  return false;
}

}  // namespace datacap::detail
