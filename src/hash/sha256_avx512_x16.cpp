// SHA-256 of 64-byte messages, 16 at a time in the 32-bit lanes of AVX-512 registers.
// Compiled with -mavx512f -mavx512bw (this file only). AVX-512 has what SHA-256 wants: native
// rotates (vprord) and three-input logic (vpternlogd) for Ch, Maj and the three-way XORs.
// GCC 12 reports its own intrinsics' deliberately undefined vectors (_mm512_undefined_*) as
// uninitialized once they are inlined here; the warning is about the header, not this code.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "hash/kernel.hpp"
#include "hash/sha256_constants.hpp"

namespace datacap::detail {
namespace {

using namespace sha256;
constexpr std::size_t LANES = 16;

// vpternlogd truth tables (bit index = a<<2 | b<<1 | c).
constexpr int XOR3 = 0x96;
constexpr int CH = 0xCA;   // a ? b : c
constexpr int MAJ = 0xE8;  // majority

inline __m512i add(__m512i a, __m512i b) { return _mm512_add_epi32(a, b); }

#define DATACAP_ROUND(a, b, c, d, e, f, g, h, kw)                                                 \
  do {                                                                                            \
    const __m512i s1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(e, 6), _mm512_ror_epi32(e, 11), \
                                                 _mm512_ror_epi32(e, 25), XOR3);                  \
    const __m512i t1 = add(add(h, s1), add(_mm512_ternarylogic_epi32(e, f, g, CH), kw));          \
    const __m512i s0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(a, 2), _mm512_ror_epi32(a, 13), \
                                                 _mm512_ror_epi32(a, 22), XOR3);                  \
    d = add(d, t1);                                                                               \
    h = add(t1, add(s0, _mm512_ternarylogic_epi32(a, b, c, MAJ)));                                \
  } while (0)

inline __m512i sigma0(__m512i x) {
  return _mm512_ternarylogic_epi32(_mm512_ror_epi32(x, 7), _mm512_ror_epi32(x, 18),
                                   _mm512_srli_epi32(x, 3), XOR3);
}
inline __m512i sigma1(__m512i x) {
  return _mm512_ternarylogic_epi32(_mm512_ror_epi32(x, 17), _mm512_ror_epi32(x, 19),
                                   _mm512_srli_epi32(x, 10), XOR3);
}

// 4x4 transpose of 128-bit lanes: out[j] = (a[j], b[j], c[j], d[j]).
inline void transpose_lanes(__m512i a, __m512i b, __m512i c, __m512i d, __m512i out[4]) {
  const __m512i ab_lo = _mm512_shuffle_i32x4(a, b, 0x44);  // a0 a1 b0 b1
  const __m512i ab_hi = _mm512_shuffle_i32x4(a, b, 0xEE);  // a2 a3 b2 b3
  const __m512i cd_lo = _mm512_shuffle_i32x4(c, d, 0x44);  // c0 c1 d0 d1
  const __m512i cd_hi = _mm512_shuffle_i32x4(c, d, 0xEE);  // c2 c3 d2 d3
  out[0] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0x88);       // a0 b0 c0 d0
  out[1] = _mm512_shuffle_i32x4(ab_lo, cd_lo, 0xDD);       // a1 b1 c1 d1
  out[2] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0x88);
  out[3] = _mm512_shuffle_i32x4(ab_hi, cd_hi, 0xDD);
}

