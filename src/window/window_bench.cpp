// Guest windows against floors the same binary measures in the same run: every figure here
// involves the kernel (mappings, page faults, page-table walks), whose costs on a virtual
// machine are far from bare metal, so only the ratios mean something.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "datacap/datacap.hpp"
#include "support/caps.hpp"
#include "window/kernel_abi.hpp"
#include "window/layout.hpp"
#include "window/tracking.hpp"

namespace datacap {
namespace {

constexpr std::uint64_t GIB_PAGES = 262144;

// A 1 GiB memfd whose pages are all in memory (as the page pool's are), mapped shared.
struct PopulatedMemfd {
  int fd = -1;
  std::uint8_t* shared = nullptr;
  std::uint64_t len = 0;
  explicit PopulatedMemfd(std::uint64_t bytes) : len(bytes) {
    fd = ::memfd_create("bench-floor", MFD_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(len)) != 0) std::abort();
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) std::abort();
    shared = static_cast<std::uint8_t*>(p);
    for (std::uint64_t i = 0; i < len; i += PAGE_SIZE)
      shared[i] = static_cast<std::uint8_t>(i >> 12 | 1);
  }
  ~PopulatedMemfd() {
    ::munmap(shared, len);
    ::close(fd);
  }
  std::uint8_t* map_private() const {
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) std::abort();
    return static_cast<std::uint8_t*>(p);
  }
};

PopulatedMemfd& gib_memfd() {
  static PopulatedMemfd m(GIB_PAGES * PAGE_SIZE);
  return m;
}

// Pages allocated from now on come from the pool's memfd arenas (as after any window).
void arenas_on() { GuestWindow first(DataCap::zeroed(PAGE_SIZE)); }

// A clean 1 GiB cap of random pages from from_bytes, built once arenas are on (its pages are
// mapped from where they are), rooted.
const DataCap& gib_cap() {
  static const DataCap cap = [] {
    arenas_on();
    DataCap c = bench::full_cap(GIB_PAGES, 1);
    (void)c.hash_tree_root();
    return c;
  }();
  return cap;
}

// 1 when the cap's backing is mapped through a compacted layer, 0 when from its own pages.
double compacted(const DataCap& cap) {
  std::unique_ptr<detail::Layout> owned;
  return detail::layout_of(cap, WindowOptions{}.max_mappings, owned).compacted ? 1 : 0;
}

// place_shared from 8 sources of 128 MiB, then 4,096 random writes and a flush: pages from all
// over the pool, the layout too fragmented to map run by run.
const DataCap& scattered_cap() {
  static const DataCap cap = [] {
    arenas_on();
    DataCap c = DataCap::zeroed(GIB_PAGES * PAGE_SIZE);
    for (std::uint64_t s = 0; s < 8; ++s) {
      c.place_shared(s * (GIB_PAGES / 8) * PAGE_SIZE, bench::full_cap(GIB_PAGES / 8, 100 + s));
    }
    std::mt19937_64 rng(5);
    for (int i = 0; i < 4096; ++i) {
      const std::uint64_t v = rng();
      c.write((rng() % GIB_PAGES) * PAGE_SIZE + rng() % (PAGE_SIZE - 8),
              {reinterpret_cast<const std::uint8_t*>(&v), 8});
    }
    return std::move(c).flush();
  }();
  return cap;
}

// ---- floors ----

// One private mapping of a 1 GiB memfd, and its unmapping.
void BM_MmapFloor(benchmark::State& state) {
  PopulatedMemfd& m = gib_memfd();
  for (auto _ : state) {
    std::uint8_t* p = m.map_private();
    benchmark::DoNotOptimize(p);
    ::munmap(p, m.len);
  }
}
BENCHMARK(BM_MmapFloor)->Unit(benchmark::kMicrosecond);

// The cheapest system call, for reading counts of calls as time.
void BM_SyscallFloor(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(::syscall(SYS_getppid));
}
BENCHMARK(BM_SyscallFloor);

