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

namespace datacap::detail {

using HashPairsFn = void (*)(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept;

void sha256_portable_x1(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept;
#ifndef DATACAP_NO_AVX2
void sha256_avx2_x8(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept;
#endif
#ifndef DATACAP_NO_AVX512
void sha256_avx512_x16(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept;
#endif
#ifndef DATACAP_NO_SHANI
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
