// SHA-256 of 64-byte messages, 8 at a time in the 32-bit lanes of AVX2 registers.
// Compiled with -mavx2 (this file only). AVX2 lacks rotates and three-input logic, so each
// rotate is two shifts and an OR.
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "hash/kernel.hpp"
#include "hash/sha256_constants.hpp"

namespace datacap::detail {
namespace {

using namespace sha256;
constexpr std::size_t LANES = 8;

// Round constants already broadcast to all lanes, in memory: an add then takes one as a memory
// operand, where _mm256_set1_epi32 of a constant costs a move and a broadcast (two ALU
// operations competing with the rounds for the vector ports) each time it is used.
struct alignas(32) Broadcast {
  std::uint32_t lane[LANES];
};
template <std::size_t N>
constexpr std::array<Broadcast, N> broadcast(const std::array<std::uint32_t, N>& words) {
  std::array<Broadcast, N> out{};
  for (std::size_t i = 0; i < N; ++i) {
    for (std::size_t l = 0; l < LANES; ++l) out[i].lane[l] = words[i];
  }
  return out;
}
constexpr std::array<Broadcast, 64> K_LANES = broadcast(K);
constexpr std::array<Broadcast, 64> PADDING_KW_LANES = broadcast(PADDING_KW);
constexpr std::array<Broadcast, 8> H0_LANES = broadcast(H0);

// Round 0 of the first block starts from the constant initial state, so all of it but the
// message word folds into two constants: the new e is W[0] + E0 and the new a is W[0] + A0.
constexpr std::uint32_t ROUND0_T1 =
    H0[7] + big_sigma1(H0[4]) + ((H0[4] & H0[5]) ^ (~H0[4] & H0[6])) + K[0];
constexpr std::uint32_t ROUND0_T2 =
    big_sigma0(H0[0]) + ((H0[0] & H0[1]) ^ (H0[0] & H0[2]) ^ (H0[1] & H0[2]));
// E0, A0, and a ^ b of round 0 (the next round's b ^ c).
constexpr std::array<Broadcast, 3> ROUND0_LANES = broadcast(
    std::array<std::uint32_t, 3>{H0[3] + ROUND0_T1, ROUND0_T1 + ROUND0_T2, H0[0] ^ H0[1]});

inline __m256i lanes(const Broadcast& b) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(b.lane));
}

inline __m256i add(__m256i a, __m256i b) { return _mm256_add_epi32(a, b); }
inline __m256i xor3(__m256i a, __m256i b, __m256i c) {
  return _mm256_xor_si256(_mm256_xor_si256(a, b), c);
}
template <int N>
inline __m256i ror(__m256i x) {
  return _mm256_or_si256(_mm256_srli_epi32(x, N), _mm256_slli_epi32(x, 32 - N));
}

// Rotating by a whole number of bytes is one byte shuffle (ports 1 and 5), not two shifts and
// an OR. Sigma1(e) = ROTR6(e) ^ ROTR11(e) ^ ROTR25(e) takes three rotations as written; but with
// r = ROTR11(e), ROTR25(e) = ROTR14(r) and ROTR6(e) = ROTR14(ROTR24(e)), so
//   Sigma1(e) = r ^ ROTR14(r ^ ROTR24(e)):
// two bit rotations and a byte rotation, 9 operations (4 of them shifts) instead of 11 (6), at
// the price of a longer dependency chain (6 operations deep, not 4). Measured in one process,
// alternating kernels: +7.6% pairs/s while this VM ran slowly (~7.5 M pairs/s: the vector ports
// apparently shared with another tenant, so the operation count decides), +1.7-2.7% while it
// ran at ~11 M pairs/s (then the longer chain takes back most of what the fewer operations save).
// Sigma0's rotations (2, 13, 22) admit no such pairing: no two of them and their sum fall in
// the three distinct residues mod 8 it needs.
inline __m256i rotr24(__m256i x) {
  // Byte k of each lane takes byte k - 1 (mod 4): a left rotation by 8, which is ROTR24.
  const __m256i bytes = _mm256_set_epi8(14, 13, 12, 15, 10, 9, 8, 11, 6, 5, 4, 7, 2, 1, 0, 3, 14,
                                        13, 12, 15, 10, 9, 8, 11, 6, 5, 4, 7, 2, 1, 0, 3);
  return _mm256_shuffle_epi8(x, bytes);
}
inline __m256i big_sigma1_lanes(__m256i e) {
  const __m256i r = ror<11>(e);
  return _mm256_xor_si256(r, ror<14>(_mm256_xor_si256(r, rotr24(e))));
}

// Maj(a,b,c) = ((a ^ b) & (b ^ c)) ^ b, and a ^ b of this round is b ^ c of the next: carrying
// it over (in `ab`, `bc`) saves an operation per round.
#define DATACAP_ROUND(a, b, c, d, e, f, g, h, kw)                                        \
  do {                                                                                   \
    const __m256i s1 = big_sigma1_lanes(e);                                              \
    const __m256i ch = _mm256_xor_si256(_mm256_and_si256(_mm256_xor_si256(f, g), e), g); \
    const __m256i t1 = add(add(h, s1), add(ch, kw));                                     \
    const __m256i s0 = xor3(ror<2>(a), ror<13>(a), ror<22>(a));                          \
    ab = _mm256_xor_si256(a, b);                                                         \
    const __m256i maj = _mm256_xor_si256(_mm256_and_si256(ab, bc), b);                   \
    bc = ab;                                                                             \
    d = add(d, t1);                                                                      \
    h = add(t1, add(s0, maj));                                                           \
  } while (0)