// The first store to a clean page of a private memfd mapping: one copy-on-write fault.
void BM_KernelCowFloor(benchmark::State& state) {
  PopulatedMemfd& m = gib_memfd();
  std::uint8_t* p = m.map_private();
  std::uint64_t next = 0;
  for (auto _ : state) {
    if (next == GIB_PAGES) {
      state.PauseTiming();
      ::madvise(p, m.len, MADV_DONTNEED);  // every page the file's again
      next = 0;
      state.ResumeTiming();
    }
    p[next++ * PAGE_SIZE] = 7;
  }
  ::munmap(p, m.len);
}
BENCHMARK(BM_KernelCowFloor);

// A PAGEMAP_SCAN over the 1 GiB private mapping with k random pages written, reporting them,
// plus the copy of those k pages into memory already in place. The range is in the state a
// window's is in the same benchmark: written pages are undone one by one, so the page tables
// earlier iterations' stores needed stay (and are walked).
void BM_PagemapScanFloor(benchmark::State& state) {
  const auto k = static_cast<std::uint64_t>(state.range(1));
  PopulatedMemfd& m = gib_memfd();
  std::uint8_t* p = m.map_private();
  int pagemap = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  std::vector<std::uint8_t> copies(k * PAGE_SIZE, 1);
  std::vector<detail::kabi::PageRegion> regions(k + 1);
  std::mt19937_64 rng(9);
  std::uint64_t found = 0;
  std::vector<std::uint64_t> written(k);
  for (auto _ : state) {
    state.PauseTiming();
    for (std::uint64_t i = 0; i < k; ++i) {
      written[i] = rng() % GIB_PAGES;
      p[written[i] * PAGE_SIZE] = 1;
    }
    state.ResumeTiming();
    detail::kabi::PmScanArg arg{};
    arg.size = sizeof arg;
    arg.start = reinterpret_cast<std::uintptr_t>(p);
    arg.end = arg.start + m.len;
    arg.vec = reinterpret_cast<std::uintptr_t>(regions.data());
    arg.vec_len = regions.size();
    arg.category_inverted = arg.category_mask = detail::kabi::PAGE_IS_FILE;
    arg.category_anyof_mask = detail::kabi::PAGE_IS_PRESENT;
    arg.return_mask = detail::kabi::PAGE_IS_PRESENT;
    const long n = ::ioctl(pagemap, detail::kabi::PAGEMAP_SCAN, &arg);
    std::uint64_t c = 0;
    for (long r = 0; r < n; ++r) {
      for (std::uint64_t a = regions[static_cast<std::size_t>(r)].start;
           a < regions[static_cast<std::size_t>(r)].end && c < k; a += PAGE_SIZE, ++c) {
        std::memcpy(copies.data() + c * PAGE_SIZE, reinterpret_cast<const void*>(a), PAGE_SIZE);
      }
    }
    found = c;
    state.PauseTiming();
    // Undone page by page, as a window's remap does: the page tables the stores needed stay,
    // and both scans walk the same tables.
    for (const std::uint64_t w : written) ::madvise(p + w * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED);
    state.ResumeTiming();
  }
  state.counters["pages"] = static_cast<double>(found);
  ::close(pagemap);
  ::munmap(p, m.len);
}
BENCHMARK(BM_PagemapScanFloor)
    ->Args({GIB_PAGES, 1})
    ->Args({GIB_PAGES, 64})
    ->Args({GIB_PAGES, 4096})
    ->Unit(benchmark::kMicrosecond);

// ---- windows ----

