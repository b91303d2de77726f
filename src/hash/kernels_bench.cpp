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

#if DATACAP_HAVE_AVX2
#include <immintrin.h>
#endif

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

// The ceiling of the AVX2 ports for the AVX2 kernel's mix of operations. Per 36 vector
// operations: 12 shifts (which only two of the three vector ports execute), one byte shuffle and
// 23 XORs and ADDs, as in the kernel, but spread over 12 independent chains, so that no
// operation ever waits for a result. Reported as vector operations per second; bench/report.py
// divides it by the kernel's own count of vector operations per 8 pairs (read from its object
// code) to give the pairs/s that no AVX2 kernel doing that much work can exceed here, and how
// close the real kernel, whose rounds do wait on one another, comes to it.
#if DATACAP_HAVE_AVX2
__attribute__((target("avx2"))) void BM_Avx2PortCeiling(benchmark::State& state) {
  constexpr long ROUNDS = 1 << 16;
  constexpr double OPS_PER_ROUND = 36;
  __m256i v0 = _mm256_set1_epi32(1), v1 = _mm256_set1_epi32(2), v2 = _mm256_set1_epi32(3);
  __m256i v3 = _mm256_set1_epi32(4), v4 = _mm256_set1_epi32(5), v5 = _mm256_set1_epi32(6);
  __m256i v6 = _mm256_set1_epi32(7), v7 = _mm256_set1_epi32(8), v8 = _mm256_set1_epi32(9);
  __m256i v9 = _mm256_set1_epi32(10), v10 = _mm256_set1_epi32(11), v11 = _mm256_set1_epi32(12);
  const __m256i x = _mm256_set1_epi32(0x12345678), y = _mm256_set1_epi32(0x0badcafe);
  const __m256i bytes = _mm256_set1_epi32(0x00030201);
  for (auto _ : state) {
    for (long r = 0; r < ROUNDS; ++r) {
// One line per operation kind (macros that clang-format would run together).
// clang-format off
#define DATACAP_EACH(op) op(v0) op(v1) op(v2) op(v3) op(v4) op(v5) op(v6) op(v7) op(v8) op(v9) op(v10)
#define DATACAP_SHIFT(a) a = _mm256_srli_epi32(a, 3);
#define DATACAP_XOR(a) a = _mm256_xor_si256(a, x);
#define DATACAP_ADD(a) a = _mm256_add_epi32(a, y);
      DATACAP_EACH(DATACAP_SHIFT) DATACAP_SHIFT(v11)
      DATACAP_EACH(DATACAP_XOR) DATACAP_XOR(v11)
      DATACAP_EACH(DATACAP_ADD)
      v11 = _mm256_shuffle_epi8(v11, bytes);
// clang-format on
#undef DATACAP_ADD
#undef DATACAP_XOR
#undef DATACAP_SHIFT
#undef DATACAP_EACH
      // Keeps the 36 operations as written (no folding across rounds) and in registers.
      asm volatile(""
                   : "+x"(v0), "+x"(v1), "+x"(v2), "+x"(v3), "+x"(v4), "+x"(v5), "+x"(v6), "+x"(v7),
                     "+x"(v8), "+x"(v9), "+x"(v10), "+x"(v11));
    }
  }
  __m256i all =
      _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(v0, v1), _mm256_xor_si256(v2, v3)),
                       _mm256_xor_si256(_mm256_xor_si256(v4, v5), _mm256_xor_si256(v6, v7)));
  all =
      _mm256_xor_si256(all, _mm256_xor_si256(_mm256_xor_si256(v8, v9), _mm256_xor_si256(v10, v11)));
  benchmark::DoNotOptimize(all);
  state.counters["ops/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * ROUNDS * OPS_PER_ROUND,
                         benchmark::Counter::kIsRate);
}
#endif

// One registration per ISA this CPU has (a missing ISA is simply not listed).
const bool registered = [] {
  for (Isa isa : available_isas()) {
    benchmark::RegisterBenchmark(
        (std::string("BM_PairHash/") + to_string(isa)).c_str(),
        [isa](benchmark::State& s) { pair_hash(s, sha256_kernel_for(isa)); })
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark((std::string("BM_PageRoot/") + to_string(isa)).c_str(),
                                 [isa](benchmark::State& s) { page_root_bench(s, isa); })
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(
        (std::string("BM_PairHashSmall/") + to_string(isa)).c_str(),
        [isa](benchmark::State& s) { pair_hash_small(s, sha256_kernel_for(isa)); })
        ->Arg(1)
        ->Arg(2)
        ->Arg(4)
        ->Arg(8)
        ->Arg(16);
  }
#if DATACAP_HAVE_AVX2
  if (isa_available(Isa::avx2)) {
    benchmark::RegisterBenchmark("BM_Avx2PortCeiling", BM_Avx2PortCeiling)
        ->Unit(benchmark::kMillisecond);
  }
#endif
  return true;
}();

}  // namespace
}  // namespace datacap::detail
