// Internal: the one SHA-256 kernel signature and the kernel table.
//
// A kernel hashes `count` independent 64-byte messages (two 32-byte chunks: one merkle pair)
// into `count` 32-byte digests: exactly one merkle level. Kernels are named
// sha256_<isa>_x<lanes>; each lives in its own file, the only file compiled with its ISA's
// flags, so no wide instruction can run before dispatch has checked the CPU.
//
// Preconditions (unchecked; kernels are noexcept and reached only through validated paths):
//  - `in` holds 64 * count bytes, `out` has room for 32 * count bytes;
//  - `out` either does not overlap `in` or equals it (a kernel reads all inputs of a group of
//    lanes before writing that group's outputs, and output k never reaches input k+1).
#pragma once

#include <cstddef>
#include <cstdint>

#include "datacap/hash.hpp"

// Which kernels this build has, as 0/1 for #if; every x86-only line (cpuid.h, XGETBV,
// intrinsics, a reference to an x86 kernel) sits behind one of these. The SIMD kernels exist
// only on x86; DATACAP_PORTABLE_ONLY (the CMake option of that name) compiles as for any other
// CPU, so that path is built and tested on x86 too; DATACAP_NO_<ISA> (CMake) leaves one out.
// CMake compiles a kernel's file exactly when its DATACAP_HAVE_<ISA> below is 1.
#if (defined(__x86_64__) || defined(__i386__)) && !defined(DATACAP_PORTABLE_ONLY)
#define DATACAP_X86 1
#else
#define DATACAP_X86 0
#endif
#if DATACAP_X86 && !defined(DATACAP_NO_AVX2)
#define DATACAP_HAVE_AVX2 1
#else
#define DATACAP_HAVE_AVX2 0
#endif
#if DATACAP_X86 && !defined(DATACAP_NO_AVX512)
#define DATACAP_HAVE_AVX512 1
#else
#define DATACAP_HAVE_AVX512 0
#endif
#if DATACAP_X86 && !defined(DATACAP_NO_SHANI)
#define DATACAP_HAVE_SHANI 1
#else
#define DATACAP_HAVE_SHANI 0
#endif
// Whether dispatch has any CPU feature to ask about.
#define DATACAP_HAVE_SIMD (DATACAP_HAVE_AVX2 || DATACAP_HAVE_AVX512 || DATACAP_HAVE_SHANI)

namespace datacap::detail {

using HashPairsFn = void (*)(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept;

void sha256_portable_x1(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept;
#if DATACAP_HAVE_AVX2
void sha256_avx2_x8(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept;
#endif
#if DATACAP_HAVE_AVX512
void sha256_avx512_x16(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept;
#endif
#if DATACAP_HAVE_SHANI
void sha256_shani_x2(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept;
#endif

// The kernel for `isa`, or nullptr when it is not compiled in or the CPU (or OS) lacks it.
HashPairsFn sha256_kernel_for(Isa isa) noexcept;
// The active SHA-256 kernel (chosen once; see dispatch.cpp).
HashPairsFn sha256_kernel();
// Hashes pairs with the active kernel, or with a narrower one when count is too small to fill
// the active kernel's lanes (same bytes either way).
void sha256_pairs(std::uint8_t* out, const std::uint8_t* in, std::size_t count);
// Chooses the narrow kernel that sha256_pairs uses beside `isa`'s for short calls.
void configure_small_kernel(Isa isa, bool pinned) noexcept;

}  // namespace datacap::detail