// Mapping a clean 1 GiB cap from from_bytes (arg 0) or the scattered one (arg 1) and unmapping
// it; the layout is cached on the backing by the first iteration (see BM_WindowMapFirst).
void BM_WindowMap(benchmark::State& state) {
  const DataCap& cap = state.range(1) == 0 ? gib_cap() : scattered_cap();
  { GuestWindow warm(cap); }
  std::uint64_t mappings = 0;
  const std::uint64_t calls = detail::window_system_calls();
  for (auto _ : state) {
    GuestWindow w(cap);
    benchmark::DoNotOptimize(w.base());
    mappings = w.mapping_count();
  }
  state.counters["mappings"] = static_cast<double>(mappings);
  state.counters["compacted"] = compacted(cap);
  state.counters["syscalls"] = static_cast<double>(detail::window_system_calls() - calls) /
                               static_cast<double>(state.iterations());
}
BENCHMARK(BM_WindowMap)->Args({GIB_PAGES, 0})->Args({GIB_PAGES, 1})->Unit(benchmark::kMicrosecond);

// The first window of a backing: its layout computed (arg 1: compacted into a layer) each time,
// on a fresh copy of the backing's root (one page replaced).
void BM_WindowMapFirst(benchmark::State& state) {
  const DataCap& cap = state.range(1) == 0 ? gib_cap() : scattered_cap();
  const std::vector<std::uint8_t> page(PAGE_SIZE, 9);
  for (auto _ : state) {
    state.PauseTiming();
    DataCap fresh = cap;
    fresh.put_page(0, page);
    state.ResumeTiming();
    GuestWindow w(fresh);
    benchmark::DoNotOptimize(w.base());
  }
}
BENCHMARK(BM_WindowMapFirst)
    ->Args({GIB_PAGES, 0})
    ->Args({GIB_PAGES, 1})
    ->Iterations(5)
    ->Unit(benchmark::kMillisecond);

// remap onto the cap the window already holds: one scan, nothing mapped.
void BM_WindowRemapSame(benchmark::State& state) {
  const DataCap& cap = gib_cap();
  GuestWindow w(cap);
  const std::uint64_t calls = detail::window_system_calls();
  for (auto _ : state) w.remap(cap);
  state.counters["syscalls"] = static_cast<double>(detail::window_system_calls() - calls) /
                               static_cast<double>(state.iterations());
}
BENCHMARK(BM_WindowRemapSame);

// The first store to a clean page of a window (1 GiB cap, the default tracking).
void BM_WindowFirstWrite(benchmark::State& state) {
  const DataCap& cap = gib_cap();
  GuestWindow w(cap);
  std::uint64_t next = 0;
  for (auto _ : state) {
    if (next == GIB_PAGES) {
      state.PauseTiming();
      w.remap(cap);
      next = 0;
      state.ResumeTiming();
    }
    w.base()[next++ * PAGE_SIZE] = 7;
  }
  state.SetLabel(to_string(w.tracking()));
}
BENCHMARK(BM_WindowFirstWrite);

// harvest() of k random pages written in a 1 GiB window.
void BM_WindowHarvest(benchmark::State& state) {
  const auto k = static_cast<std::uint64_t>(state.range(1));
  const DataCap& cap = gib_cap();
  GuestWindow w(cap);
  std::mt19937_64 rng(9);
  std::uint64_t harvested = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (std::uint64_t i = 0; i < k; ++i) w.base()[(rng() % GIB_PAGES) * PAGE_SIZE] = 1;
    state.ResumeTiming();
    DataCap h = w.harvest();
    state.PauseTiming();
    harvested = h.dirty_page_count();
    h = DataCap();
    w.remap(cap);
    state.ResumeTiming();
  }
  state.counters["pages"] = static_cast<double>(harvested);
  state.SetLabel(to_string(w.tracking()));
}
BENCHMARK(BM_WindowHarvest)
    ->Args({GIB_PAGES, 1})
    ->Args({GIB_PAGES, 64})
    ->Args({GIB_PAGES, 4096})
    ->Unit(benchmark::kMicrosecond);

