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

#define DATACAP_ROUND(a, b, c, d, e, f, g, h, kw)                                                  \
  do {                                                                                             \
    const __m512i s1 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(e, 6), _mm512_ror_epi32(e, 11),  \
                                                 _mm512_ror_epi32(e, 25), XOR3);                   \
    const __m512i t1 = add(add(h, s1), add(_mm512_ternarylogic_epi32(e, f, g, CH), kw));           \
    const __m512i s0 = _mm512_ternarylogic_epi32(_mm512_ror_epi32(a, 2), _mm512_ror_epi32(a, 13),  \
                                                 _mm512_ror_epi32(a, 22), XOR3);                   \
    d = add(d, t1);                                                                                \
    h = add(t1, add(s0, _mm512_ternarylogic_epi32(a, b, c, MAJ)));                                 \
  } while (0)


inline __m512i sigma0(__m512i x) {
  return _mm512_ternarylogic_epi32(_mm512_ror_epi32(x, 7), _mm512_ror_epi32(x, 18),
                                   _mm512_srli_epi32(x, 3), XOR3);
}
inline __m512i sigma1(__m512i x) {
  return _mm512_ternarylogic_epi32(_mm512_ror_epi32(x, 17), _mm512_ror_epi32(x, 19),
                                   _mm512_srli_epi32(x, 10), XOR3);
}

// Hashes exactly 16 messages at in[0 .. 1024) into out[0 .. 512).
inline void hash16(std::uint8_t* out, const std::uint8_t* in) noexcept {
  // Byte order: SHA-256 words are big-endian; swap within each 32-bit lane.
  const __m512i bswap = _mm512_broadcast_i32x4(
      _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3));
  // Lane m reads message m: word w of lane m is at in + 64*m + 4*w.
  const __m512i in_index = _mm512_set_epi32(240, 224, 208, 192, 176, 160, 144, 128, 112, 96, 80, 64,
                                            48, 32, 16, 0);
  __m512i w[16];
  for (int t = 0; t < 16; ++t) {
    w[t] = _mm512_shuffle_epi8(_mm512_i32gather_epi32(in_index, in + 4 * t, 4), bswap);
  }
  __m512i a = _mm512_set1_epi32(static_cast<int>(H0[0])), b = _mm512_set1_epi32(static_cast<int>(H0[1]));
  __m512i c = _mm512_set1_epi32(static_cast<int>(H0[2])), d = _mm512_set1_epi32(static_cast<int>(H0[3]));
  __m512i e = _mm512_set1_epi32(static_cast<int>(H0[4])), f = _mm512_set1_epi32(static_cast<int>(H0[5]));
  __m512i g = _mm512_set1_epi32(static_cast<int>(H0[6])), h = _mm512_set1_epi32(static_cast<int>(H0[7]));

  // Block 1: the message, with its schedule computed in a rolling window of 16 words.
  for (int t = 0; t < 64; t += 8) {
    if (t >= 16) {
      for (int j = t; j < t + 8; ++j) {
        w[j & 15] = add(add(sigma1(w[(j - 2) & 15]), w[(j - 7) & 15]),
                        add(sigma0(w[(j - 15) & 15]), w[j & 15]));
      }
    }
#define KW(j) add(w[(j) & 15], _mm512_set1_epi32(static_cast<int>(K[(j)])))
    DATACAP_EIGHT_ROUNDS(t);
#undef KW
  }
  a = add(a, _mm512_set1_epi32(static_cast<int>(H0[0]))); b = add(b, _mm512_set1_epi32(static_cast<int>(H0[1])));
  c = add(c, _mm512_set1_epi32(static_cast<int>(H0[2]))); d = add(d, _mm512_set1_epi32(static_cast<int>(H0[3])));
  e = add(e, _mm512_set1_epi32(static_cast<int>(H0[4]))); f = add(f, _mm512_set1_epi32(static_cast<int>(H0[5])));
  g = add(g, _mm512_set1_epi32(static_cast<int>(H0[6]))); h = add(h, _mm512_set1_epi32(static_cast<int>(H0[7])));

  // Block 2: the constant padding block; K + W comes precomputed.
  const __m512i sa = a, sb = b, sc = c, sd = d, se = e, sf = f, sg = g, sh = h;
  for (int t = 0; t < 64; t += 8) {
#define KW(j) _mm512_set1_epi32(static_cast<int>(PADDING_KW[(j)]))
    DATACAP_EIGHT_ROUNDS(t);
#undef KW
  }
  const __m512i state[8] = {add(a, sa), add(b, sb), add(c, sc), add(d, sd),
                            add(e, se), add(f, sf), add(g, sg), add(h, sh)};
  // Lane m's digest goes to out + 32*m: word k at out + 32*m + 4*k.
  const __m512i out_index = _mm512_set_epi32(120, 112, 104, 96, 88, 80, 72, 64, 56, 48, 40, 32, 24,
                                             16, 8, 0);
  for (int k = 0; k < 8; ++k) {
    _mm512_i32scatter_epi32(out + 4 * k, out_index, _mm512_shuffle_epi8(state[k], bswap), 4);
  }
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
