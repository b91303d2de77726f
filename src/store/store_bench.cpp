// The LMDB page store with a 1 GiB cap (262,144 random pages): saving, saving again, hydrating.
// The store lives in the system temp directory (the disk there is what is measured: LMDB syncs
// every commit).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <random>

#include "datacap/datacap.hpp"
#include "support/caps.hpp"

namespace datacap {
namespace {

namespace fs = std::filesystem;
constexpr std::uint64_t GIB_PAGES = 262144;

fs::path bench_dir(const char* name) {
  return fs::temp_directory_path() /
         ("datacap_bench_" + std::string(name) + "_" + std::to_string(::getpid()));
}

// First save of a freshly built cap (no cached hashes: page hashing included) into an empty
// store. The store is recreated before each iteration, outside the timing.
void BM_StorePut(benchmark::State& state) {
  const fs::path dir = bench_dir("put");
  const auto bytes = bench::random_bytes(GIB_PAGES * PAGE_SIZE, 11);
  for (auto _ : state) {
    state.PauseTiming();
    fs::remove_all(dir);
    std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
    DataCap cap = DataCap::from_bytes(bytes);
    state.ResumeTiming();
    benchmark::DoNotOptimize(store->save_cap(cap));
    state.PauseTiming();
    store.reset();
    cap = DataCap();
    state.ResumeTiming();
  }
  fs::remove_all(dir);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * GIB_PAGES * PAGE_SIZE));
}
BENCHMARK(BM_StorePut)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();

// Saving the same content again into the store that holds it:
//   case 0: a separately built cap of the same bytes (every page hashed again, then each found
//           already stored);
//   case 1: the same cap object (its root is cached, so its saved record is found at once);
//   case 2: a new cap sharing the same pages with one more Empty page at the end (another
//           root: every page is looked up and found stored; page roots cached).
void BM_StorePutAgain(benchmark::State& state) {
  const int variant = static_cast<int>(state.range(0));
  const bool same_cap = variant == 1;
  const fs::path dir = bench_dir("again");
  fs::remove_all(dir);
  const auto bytes = bench::random_bytes(GIB_PAGES * PAGE_SIZE, 12);
  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  const DataCap first = DataCap::from_bytes(bytes);
  (void)store->save_cap(first);
  for (auto _ : state) {
    if (same_cap) {
      benchmark::DoNotOptimize(store->save_cap(first));
      continue;
    }
    if (variant == 2) {
      state.PauseTiming();
      DataCap longer = DataCap::zeroed(first.content_len() + PAGE_SIZE);
      longer.place_shared(0, first);
      state.ResumeTiming();
      benchmark::DoNotOptimize(store->save_cap(longer));
      continue;
    }
    state.PauseTiming();
    DataCap again = DataCap::from_bytes(bytes);
    state.ResumeTiming();
    benchmark::DoNotOptimize(store->save_cap(again));
    state.PauseTiming();
    again = DataCap();
    state.ResumeTiming();
  }
  fs::remove_all(dir);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * GIB_PAGES * PAGE_SIZE));
}
BENCHMARK(BM_StorePutAgain)
    ->ArgName("case")
    ->Arg(0)
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// 1,000 random Missing pages of a 1 GiB cap resolved from the store: fetch, check each against
// its hash, put it in place. Each iteration hydrates a fresh O(1) copy of the elided cap.
void BM_Hydrate1000(benchmark::State& state) {
  const fs::path dir = bench_dir("hydrate");
  fs::remove_all(dir);
  const DataCap& full = bench::rooted_cap(GIB_PAGES);
  const std::unique_ptr<PageStore> store = open_lmdb_store(dir.string());
  (void)store->save_cap(full);
  std::mt19937_64 rng(13);
  std::vector<std::uint64_t> chosen;
  while (chosen.size() < 1000) {
    chosen.push_back(rng() % GIB_PAGES);
    std::sort(chosen.begin(), chosen.end());
    chosen.erase(std::unique(chosen.begin(), chosen.end()), chosen.end());
  }
  DataCap elided = full;
  elided.elide_pages(chosen);
  (void)elided.hash_tree_root();
  std::uint64_t hydrated = 0;
  for (auto _ : state) {
    DataCap cap = elided;
    hydrated = hydrate(cap, *store).hydrated;
    benchmark::DoNotOptimize(cap);
  }
  if (hydrated != 1000) state.SkipWithError("not every page was hydrated");
  fs::remove_all(dir);
}
BENCHMARK(BM_Hydrate1000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace datacap