// A recompiled guest's run: map a 1 GiB cap, store into k random pages, harvest, root.
void BM_RunWindow(benchmark::State& state) {
  const auto k = static_cast<std::uint64_t>(state.range(0));
  const DataCap& cap = gib_cap();
  { GuestWindow warm(cap); }
  std::mt19937_64 rng(11);
  for (auto _ : state) {
    GuestWindow w(cap);
    for (std::uint64_t i = 0; i < k; ++i) {
      const std::uint64_t v = rng();
      std::memcpy(w.base() + (rng() % GIB_PAGES) * PAGE_SIZE + rng() % (PAGE_SIZE - 8), &v, 8);
    }
    benchmark::DoNotOptimize(w.harvest().flush().hash_tree_root());
  }
}
BENCHMARK(BM_RunWindow)->Arg(64)->Unit(benchmark::kMillisecond);

// The same run without windows: copy the cap into a private buffer, the same stores, find the
// changed pages by comparing, fold them into the overlay, root.
void BM_RunCopyInOut(benchmark::State& state) {
  const auto k = static_cast<std::uint64_t>(state.range(0));
  const DataCap& cap = gib_cap();
  std::vector<std::uint8_t> buffer(cap.content_len());
  std::mt19937_64 rng(11);
  for (auto _ : state) {
    cap.copy_into(0, buffer);
    for (std::uint64_t i = 0; i < k; ++i) {
      const std::uint64_t v = rng();
      std::memcpy(buffer.data() + (rng() % GIB_PAGES) * PAGE_SIZE + rng() % (PAGE_SIZE - 8), &v, 8);
    }
    DataCap out = cap;
    for (std::uint64_t p = 0; p < cap.page_count(); ++p) {
      const PageResolution r = cap.page_at(p * PAGE_SIZE);
      const std::uint8_t* mine = buffer.data() + p * PAGE_SIZE;
      if (std::memcmp(mine, r.data, PAGE_SIZE) != 0)
        out.write_page(p * PAGE_SIZE, {mine, PAGE_SIZE});
    }
    benchmark::DoNotOptimize(std::move(out).flush().hash_tree_root());
  }
}
BENCHMARK(BM_RunCopyInOut)->Arg(64)->Unit(benchmark::kMillisecond);

// Private memory (smaps Private_Dirty + Private_Clean of the windows' ranges) of 64 windows of
// a 64 MiB image, each having written 16 pages.
void BM_WindowMemory64(benchmark::State& state) {
  constexpr std::uint64_t IMAGE_PAGES = 16384;
  arenas_on();
  const DataCap image = bench::full_cap(IMAGE_PAGES, 77);
  std::uint64_t private_bytes = 0;
  for (auto _ : state) {
    std::vector<GuestWindow> windows;
    std::mt19937_64 rng(3);
    for (int i = 0; i < 64; ++i) {
      windows.emplace_back(image);
      for (int k = 0; k < 16; ++k) windows.back().base()[(rng() % IMAGE_PAGES) * PAGE_SIZE] = 1;
    }
    state.PauseTiming();
    std::ifstream smaps("/proc/self/smaps");
    std::string line;
    bool inside = false;
    private_bytes = 0;
    while (std::getline(smaps, line)) {
      unsigned long lo = 0, hi = 0;
      if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find('-')) {
        inside = false;
        for (const GuestWindow& w : windows) {
          const auto b = reinterpret_cast<std::uintptr_t>(w.base());
          if (lo >= b && hi <= b + w.size()) inside = true;
        }
        continue;
      }
      std::uint64_t kb = 0;
      if (inside && (std::sscanf(line.c_str(), "Private_Dirty: %lu kB", &kb) == 1 ||
                     std::sscanf(line.c_str(), "Private_Clean: %lu kB", &kb) == 1)) {
        private_bytes += kb * 1024;
      }
    }
    state.ResumeTiming();
  }
  state.counters["private_bytes"] = static_cast<double>(private_bytes);
  state.counters["limit_bytes"] = 64.0 * 16 * PAGE_SIZE + 64.0 * 64 * 1024;
}
BENCHMARK(BM_WindowMemory64)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace datacap
