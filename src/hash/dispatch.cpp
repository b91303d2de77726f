// CPU detection and the choice of SHA-256 kernel. The only file that asks the CPU.
//
// Each ISA is usable only when the CPU has it (CPUID) *and* the OS saves its registers on a
// context switch (XGETBV): a CPU with AVX-512 under an OS that does not enable ZMM state would
// fault on the first wide instruction. On any other CPU (or with DATACAP_PORTABLE_ONLY) nothing
// is asked: only the portable kernel is compiled in, and every other ISA is unavailable (see the
// DATACAP_HAVE_<ISA> switches in kernel.hpp).
//
// The choice is made once, on first use, and cached in an atomic. DATACAP_ISA in the environment
// (portable | avx2 | avx512 | shani) overrides it for tests and benchmarks; an unknown or
// unavailable value is an InvalidArgument error, never a silent fallback. set_isa() pins a
// kernel at run time.
#include "hash/kernel.hpp"

#if DATACAP_HAVE_SIMD
#include <cpuid.h>
#endif

#include <atomic>
#include <cstdlib>
#include <string>

#include "common/thread_pool.hpp"
#include "datacap/error.hpp"

namespace datacap {
namespace detail {
namespace {

#if DATACAP_HAVE_SIMD
struct CpuFeatures {
  bool avx2 = false;
  bool avx512 = false;  // F + BW, with ZMM state enabled
  bool shani = false;   // SHA + SSE4.1 + SSSE3
};

std::uint64_t xgetbv0() {
  std::uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (std::uint64_t{hi} << 32) | lo;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(1, 0, eax, ebx, ecx, edx);
  const bool ssse3 = (ecx >> 9) & 1, sse41 = (ecx >> 19) & 1, osxsave = (ecx >> 27) & 1,
             avx = (ecx >> 28) & 1;
  const std::uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // XMM + YMM
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = (ebx >> 5) & 1, avx512f = (ebx >> 16) & 1, sha = (ebx >> 29) & 1,
             avx512bw = (ebx >> 30) & 1;
  f.avx2 = avx && avx2 && ymm_state;
  f.avx512 = f.avx2 && avx512f && avx512bw && zmm_state;
  f.shani = sha && sse41 && ssse3;
  return f;
}

const CpuFeatures& cpu() {
  static const CpuFeatures features = detect();
  return features;
}
#endif  // DATACAP_HAVE_SIMD

std::atomic<HashPairsFn> g_kernel{nullptr};
// For calls with fewer pairs than the wide kernel has lanes: a wide kernel pays for all its
// lanes whatever the count, so a short call (the path above one changed page: six levels of
// one pair each, per node) is cheaper on a narrow kernel.
std::atomic<HashPairsFn> g_small_kernel{nullptr};
std::atomic<std::size_t> g_small_below{0};
std::atomic<int> g_isa{-1};

// Preference when nothing is pinned: the fastest kernel measured on x86 with each feature
// (see BENCHMARKS.md, BM_PairHash/<isa>); the portable kernel when none is available.
constexpr Isa PREFERENCE[] = {Isa::avx512, Isa::shani, Isa::avx2};

// DATACAP_ISA, or nullptr when it is unset or empty.
const char* env_isa() {
  const char* env = std::getenv("DATACAP_ISA");
  return env != nullptr && *env != '\0' ? env : nullptr;
}

Isa choose() {
  if (const char* env = env_isa()) {
    const Isa isa = parse_isa(env);
    if (!isa_available(isa)) {
      throw InvalidArgument(std::string("DATACAP_ISA=") + env +
                            ": this CPU (or build) does not support it");
    }
    return isa;
  }
  for (Isa isa : PREFERENCE) {
    if (isa_available(isa)) return isa;
  }
  return Isa::portable;
}

}  // namespace

HashPairsFn sha256_kernel_for(Isa isa) noexcept {
  switch (isa) {
    case Isa::portable:
      return sha256_portable_x1;
#if DATACAP_HAVE_AVX2
    case Isa::avx2:
      return cpu().avx2 ? sha256_avx2_x8 : nullptr;
#endif
#if DATACAP_HAVE_AVX512
    case Isa::avx512:
      return cpu().avx512 ? sha256_avx512_x16 : nullptr;
#endif
#if DATACAP_HAVE_SHANI
    case Isa::shani:
      return cpu().shani ? sha256_shani_x2 : nullptr;
#endif
    default:
      return nullptr;  // not compiled in (or not an Isa)
  }
}

HashPairsFn sha256_kernel() {
  HashPairsFn fn = g_kernel.load(std::memory_order_acquire);
  if (fn != nullptr) return fn;
  const Isa isa = choose();
  fn = sha256_kernel_for(isa);
  configure_small_kernel(isa, env_isa() != nullptr);
  HashPairsFn expected = nullptr;
  if (g_kernel.compare_exchange_strong(expected, fn, std::memory_order_acq_rel)) {
    g_isa.store(static_cast<int>(isa), std::memory_order_release);
    return fn;
  }
  return expected;  // another thread chose (or a pin happened) first
}

void configure_small_kernel(Isa isa, bool pinned) noexcept {
  // Measured crossovers (BM_PairHashSmall): SHA-NI costs ~65 ns a pair while a partly filled
  // AVX-512 group costs ~550 ns whatever its count, so SHA-NI wins below 8 pairs; without SHA-NI,
  // the portable kernel wins only for a single pair (450 ns vs 530 ns AVX-512, 750 ns AVX2).
  // A pinned ISA (DATACAP_ISA, set_isa) runs alone, so tests and benchmarks see that kernel.
  HashPairsFn small = nullptr;
  std::size_t below = 0;
  if (!pinned && (isa == Isa::avx512 || isa == Isa::avx2)) {
    if (HashPairsFn shani = sha256_kernel_for(Isa::shani); shani != nullptr && isa == Isa::avx512) {
      small = shani;
      below = 8;
    } else {
      small = sha256_portable_x1;
      below = 2;
    }
  }
  g_small_below.store(0, std::memory_order_relaxed);
  g_small_kernel.store(small, std::memory_order_relaxed);
  g_small_below.store(below, std::memory_order_release);
}

void sha256_pairs(std::uint8_t* out, const std::uint8_t* in, std::size_t count) {
  HashPairsFn fn = g_kernel.load(std::memory_order_acquire);
  if (fn == nullptr) fn = sha256_kernel();
  if (count < g_small_below.load(std::memory_order_acquire)) {
    g_small_kernel.load(std::memory_order_relaxed)(out, in, count);
    return;
  }
  fn(out, in, count);
}

}  // namespace detail

const char* to_string(Isa isa) noexcept {
  switch (isa) {
    case Isa::portable:
      return "portable";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::shani:
      return "shani";
  }
  return "?";
}

Isa parse_isa(std::string_view name) {
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512, Isa::shani}) {
    if (name == to_string(isa)) return isa;
  }
  throw InvalidArgument("unknown ISA '" + std::string(name) +
                        "' (expected portable, avx2, avx512 or shani)");
}

