// Proofs and diffs on a 1 GiB cap (262,144 random pages) whose hashes are cached.
#include <benchmark/benchmark.h>

#include <random>

#include "datacap/datacap.hpp"
#include "support/caps.hpp"

namespace datacap {
namespace {

constexpr std::uint64_t GIB_PAGES = 262144;

// Build a proof of a random page and verify it against the root.
void BM_PageProof(benchmark::State& state) {
  const DataCap& cap = bench::rooted_cap(GIB_PAGES);
  const Hash32 root = cap.hash_tree_root();
  std::mt19937_64 rng(3);
  for (auto _ : state) {
    const PageProof proof = prove_page(cap, rng() % GIB_PAGES);
    if (!verify_page_proof(proof, root)) state.SkipWithError("proof did not verify");
  }
}
BENCHMARK(BM_PageProof);

// A multiproof of 64 random pages, built and verified.
void BM_MultiProof64(benchmark::State& state) {
  const DataCap& cap = bench::rooted_cap(GIB_PAGES);
  const Hash32 root = cap.hash_tree_root();
  std::mt19937_64 rng(4);
  for (auto _ : state) {
    std::vector<std::uint64_t> pages;
    for (int k = 0; k < 64; ++k) pages.push_back(rng() % GIB_PAGES);
    std::sort(pages.begin(), pages.end());
    pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
    const MultiProof proof = prove_pages(cap, pages);
    if (!verify_multiproof(proof, root)) state.SkipWithError("multiproof did not verify");
  }
}
BENCHMARK(BM_MultiProof64)->Unit(benchmark::kMicrosecond);

// 64 random pages rewritten in `b`; both roots known before timing. shared=1: b is a copy of a
// (unchanged subtrees are the same objects); shared=0: b was built separately from the same
// bytes, so every comparison is by hash.
void BM_Diff(benchmark::State& state) {
  const bool shared = state.range(0) != 0;
  const DataCap& a = bench::rooted_cap(GIB_PAGES);
  static DataCap separate;
  if (!shared && separate.page_count() == 0) separate = bench::full_cap(GIB_PAGES);
  DataCap b = shared ? a : separate;
  std::mt19937_64 rng(5);
  std::vector<std::uint8_t> page(PAGE_SIZE, 0x5A);
  for (int k = 0; k < 64; ++k) {
    page[0] = static_cast<std::uint8_t>(k);
    b.write_page((rng() % GIB_PAGES) * PAGE_SIZE, page);
  }
  b = std::move(b).flush();
  (void)a.hash_tree_root();
  (void)b.hash_tree_root();
  std::size_t found = 0;
  for (auto _ : state) {
    const std::vector<std::uint64_t> d = diff_pages(a, b);
    found = d.size();
    benchmark::DoNotOptimize(d.data());
  }
  state.counters["differing_pages"] = static_cast<double>(found);
}
BENCHMARK(BM_Diff)->ArgName("shared")->Arg(1)->Arg(0)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace datacap
