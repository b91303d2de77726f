// End-to-end benchmarks of cap operations: copy, lookup, copy-on-write, and roots.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

DataCap full_cap(std::uint64_t pages) {
  DataCap cap = DataCap::zeroed(pages * PAGE_SIZE);
  std::vector<std::uint8_t> page(PAGE_SIZE);
  std::mt19937_64 rng(pages);
  for (std::uint64_t i = 0; i < pages; ++i) {
    for (std::size_t k = 0; k < PAGE_SIZE; k += 8) {
      const std::uint64_t v = rng();
      std::memcpy(page.data() + k, &v, 8);
    }
    cap.put_page(i * PAGE_SIZE, page);
  }
  return cap;
}

void BM_Copy(benchmark::State& state) {
  const DataCap cap = full_cap(static_cast<std::uint64_t>(state.range(0)));
  for (auto _ : state) {
    DataCap copy = cap;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_Copy)->Arg(4096)->Arg(262144);

void BM_PageAtRandom(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  DataCap cap = full_cap(pages);
  std::mt19937_64 rng(1);
  if (state.range(1) != 0) {  // 10% of pages dirty
    for (std::uint64_t i = 0; i < pages / 10; ++i) cap.write((rng() % pages) * PAGE_SIZE, std::vector<std::uint8_t>(8, 1));
  }
  std::vector<std::uint64_t> offsets(1 << 16);
  for (auto& o : offsets) o = rng() % (pages * PAGE_SIZE);
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cap.page_at(offsets[i++ & (offsets.size() - 1)]).data);
  }
}
BENCHMARK(BM_PageAtRandom)->Args({4096, 0})->Args({262144, 0})->Args({262144, 1});

void BM_WritePageCow(benchmark::State& state) {
  const DataCap base = full_cap(4096);
  const std::vector<std::uint8_t> bytes(8, 7);
  DataCap cap = base;
  std::uint64_t page = 0;
  for (auto _ : state) {
    // An 8-byte store into a page the cap shares with its base: one page copy.
    cap.write((page++ % 4096) * PAGE_SIZE + 100, bytes);
    if (page % 4096 == 0) {
      state.PauseTiming();
      cap = base;
      state.ResumeTiming();
    }
  }
}
BENCHMARK(BM_WritePageCow);

void BM_AllocCopyFloor(benchmark::State& state) {
  std::vector<std::uint8_t> src(PAGE_SIZE, 3);
  for (auto _ : state) {
    void* p = std::aligned_alloc(PAGE_SIZE, PAGE_SIZE);
    std::memcpy(p, src.data(), PAGE_SIZE);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
BENCHMARK(BM_AllocCopyFloor);

void BM_CapRootFull(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    DataCap cap = full_cap(pages);  // fresh: nothing cached
    state.ResumeTiming();
    benchmark::DoNotOptimize(cap.hash_tree_root());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * pages * PAGE_SIZE));
}
BENCHMARK(BM_CapRootFull)->Arg(4096)->Unit(benchmark::kMillisecond);

void BM_IncrementalRoot(benchmark::State& state) {
  const auto pages = static_cast<std::uint64_t>(state.range(0));
  const auto k = static_cast<std::uint64_t>(state.range(1));
  const DataCap base = full_cap(pages);
  (void)base.hash_tree_root();
  std::mt19937_64 rng(7);
  std::vector<std::uint8_t> page(PAGE_SIZE, 9);
  for (auto _ : state) {
    DataCap cap = base;
    for (std::uint64_t i = 0; i < k; ++i) {
      page[0] = static_cast<std::uint8_t>(rng());
      cap.write_page((rng() % pages) * PAGE_SIZE, page);
    }
    cap = std::move(cap).flush();
    benchmark::DoNotOptimize(cap.hash_tree_root());
  }
}
BENCHMARK(BM_IncrementalRoot)->Args({4096, 1})->Args({4096, 64})->Args({262144, 1})->Args({262144, 64})->Unit(benchmark::kMicrosecond);

void BM_SparseRoot(benchmark::State& state) {
  std::mt19937_64 rng(3);
  std::vector<std::vector<std::uint8_t>> bytes(1000, std::vector<std::uint8_t>(PAGE_SIZE, 5));
  std::vector<SparsePage> pages;
  std::vector<std::uint32_t> used;
  for (std::size_t i = 0; i < 1000; ++i) {
    bytes[i][0] = static_cast<std::uint8_t>(i);
    bytes[i][1] = static_cast<std::uint8_t>(i >> 8);
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
