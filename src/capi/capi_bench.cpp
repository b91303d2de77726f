// The C API's per-call overhead: datacap_cap_page_at against DataCap::page_at, the same random
// lookups into the same 1 GiB cap (issue 13: ≤ 10 ns more per call).
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "capi/boundary.hpp"
#include "datacap/datacap.h"
#include "datacap/datacap.hpp"
#include "support/caps.hpp"

namespace datacap {
namespace {

constexpr std::uint64_t GIB_PAGES = 262144;

std::vector<std::uint64_t> random_offsets() {
  std::mt19937_64 rng(11);
  std::vector<std::uint64_t> offsets(1 << 16);
  for (auto& offset : offsets) offset = rng() % (GIB_PAGES * PAGE_SIZE);
  return offsets;
}

void BM_CppPageAt(benchmark::State& state) {
  const DataCap& cap = bench::rooted_cap(GIB_PAGES);
  const std::vector<std::uint64_t> offsets = random_offsets();
  std::size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(cap.page_at(offsets[i++ & (offsets.size() - 1)]).data);
  }
}
BENCHMARK(BM_CppPageAt);

void BM_CApiPageAt(benchmark::State& state) {
  const datacap_cap handle{bench::rooted_cap(GIB_PAGES)};  // shares the pages: O(1)
  const std::vector<std::uint64_t> offsets = random_offsets();
  std::size_t i = 0;
  datacap_page page;
  for (auto _ : state) {
    if (datacap_cap_page_at(&handle, offsets[i++ & (offsets.size() - 1)], &page) != DATACAP_OK) {
      state.SkipWithError("datacap_cap_page_at failed");
      break;
    }
    benchmark::DoNotOptimize(page.data);
  }
}
BENCHMARK(BM_CApiPageAt);

}  // namespace
}  // namespace datacap
