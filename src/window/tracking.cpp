#include "window/tracking.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <string>

#include "datacap/error.hpp"
#include "datacap/types.hpp"
#include "window/kernel_abi.hpp"

namespace datacap {

const char* to_string(DirtyTracking tracking) noexcept {
  switch (tracking) {
    case DirtyTracking::uffd_wp_scan:
      return "uffd_wp_scan";
    case DirtyTracking::pagemap_scan:
      return "pagemap_scan";
    case DirtyTracking::proc_pagemap:
      return "proc_pagemap";
  }
  return "unknown";
}

namespace detail {
namespace {

std::atomic<unsigned> g_disabled_for_tests{0};
std::atomic<std::uint64_t> g_system_calls{0};

constexpr std::array<DirtyTracking, 3> ALL_TRACKING = {
    DirtyTracking::uffd_wp_scan, DirtyTracking::pagemap_scan, DirtyTracking::proc_pagemap};

std::string errno_text(int err) { return std::strerror(err); }

// The descriptors are the process's own: /proc/self/pagemap and a userfaultfd both name the
// process (its mm) that opened them, so a child of fork() opens its own.
class KernelHandles {
 public:
  static KernelHandles& get() {
    static auto* instance = [] {
      auto* k = new KernelHandles();  // never destroyed: used until exit
      g_instance = k;
      ::pthread_atfork(nullptr, nullptr, in_child_after_fork);
      return k;
    }();
    return *instance;
  }

  // The inherited descriptors name the parent (its mm): closed in the child at once, before
  // anything there can reuse their numbers; the child opens its own when it needs them. Runs
  // with one thread, so without the mutex (another thread of the parent may have held it).
  static void in_child_after_fork() noexcept {
    KernelHandles* k = g_instance;
    if (k == nullptr) return;
    if (k->uffd_ >= 0) ::close(k->uffd_);
    if (k->pagemap_ >= 0) ::close(k->pagemap_);
    k->uffd_ = -2;
    k->pagemap_ = -2;
    k->pid_ = ::getpid();
    new (&k->mu_) std::mutex();  // a mutex held by a thread that does not exist here
  }

  bool available(DirtyTracking t) {
    if ((g_disabled_for_tests.load(std::memory_order_relaxed) >> static_cast<unsigned>(t) & 1) != 0)
      return false;
    std::lock_guard<std::mutex> lock(mu_);
    refresh_after_fork();
    const auto i = static_cast<std::size_t>(t);
    if (!probed_[i]) {
      available_[i] = probe(t);
      probed_[i] = true;
    }
    return available_[i];
  }

  int uffd() {
    std::lock_guard<std::mutex> lock(mu_);
    refresh_after_fork();
    if (uffd_ == -2) uffd_ = open_uffd();
    return uffd_;
  }

  int pagemap() {
    std::lock_guard<std::mutex> lock(mu_);
    refresh_after_fork();
    if (pagemap_ == -2) pagemap_ = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    return pagemap_;
  }

  // The shared zero page's frame number, or 0 when frame numbers are hidden from us.
  std::uint64_t zero_pfn() {
    std::lock_guard<std::mutex> lock(mu_);
    return zero_pfn_;
  }

 private:
  void refresh_after_fork() {
    const pid_t pid = ::getpid();
    if (pid == pid_) return;
    if (pid_ != 0) {
      if (uffd_ >= 0) ::close(uffd_);
      if (pagemap_ >= 0) ::close(pagemap_);
    }
    uffd_ = -2;
    pagemap_ = -2;
    pid_ = pid;
  }

