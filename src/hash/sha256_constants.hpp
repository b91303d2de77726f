// Internal: SHA-256 constants shared by every kernel, and the precomputed schedule of the
// padding block.
//
// Why precompute: every input is exactly 64 bytes, so the second block of every message is the
// same — 0x80, zeros, and the bit length 512. Its 64 schedule words W[t] never change, so the
// kernels use K[t] + W[t] from this table and skip the schedule for that block entirely.
#pragma once

#include <array>
#include <cstdint>

namespace datacap::detail::sha256 {

inline constexpr std::array<std::uint32_t, 64> K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

inline constexpr std::array<std::uint32_t, 8> H0 = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

constexpr std::uint32_t rotr(std::uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }
constexpr std::uint32_t small_sigma0(std::uint32_t x) {
  return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3);
}
constexpr std::uint32_t small_sigma1(std::uint32_t x) {
  return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10);
}
constexpr std::uint32_t big_sigma0(std::uint32_t x) {
  return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22);
}
constexpr std::uint32_t big_sigma1(std::uint32_t x) {
  return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25);
}

// K[t] + W[t] for the padding block of a 64-byte message.
constexpr std::array<std::uint32_t, 64> make_padding_kw() {
  std::array<std::uint32_t, 64> w{};
  w[0] = 0x80000000u;
  w[15] = 512;  // message length in bits
  for (int t = 16; t < 64; ++t) {
    w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];
  }
  std::array<std::uint32_t, 64> kw{};
  for (int t = 0; t < 64; ++t) kw[t] = K[t] + w[t];
  return kw;
}

inline constexpr std::array<std::uint32_t, 64> PADDING_KW = make_padding_kw();

// A constant table's address, hidden from the optimizer. Seeing a table's values, GCC builds
// each constant the SIMD kernels use in a register (a move and a broadcast: ALU work on the
// ports the rounds need) instead of reading it as a memory operand of the add that uses it.
template <class T>
inline const T* opaque(const T* table) {
  asm("" : "+r"(table));
  return table;
}

}  // namespace datacap::detail::sha256

// Rounds t .. t+7 for a SIMD kernel, the state rotating through the arguments. The kernel
// defines DATACAP_ROUND(a, b, c, d, e, f, g, h, kw) for its ISA and KW(j), K[j] + W[j] of the
// block being hashed, around each use.
#define DATACAP_EIGHT_ROUNDS(t)                       \
  do {                                                \
    DATACAP_ROUND(a, b, c, d, e, f, g, h, KW(t + 0)); \
    DATACAP_ROUND(h, a, b, c, d, e, f, g, KW(t + 1)); \
    DATACAP_ROUND(g, h, a, b, c, d, e, f, KW(t + 2)); \
    DATACAP_ROUND(f, g, h, a, b, c, d, e, KW(t + 3)); \
    DATACAP_ROUND(e, f, g, h, a, b, c, d, KW(t + 4)); \
    DATACAP_ROUND(d, e, f, g, h, a, b, c, KW(t + 5)); \
    DATACAP_ROUND(c, d, e, f, g, h, a, b, KW(t + 6)); \
    DATACAP_ROUND(b, c, d, e, f, g, h, a, KW(t + 7)); \
  } while (0)
