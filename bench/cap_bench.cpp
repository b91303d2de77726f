// End-to-end benchmarks of caps: copy, lookup, copy-on-write, full and incremental roots.
// Names and arguments follow the speed issue so runs can be compared: pages ∈ {4096, 262144}
// (16 MiB, 1 GiB), k ∈ {1, 64, 4096}.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "datacap/datacap.hpp"
#include "support/caps.hpp"

namespace datacap {
namespace {

using bench::full_cap;
using bench::random_bytes;
using bench::rooted_cap;

void BM_Copy(benchmark::State& state) {
  const DataCap& cap = rooted_cap(static_cast<std::uint64_t>(state.range(0)));
  for (auto _ : state) {
    DataCap copy = cap;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_Copy)->Arg(4096)->Arg(262144);

// Random page lookups; the second argument is the percentage of pages dirty in the overlay.
void BM_PageAtRandom(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  DataCap cap = rooted_cap(pages);
  std::mt19937_64 rng(1);
  const auto dirty = pages * static_cast<std::uint64_t>(state.range(1)) / 100;
  const std::vector<std::uint8_t> eight(8, 1);
  for (std::uint64_t i = 0; i < dirty; ++i) cap.write((rng() % pages) * PAGE_SIZE, eight);
  std::vector<std::uint64_t> offsets(1 << 16);
  for (auto& o : offsets) o = rng() % (pages * PAGE_SIZE);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cap.page_at(offsets[i++ & (offsets.size() - 1)]).data);
  }
}
BENCHMARK(BM_PageAtRandom)
    ->ArgNames({"pages", "dirty_pct"})
    ->Args({262144, 0})
    ->Args({262144, 10})
    ->Args({4096, 0});

// An 8-byte store into a page the cap shares with its base: one page copy into the overlay.
// The stores cycle over 256 pages (1 MiB, cache-resident like the floor's one page), and the cap
// is reset to the base every 256 stores (outside the timing).
void BM_WritePageCow(benchmark::State& state) {
  constexpr std::uint64_t SPAN = 256;
  const DataCap& base = rooted_cap(4096);
  const std::vector<std::uint8_t> bytes(8, 7);
  DataCap cap = base;
  std::uint64_t page = 0;
  for (auto _ : state) {
    cap.write((page++ % SPAN) * PAGE_SIZE + 100, bytes);
    if (page % SPAN == 0) {
      state.PauseTiming();
      cap = base;
      state.ResumeTiming();
    }
  }
}
BENCHMARK(BM_WritePageCow);

// The same stores over all 4096 pages of a 16 MiB cap: every copy reads and writes memory
// outside the caches.
void BM_WritePageCowCold(benchmark::State& state) {
  const DataCap& base = rooted_cap(4096);
  const std::vector<std::uint8_t> bytes(8, 7);
  DataCap cap = base;
  std::uint64_t page = 0;
  for (auto _ : state) {
    cap.write((page++ % 4096) * PAGE_SIZE + 100, bytes);
    if (page % 4096 == 0) {
      state.PauseTiming();
      cap = base;
      state.ResumeTiming();
    }
  }
}
BENCHMARK(BM_WritePageCowCold);

// The floor of any copy-on-write: an aligned 4 KiB allocation, a 4 KiB copy and a free.
void BM_AllocCopyFloor(benchmark::State& state) {
  const std::vector<std::uint8_t> src(PAGE_SIZE, 3);
  for (auto _ : state) {
    void* p = std::aligned_alloc(PAGE_SIZE, PAGE_SIZE);
    std::memcpy(p, src.data(), PAGE_SIZE);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
BENCHMARK(BM_AllocCopyFloor);

// Root of a freshly built, fully loaded cap (nothing cached), on 1 or 2 threads. Also reports
// the cap's metadata (tree nodes, cached hashes, page objects) as a percentage of its page bytes.
void BM_CapRootFull(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  set_hash_threads(static_cast<unsigned>(state.range(1)));
  const auto bytes = random_bytes(pages * PAGE_SIZE, pages);
  double metadata_pct = 0;
  for (auto _ : state) {
    state.PauseTiming();
    DataCap cap = DataCap::from_bytes(bytes);
    state.ResumeTiming();
    benchmark::DoNotOptimize(cap.hash_tree_root());
    state.PauseTiming();
    metadata_pct = 100.0 * static_cast<double>(cap.backing().metadata_bytes()) /
                   static_cast<double>(pages * PAGE_SIZE);
    cap = DataCap();
    state.ResumeTiming();
  }
  set_hash_threads(0);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * pages * PAGE_SIZE));
  state.counters["metadata_pct"] = metadata_pct;
}
BENCHMARK(BM_CapRootFull)
    ->ArgNames({"pages", "threads"})
    ->Args({4096, 1})
    ->Args({4096, 2})
    ->Args({262144, 1})
    ->Args({262144, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Every internal node from cached page roots: what re-hashing the whole tree per flush costs.
void BM_FullRehash(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  set_hash_threads(1);
  const DataCap& cached = rooted_cap(pages);
  for (auto _ : state) {
    state.PauseTiming();
    PageSlab fresh(cached.content_len());  // new nodes, the same (hashed) pages
    cached.backing().for_each_stored(
        [&](std::uint32_t i, const PageSlot& s) { fresh.set_page_slot(i, s); });
    state.ResumeTiming();
    benchmark::DoNotOptimize(fresh.root());
    state.PauseTiming();
    fresh = PageSlab();
    state.ResumeTiming();
  }
  set_hash_threads(0);
}
BENCHMARK(BM_FullRehash)->Arg(4096)->Arg(262144)->Unit(benchmark::kMillisecond);

// k random full-page writes on a clean shared cap, then flush + root (page hashing included).
void BM_IncrementalRoot(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  const auto k = static_cast<std::uint64_t>(state.range(1));
  set_hash_threads(1);
  const DataCap& base = rooted_cap(pages);
  std::mt19937_64 rng(7);
  std::vector<std::uint8_t> page = random_bytes(PAGE_SIZE, 9);
  std::vector<std::uint64_t> draws(std::size_t{1} << 16);  // drawn before timing, used in turn
  for (auto& v : draws) v = rng();
  std::size_t next = 0;
  for (auto _ : state) {
    DataCap cap = base;
    for (std::uint64_t i = 0; i < k; ++i) {
      const std::uint64_t v = draws[next++ & (draws.size() - 1)];
      std::memcpy(page.data(), &v, 8);
      cap.write_page((v % pages) * PAGE_SIZE, page);
    }
    cap = std::move(cap).flush();
    benchmark::DoNotOptimize(cap.hash_tree_root());
  }
  set_hash_threads(0);
}
BENCHMARK(BM_IncrementalRoot)
    ->ArgNames({"pages", "k"})
    ->ArgsProduct({{4096, 262144}, {1, 64, 4096}})
    ->Unit(benchmark::kMicrosecond);

// The same with k Missing slots of given hashes instead of pages: the tree work alone.
void BM_TreeUpdate(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  const auto k = static_cast<std::uint64_t>(state.range(1));
  set_hash_threads(1);
  const DataCap& base = rooted_cap(pages);
  std::mt19937_64 rng(11);
  std::vector<PageSlot> slots;
  for (int i = 0; i < 1024; ++i) {
    Hash32 h{};
    for (auto& b : h) b = static_cast<std::uint8_t>(rng());
    slots.push_back(PageSlot::missing(h));
  }
  // The random positions are drawn before timing (the generator is not the tree's work); 2^16
  // of them, used in turn, so successive iterations still touch different pages.
  std::vector<std::uint64_t> draws(std::size_t{1} << 16);
  for (auto& v : draws) v = rng();
  std::size_t next = 0;
  for (auto _ : state) {
    DataCap cap = base;
    for (std::uint64_t i = 0; i < k; ++i) {
      const std::uint64_t v = draws[next++ & (draws.size() - 1)];
      cap.insert_overlay_page(v % pages, slots[v % slots.size()]);
    }
    cap = std::move(cap).flush();
    benchmark::DoNotOptimize(cap.hash_tree_root());
  }
  set_hash_threads(0);
}
BENCHMARK(BM_TreeUpdate)
    ->ArgNames({"pages", "k"})
    ->ArgsProduct({{4096, 262144}, {1, 64, 4096}})
    ->Unit(benchmark::kMicrosecond);

// A 2^32-page (16 TiB) cap with 1,000 loaded pages: only their paths are hashed.
void BM_SparseRoot(benchmark::State& state) {
  std::vector<std::vector<std::uint8_t>> bytes;
  std::vector<SparsePage> pages;
  for (std::size_t i = 0; i < 1000; ++i) bytes.push_back(random_bytes(PAGE_SIZE, 100 + i));
  for (std::size_t i = 0; i < 1000; ++i) {
    pages.push_back(SparsePage{static_cast<std::uint32_t>(i * 4294967ULL + 1), bytes[i]});
  }
  for (auto _ : state) {
    state.PauseTiming();
    const DataCap cap = DataCap::from_sparse_pages(MAX_PAGE_COUNT * PAGE_SIZE, pages);
    state.ResumeTiming();
    benchmark::DoNotOptimize(cap.hash_tree_root());
  }
}
BENCHMARK(BM_SparseRoot)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace datacap