// w[t] = word t of each of the 16 messages (rows[m] = message m's 16 words): a 16x16 transpose
// in registers. Gathers did the same from memory, at twice the cost on the load ports and on
// port 0, which the rotates already keep busy; these shuffles run on port 5.
inline void transpose_in(const __m512i rows[16], __m512i w[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(rows[2 * i], rows[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(rows[2 * i], rows[2 * i + 1]);
  }
  // u[4i + k], 128-bit lane j: word 4j + k of messages 4i .. 4i + 3.
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int k = 0; k < 4; ++k) {
    __m512i out[4];
    transpose_lanes(u[k], u[4 + k], u[8 + k], u[12 + k], out);
    for (int j = 0; j < 4; ++j) w[4 * j + k] = out[j];
  }
}

// The inverse for the digests: state[k] = word k of each message; writes message m's 8 words
// to out + 32m.
inline void transpose_out(const __m512i state[8], std::uint8_t* out) {
  __m512i t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(state[2 * i], state[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(state[2 * i], state[2 * i + 1]);
  }
  // x[q] / y[q], 128-bit lane j: words 0..3 / 4..7 of message 4j + q.
  const __m512i x[4] = {_mm512_unpacklo_epi64(t[0], t[2]), _mm512_unpackhi_epi64(t[0], t[2]),
                        _mm512_unpacklo_epi64(t[1], t[3]), _mm512_unpackhi_epi64(t[1], t[3])};
  const __m512i y[4] = {_mm512_unpacklo_epi64(t[4], t[6]), _mm512_unpackhi_epi64(t[4], t[6]),
                        _mm512_unpacklo_epi64(t[5], t[7]), _mm512_unpackhi_epi64(t[5], t[7])};
  for (int q = 0; q < 4; q += 2) {
    __m512i pairs[4];  // pairs[j] = messages 4j + q and 4j + q + 1, whole
    transpose_lanes(x[q], y[q], x[q + 1], y[q + 1], pairs);
    for (int j = 0; j < 4; ++j) _mm512_storeu_si512(out + 32 * (4 * j + q), pairs[j]);
  }
}

// Hashes exactly 16 messages at in[0 .. 1024) into out[0 .. 512).
inline void hash16(std::uint8_t* out, const std::uint8_t* in) noexcept {
  // Byte order: SHA-256 words are big-endian; swap within each 32-bit lane.
  const __m512i bswap =
      _mm512_broadcast_i32x4(_mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3));
  const std::uint32_t* const k_table = opaque(K.data());
  const std::uint32_t* const padding_kw_table = opaque(PADDING_KW.data());
  __m512i rows[16];
  for (int m = 0; m < 16; ++m)
    rows[m] = _mm512_shuffle_epi8(_mm512_loadu_si512(in + 64 * m), bswap);
  __m512i w[16];
  transpose_in(rows, w);
  const std::uint32_t* const h0 = opaque(H0.data());
  __m512i a = _mm512_set1_epi32(static_cast<int>(h0[0])),
          b = _mm512_set1_epi32(static_cast<int>(h0[1]));
  __m512i c = _mm512_set1_epi32(static_cast<int>(h0[2])),
          d = _mm512_set1_epi32(static_cast<int>(h0[3]));
  __m512i e = _mm512_set1_epi32(static_cast<int>(h0[4])),
          f = _mm512_set1_epi32(static_cast<int>(h0[5]));
  __m512i g = _mm512_set1_epi32(static_cast<int>(h0[6])),
          h = _mm512_set1_epi32(static_cast<int>(h0[7]));

  // Block 1: the message, with its schedule computed in a rolling window of 16 words.
#pragma GCC unroll 8
  for (int t = 0; t < 64; t += 8) {
    if (t >= 16) {
      for (int j = t; j < t + 8; ++j) {
        w[j & 15] = add(add(sigma1(w[(j - 2) & 15]), w[(j - 7) & 15]),
                        add(sigma0(w[(j - 15) & 15]), w[j & 15]));
      }
    }
#define KW(j) add(w[(j)&15], _mm512_set1_epi32(static_cast<int>(k_table[(j)])))
    DATACAP_EIGHT_ROUNDS(t);
#undef KW
  }
  a = add(a, _mm512_set1_epi32(static_cast<int>(h0[0])));
  b = add(b, _mm512_set1_epi32(static_cast<int>(h0[1])));
  c = add(c, _mm512_set1_epi32(static_cast<int>(h0[2])));
  d = add(d, _mm512_set1_epi32(static_cast<int>(h0[3])));
  e = add(e, _mm512_set1_epi32(static_cast<int>(h0[4])));
  f = add(f, _mm512_set1_epi32(static_cast<int>(h0[5])));
  g = add(g, _mm512_set1_epi32(static_cast<int>(h0[6])));
  h = add(h, _mm512_set1_epi32(static_cast<int>(h0[7])));

  // Block 2: the constant padding block; K + W comes precomputed.
  const __m512i sa = a, sb = b, sc = c, sd = d, se = e, sf = f, sg = g, sh = h;
#pragma GCC unroll 8
  for (int t = 0; t < 64; t += 8) {
#define KW(j) _mm512_set1_epi32(static_cast<int>(padding_kw_table[(j)]))
    DATACAP_EIGHT_ROUNDS(t);
#undef KW
  }
  const __m512i state[8] = {
      _mm512_shuffle_epi8(add(a, sa), bswap), _mm512_shuffle_epi8(add(b, sb), bswap),
      _mm512_shuffle_epi8(add(c, sc), bswap), _mm512_shuffle_epi8(add(d, sd), bswap),
      _mm512_shuffle_epi8(add(e, se), bswap), _mm512_shuffle_epi8(add(f, sf), bswap),
      _mm512_shuffle_epi8(add(g, sg), bswap), _mm512_shuffle_epi8(add(h, sh), bswap)};
  transpose_out(state, out);
}
#undef DATACAP_ROUND

}  // namespace

void sha256_avx512_x16(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept {
  std::size_t i = 0;
  for (; i + LANES <= count; i += LANES) hash16(out + 32 * i, in + 64 * i);
  if (i < count) {
    // A partial group runs through a full-width scratch buffer (unused lanes hash zeros).
    alignas(64) std::uint8_t scratch_in[LANES * 64] = {};
    alignas(64) std::uint8_t scratch_out[LANES * 32];
    std::memcpy(scratch_in, in + 64 * i, 64 * (count - i));
    hash16(scratch_out, scratch_in);
    std::memcpy(out + 32 * i, scratch_out, 32 * (count - i));
  }
}

}  // namespace datacap::detail
