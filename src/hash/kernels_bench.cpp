// Pair-hashing throughput per kernel (BM_PairHash/<isa>) against OpenSSL's SHA-256 called once
// per 64-byte message (BM_OpenSSLPairHash): 65,536 pairs per iteration, one core.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "datacap/datacap.hpp"
#include "hash/kernel.hpp"
#include "tree/merkle.hpp"

namespace datacap::detail {
namespace {

constexpr std::size_t PAIRS = 65536;

std::vector<std::uint8_t> random_input() {
  std::vector<std::uint8_t> in(64 * PAIRS);
  std::mt19937_64 rng(1);
  for (auto& b : in) b = static_cast<std::uint8_t>(rng());
  return in;
}

void pair_hash(benchmark::State& state, HashPairsFn fn) {
  const auto in = random_input();
  std::vector<std::uint8_t> out(32 * PAIRS);
  for (auto _ : state) {
    fn(out.data(), in.data(), PAIRS);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["pairs/s"] = benchmark::Counter(static_cast<double>(state.iterations() * PAIRS),
                                                 benchmark::Counter::kIsRate);
}

void BM_OpenSSLPairHash(benchmark::State& state) {
  const auto in = random_input();
  std::vector<std::uint8_t> out(32 * PAIRS);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  for (auto _ : state) {
    for (std::size_t i = 0; i < PAIRS; ++i) {
      unsigned int len = 0;
      EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
      EVP_DigestUpdate(ctx.get(), in.data() + 64 * i, 64);
      EVP_DigestFinal_ex(ctx.get(), out.data() + 32 * i, &len);
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["pairs/s"] = benchmark::Counter(static_cast<double>(state.iterations() * PAIRS),
                                                 benchmark::Counter::kIsRate);
}
BENCHMARK(BM_OpenSSLPairHash)->Unit(benchmark::kMillisecond);

void page_root_bench(benchmark::State& state, Isa isa) {
  set_isa(isa);
  constexpr std::size_t PAGES = 256;
  std::vector<std::uint8_t> pages(PAGES * PAGE_SIZE);
  std::mt19937_64 rng(2);
  for (auto& b : pages) b = static_cast<std::uint8_t>(rng());
  std::vector<Hash32> roots(PAGES);
  std::vector<const std::uint8_t*> pointers(PAGES);
  for (std::size_t i = 0; i < PAGES; ++i) pointers[i] = pages.data() + i * PAGE_SIZE;
  for (auto _ : state) {
    page_roots(Digest::sha256, pointers.data(), PAGES, roots.data());
    benchmark::DoNotOptimize(roots.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * PAGES * PAGE_SIZE));
}

// Short calls (1..16 pairs): where a narrow kernel beats a partly filled wide one. These
// figures set the crossovers in dispatch.cpp.
void pair_hash_small(benchmark::State& state, HashPairsFn fn) {
  const auto count = static_cast<std::size_t>(state.range(0));
  const auto in = random_input();
  std::vector<std::uint8_t> out(32 * PAIRS);
  std::size_t at = 0;
  for (auto _ : state) {
    fn(out.data() + 32 * at, in.data() + 64 * at, count);
    at = (at + count) % (PAIRS - 16);
    benchmark::ClobberMemory();
  }
}

// One registration per ISA this CPU has (a missing ISA is simply not listed).
const bool registered = [] {
  for (Isa isa : available_isas()) {
    benchmark::RegisterBenchmark((std::string("BM_PairHash/") + to_string(isa)).c_str(),
                                 [isa](benchmark::State& s) { pair_hash(s, sha256_kernel_for(isa)); })
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((std::string("BM_PageRoot/") + to_string(isa)).c_str(),
                                 [isa](benchmark::State& s) { page_root_bench(s, isa); })
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((std::string("BM_PairHashSmall/") + to_string(isa)).c_str(),
                                 [isa](benchmark::State& s) { pair_hash_small(s, sha256_kernel_for(isa)); })
        ->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16);
  }
  return true;
}();

}  // namespace
}  // namespace datacap::detail