bool isa_available(Isa isa) noexcept { return detail::sha256_kernel_for(isa) != nullptr; }

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::portable, Isa::avx2, Isa::avx512, Isa::shani}) {
    if (isa_available(isa)) out.push_back(isa);
  }
  return out;
}

Isa active_isa() {
  (void)detail::sha256_kernel();
  int isa = detail::g_isa.load(std::memory_order_acquire);
  while (isa < 0) isa = detail::g_isa.load(std::memory_order_acquire);  // a racing first choice
  return static_cast<Isa>(isa);
}

void set_isa(Isa isa) {
  const detail::HashPairsFn fn = detail::sha256_kernel_for(isa);
  if (fn == nullptr) {
    throw InvalidArgument(std::string("set_isa: ") + to_string(isa) +
                          " is not supported by this CPU (or build)");
  }
  detail::g_small_below.store(0, std::memory_order_release);
  detail::g_isa.store(static_cast<int>(isa), std::memory_order_release);
  detail::g_kernel.store(fn, std::memory_order_release);
  detail::configure_small_kernel(isa, /*pinned=*/true);
}

// The hashing threads are the process's thread pool: large root computations are its only user.
void set_hash_threads(unsigned threads) { detail::set_pool_threads(threads); }
unsigned hash_threads() noexcept { return detail::pool_threads(); }

}  // namespace datacap