inline __m256i sigma0(__m256i x) { return xor3(ror<7>(x), ror<18>(x), _mm256_srli_epi32(x, 3)); }
inline __m256i sigma1(__m256i x) { return xor3(ror<17>(x), ror<19>(x), _mm256_srli_epi32(x, 10)); }

// Hashes exactly 8 messages at in[0 .. 512) into out[0 .. 256).
inline void hash8(std::uint8_t* out, const std::uint8_t* in) noexcept {
  const __m256i bswap = _mm256_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12,
                                        13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
  const __m256i in_index = _mm256_set_epi32(112, 96, 80, 64, 48, 32, 16, 0);
  __m256i w[16];
  for (int t = 0; t < 16; ++t) {
    w[t] = _mm256_shuffle_epi8(
        _mm256_i32gather_epi32(reinterpret_cast<const int*>(in + 4 * t), in_index, 4), bswap);
  }
  const Broadcast* const k_lanes = opaque(K_LANES.data());
  const Broadcast* const padding_kw_lanes = opaque(PADDING_KW_LANES.data());
  const Broadcast* const h0_lanes = opaque(H0_LANES.data());
  __m256i a = lanes(h0_lanes[0]), b = lanes(h0_lanes[1]), c = lanes(h0_lanes[2]),
          d = lanes(h0_lanes[3]);
  __m256i e = lanes(h0_lanes[4]), f = lanes(h0_lanes[5]), g = lanes(h0_lanes[6]),
          h = lanes(h0_lanes[7]);

  const Broadcast* const round0_lanes = opaque(ROUND0_LANES.data());
  // Round 0 folded (see ROUND0_LANES), then rounds 1 .. 7 as usual.
  d = add(w[0], lanes(round0_lanes[0]));
  h = add(w[0], lanes(round0_lanes[1]));
  __m256i ab, bc = lanes(round0_lanes[2]);
#define KW(j) add(w[(j)&15], lanes(k_lanes[(j)]))
  DATACAP_ROUND(h, a, b, c, d, e, f, g, KW(1));
  DATACAP_ROUND(g, h, a, b, c, d, e, f, KW(2));
  DATACAP_ROUND(f, g, h, a, b, c, d, e, KW(3));
  DATACAP_ROUND(e, f, g, h, a, b, c, d, KW(4));
  DATACAP_ROUND(d, e, f, g, h, a, b, c, KW(5));
  DATACAP_ROUND(c, d, e, f, g, h, a, b, KW(6));
  DATACAP_ROUND(b, c, d, e, f, g, h, a, KW(7));
#undef KW
#pragma GCC unroll 8
  for (int t = 8; t < 64; t += 8) {
    if (t >= 16) {
      for (int j = t; j < t + 8; ++j) {
        w[j & 15] = add(add(sigma1(w[(j - 2) & 15]), w[(j - 7) & 15]),
                        add(sigma0(w[(j - 15) & 15]), w[j & 15]));
      }
    }
#define KW(j) add(w[(j)&15], lanes(k_lanes[(j)]))
    DATACAP_EIGHT_ROUNDS(t);
#undef KW
  }
  a = add(a, lanes(h0_lanes[0]));
  b = add(b, lanes(h0_lanes[1]));
  c = add(c, lanes(h0_lanes[2]));
  d = add(d, lanes(h0_lanes[3]));
  e = add(e, lanes(h0_lanes[4]));
  f = add(f, lanes(h0_lanes[5]));
  g = add(g, lanes(h0_lanes[6]));
  h = add(h, lanes(h0_lanes[7]));

  const __m256i sa = a, sb = b, sc = c, sd = d, se = e, sf = f, sg = g, sh = h;
  bc = _mm256_xor_si256(b, c);
#pragma GCC unroll 8
  for (int t = 0; t < 64; t += 8) {
#define KW(j) lanes(padding_kw_lanes[(j)])
    DATACAP_EIGHT_ROUNDS(t);
#undef KW
  }
  const __m256i state[8] = {add(a, sa), add(b, sb), add(c, sc), add(d, sd),
                            add(e, se), add(f, sf), add(g, sg), add(h, sh)};
  // Transpose through memory: word k of lane m goes to out + 32*m + 4*k, big-endian.
  alignas(32) std::uint32_t words[8][LANES];
  for (int k = 0; k < 8; ++k) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(words[k]), _mm256_shuffle_epi8(state[k], bswap));
  }
  for (std::size_t m = 0; m < LANES; ++m) {
    for (int k = 0; k < 8; ++k) std::memcpy(out + 32 * m + 4 * k, &words[k][m], 4);
  }
}
#undef DATACAP_ROUND

}  // namespace

void sha256_avx2_x8(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept {
  std::size_t i = 0;
  for (; i + LANES <= count; i += LANES) hash8(out + 32 * i, in + 64 * i);
  if (i < count) {
    alignas(32) std::uint8_t scratch_in[LANES * 64] = {};
    alignas(32) std::uint8_t scratch_out[LANES * 32];
    std::memcpy(scratch_in, in + 64 * i, 64 * (count - i));
    hash8(scratch_out, scratch_in);
    std::memcpy(out + 32 * i, scratch_out, 32 * (count - i));
  }
}

}  // namespace datacap::detail