  static int open_uffd() {
    // User-mode-only needs no privilege (vm.unprivileged_userfaultfd); write-protection faults
    // are handled by the kernel itself in asynchronous mode, so nothing else is needed.
    int fd = static_cast<int>(
        ::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | kabi::UFFD_USER_MODE_ONLY_FLAG));
    if (fd < 0) return -1;
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = kabi::FEATURE_WP_ASYNC | kabi::FEATURE_WP_HUGETLBFS_SHMEM;
    if (::ioctl(fd, UFFDIO_API, &api) != 0 || (api.features & kabi::FEATURE_WP_ASYNC) == 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // Checks that a mechanism does what windows rely on, on a small mapping shaped like a
  // window's: a private mapping of a memfd (a written page is found, a read one is not) next to
  // anonymous memory (a read Empty page is not found).
  bool probe(DirtyTracking t) {
    if (pagemap_ == -2) pagemap_ = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (pagemap_ < 0) return false;
    if (t == DirtyTracking::uffd_wp_scan) {
      if (uffd_ == -2) uffd_ = open_uffd();
      if (uffd_ < 0) return false;
    }
    const int fd = ::memfd_create("datacap-probe", MFD_CLOEXEC);
    if (fd < 0) return false;
    bool ok = false;
    constexpr std::size_t PAGES = 4;
    void* area = MAP_FAILED;
    if (::ftruncate(fd, PAGES * PAGE_SIZE) == 0) {
      area = ::mmap(nullptr, 2 * PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    if (area != MAP_FAILED) {
      auto* p = static_cast<std::uint8_t*>(area);
      if (::mmap(p, PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) !=
          MAP_FAILED) {
        ok = probe_on(t, p);
      }
      ::munmap(area, 2 * PAGES * PAGE_SIZE);
    }
    ::close(fd);
    return ok;
  }

  bool probe_on(DirtyTracking t, std::uint8_t* p) {
    constexpr std::size_t PAGES = 4;
    if (t == DirtyTracking::uffd_wp_scan) {
      uffdio_register reg{};
      reg.range.start = reinterpret_cast<std::uintptr_t>(p);
      reg.range.len = 2 * PAGES * PAGE_SIZE;
      reg.mode = UFFDIO_REGISTER_MODE_WP;
      if (::ioctl(uffd_, UFFDIO_REGISTER, &reg) != 0) return false;
    }
    volatile std::uint8_t sink = p[2 * PAGE_SIZE];              // file page, read
    sink = static_cast<std::uint8_t>(sink + p[5 * PAGE_SIZE]);  // anonymous page, read
    (void)sink;
    p[1 * PAGE_SIZE] = 1;  // file page, written
    p[6 * PAGE_SIZE] = 1;  // anonymous page, written
    if (t == DirtyTracking::proc_pagemap) {
      std::uint64_t e[8];
      const auto off = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(p) / PAGE_SIZE * 8);
      if (::pread(pagemap_, e, sizeof e, off) != static_cast<ssize_t>(sizeof e)) return false;
      const auto written = [](std::uint64_t x) {
        return (x & (kabi::PM_PRESENT | kabi::PM_SWAPPED)) != 0 &&
               (x & kabi::PM_FILE_OR_SHARED) == 0;
      };
      if (!written(e[1]) || written(e[2]) || !written(e[6])) return false;
      zero_pfn_ = e[5] & kabi::PM_PFN_MASK;  // 0 when frame numbers are hidden
      return true;
    }
    std::vector<WrittenPage> found;
    try {
      scan_with(pagemap_, zero_pfn_, t, p, 2 * PAGES, found, true);
      if (found.size() != 2 || found[0].page_index != 1 || found[1].page_index != 6) return false;
      if (t == DirtyTracking::uffd_wp_scan) {  // re-armed: nothing, then the page written again
        found.clear();
        scan_with(pagemap_, zero_pfn_, t, p, 2 * PAGES, found, true);
        if (!found.empty()) return false;
        p[1 * PAGE_SIZE] = 2;
        scan_with(pagemap_, zero_pfn_, t, p, 2 * PAGES, found, true);
        if (found.size() != 1 || found[0].page_index != 1) return false;
      }
    } catch (const Error&) {
      return false;
    }
    return true;
  }

 public:
  // The scan itself; `fd` is this process's /proc/self/pagemap.
  static void scan_with(int fd, std::uint64_t zero_pfn, DirtyTracking t, std::uint8_t* base,
                        std::uint64_t pages, std::vector<WrittenPage>& out, bool rearm) {
    const auto start = reinterpret_cast<std::uintptr_t>(base);
    const std::uint64_t end = start + pages * PAGE_SIZE;
    if (t == DirtyTracking::proc_pagemap) {
      scan_proc(fd, zero_pfn, start, pages, out);
      return;
    }
    std::array<kabi::PageRegion, 256> regions;
    kabi::PmScanArg arg{};
    arg.size = sizeof arg;
    arg.vec = reinterpret_cast<std::uintptr_t>(regions.data());
    arg.vec_len = regions.size();
    // Written = present or swapped out, neither the file's page nor the shared zero page; with
    // userfaultfd also not write-protected since the last scan, which protects it again.
    arg.category_inverted = kabi::PAGE_IS_FILE | kabi::PAGE_IS_PFNZERO;
    arg.category_mask = kabi::PAGE_IS_FILE | kabi::PAGE_IS_PFNZERO;
    arg.category_anyof_mask = kabi::PAGE_IS_PRESENT | kabi::PAGE_IS_SWAPPED;
    arg.return_mask = kabi::PAGE_IS_PRESENT | kabi::PAGE_IS_SWAPPED;
    if (t == DirtyTracking::uffd_wp_scan) {
      arg.flags = kabi::PM_SCAN_CHECK_WPASYNC | (rearm ? kabi::PM_SCAN_WP_MATCHING : 0);
      arg.category_mask |= kabi::PAGE_IS_WRITTEN;
    }
    for (std::uint64_t at = start; at < end;) {
      arg.start = at;
      arg.end = end;
      const long n = ::ioctl(fd, kabi::PAGEMAP_SCAN, &arg);
      count_window_system_calls();
      if (n < 0) {
        throw IoError("/proc/self/pagemap",
                      "GuestWindow: PAGEMAP_SCAN failed: " + errno_text(errno));
      }
      for (long i = 0; i < n; ++i) {
        for (std::uint64_t a = regions[static_cast<std::size_t>(i)].start;
             a < regions[static_cast<std::size_t>(i)].end; a += PAGE_SIZE) {
          out.push_back({(a - start) / PAGE_SIZE, false});
        }
      }
      if (arg.walk_end <= at) break;  // no progress: the kernel walked nothing more
      at = arg.walk_end;
    }
  }

 private:
  static void scan_proc(int fd, std::uint64_t zero_pfn, std::uintptr_t start, std::uint64_t pages,
                        std::vector<WrittenPage>& out) {
    std::array<std::uint64_t, 512> entries;
    for (std::uint64_t first = 0; first < pages;) {
      const std::uint64_t n = std::min<std::uint64_t>(entries.size(), pages - first);
      const auto off = static_cast<off_t>((start / PAGE_SIZE + first) * 8);
      std::size_t got = 0;
      while (got < n * 8) {
        count_window_system_calls();
        const ssize_t r = ::pread(fd, reinterpret_cast<std::uint8_t*>(entries.data()) + got,
                                  n * 8 - got, off + static_cast<off_t>(got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          throw IoError("/proc/self/pagemap",
                        "GuestWindow: reading /proc/self/pagemap failed: " +
                            (r < 0 ? errno_text(errno) : std::string("short read")));
        }
        got += static_cast<std::size_t>(r);
      }
      for (std::uint64_t i = 0; i < n; ++i) {
        const std::uint64_t e = entries[i];
        if ((e & (kabi::PM_PRESENT | kabi::PM_SWAPPED)) == 0 || (e & kabi::PM_FILE_OR_SHARED) != 0)
          continue;
        bool maybe_zero = false;
        if ((e & kabi::PM_PRESENT) != 0) {
          const std::uint64_t pfn = e & kabi::PM_PFN_MASK;
          if (zero_pfn != 0 && pfn == zero_pfn) continue;  // the shared zero page: only read
          maybe_zero = zero_pfn == 0 || pfn == 0;
        }
        out.push_back({first + i, maybe_zero});
      }
      first += n;
    }
  }

  static inline KernelHandles* g_instance = nullptr;
  std::mutex mu_;
  pid_t pid_ = 0;
  int uffd_ = -2;  // -2: not opened yet; -1: unavailable
  int pagemap_ = -2;
  std::uint64_t zero_pfn_ = 0;
  std::array<bool, 3> probed_{};
  std::array<bool, 3> available_{};
};

}  // namespace

DirtyTracking choose_tracking(const std::optional<DirtyTracking>& forced) {
  KernelHandles& k = KernelHandles::get();
  std::optional<DirtyTracking> wanted = forced;
  if (!wanted) {
    if (const char* env = std::getenv("DATACAP_DIRTY_TRACKING"); env != nullptr && *env != '\0') {
      for (DirtyTracking t : ALL_TRACKING) {
        if (std::strcmp(env, to_string(t)) == 0) wanted = t;
      }
      if (!wanted) {
        throw InvalidArgument(std::string("DATACAP_DIRTY_TRACKING=") + env +
                              ": not one of uffd_wp_scan, pagemap_scan, proc_pagemap");
      }
    }
  }
  if (wanted) {
    if (!k.available(*wanted)) {
      throw Unsupported(std::string("GuestWindow: dirty tracking ") + to_string(*wanted) +
                        " is not available on this host");
    }
    return *wanted;
  }
  for (DirtyTracking t : ALL_TRACKING) {
    if (k.available(t)) return t;
  }
  throw Unsupported(
      "GuestWindow: no dirty tracking works on this host (userfaultfd write-protection with "
      "PAGEMAP_SCAN, PAGEMAP_SCAN, /proc/self/pagemap)");
}

void register_write_protect(std::uint8_t* start, std::uint64_t len) {
  const int fd = KernelHandles::get().uffd();
  uffdio_register reg{};
  reg.range.start = reinterpret_cast<std::uintptr_t>(start);
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  count_window_system_calls();
  if (fd < 0 || ::ioctl(fd, UFFDIO_REGISTER, &reg) != 0) {
    throw IoError("userfaultfd", "GuestWindow: userfaultfd registration of " + std::to_string(len) +
                                     " bytes failed: " + errno_text(fd < 0 ? EBADF : errno));
  }
}

void unregister_write_protect(std::uint8_t* start, std::uint64_t len) {
  const int fd = KernelHandles::get().uffd();
  uffdio_range range{};
  range.start = reinterpret_cast<std::uintptr_t>(start);
  range.len = len;
  count_window_system_calls();
  if (fd < 0 || ::ioctl(fd, UFFDIO_UNREGISTER, &range) != 0) {
    throw IoError("userfaultfd", "GuestWindow: userfaultfd unregistration of " +
                                     std::to_string(len) +
                                     " bytes failed: " + errno_text(fd < 0 ? EBADF : errno));
  }
}

void scan_written(DirtyTracking tracking, std::uint8_t* base, std::uint64_t pages,
                  std::vector<WrittenPage>& out, bool rearm) {
  KernelHandles& k = KernelHandles::get();
  const int fd = k.pagemap();
  if (fd < 0) {
    throw IoError("/proc/self/pagemap", "GuestWindow: /proc/self/pagemap cannot be opened");
  }
  KernelHandles::scan_with(fd, k.zero_pfn(), tracking, base, pages, out, rearm);
}

std::uint64_t window_system_calls() noexcept {
  return g_system_calls.load(std::memory_order_relaxed);
}

void count_window_system_calls(std::uint64_t n) noexcept {
  g_system_calls.fetch_add(n, std::memory_order_relaxed);
}

void disable_dirty_tracking_for_tests(unsigned mask) noexcept {
  g_disabled_for_tests.store(mask, std::memory_order_relaxed);
}

namespace {

// The selected value of a sysfs setting like "always [madvise] never", or "".
std::string selected(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[256] = {};
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return "";
  const char* open = std::strchr(buf, '[');
  const char* close = open != nullptr ? std::strchr(open, ']') : nullptr;
  return close != nullptr ? std::string(open + 1, close) : "";
}

}  // namespace

bool huge_pages_always() noexcept {
  // The top-level setting, or any size's own (multi-size THP: hugepages-<size>kB/enabled, where
  // "inherit" means the top-level one). Any of them "always" would let one store allocate, and
  // the scans report, a large folio of pages nobody wrote.
  static const bool always = [] {
    try {
      const std::string root = "/sys/kernel/mm/transparent_hugepage/";
      const bool top = selected(root + "enabled") == "always";
      if (top) return true;
      DIR* dir = ::opendir(root.c_str());
      if (dir == nullptr) return false;
      bool any = false;
      while (const dirent* e = ::readdir(dir)) {
        if (std::strncmp(e->d_name, "hugepages-", 10) == 0 &&
            selected(root + e->d_name + "/enabled") == "always") {
          any = true;
        }
      }
      ::closedir(dir);
      return any;
    } catch (...) {
      return true;  // unknown: ask for small pages (it costs one madvise)
    }
  }();
  return always;
}

}  // namespace detail

bool dirty_tracking_available(DirtyTracking tracking) noexcept {
  try {
    return detail::KernelHandles::get().available(tracking);
  } catch (...) {
    return false;
  }
}

}  // namespace datacap
