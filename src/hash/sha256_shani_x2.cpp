// SHA-256 of 64-byte messages with the x86 SHA extensions, two messages interleaved.
// Compiled with -msha -msse4.1 (this file only). sha256rnds2 has a latency of several cycles;
// running two independent messages side by side keeps the unit busy while each waits.
#include <immintrin.h>

#include "hash/kernel.hpp"
#include "hash/sha256_constants.hpp"

namespace datacap::detail {
namespace {

using namespace sha256;

// The state as sha256rnds2 wants it: (A,B,E,F) and (C,D,G,H).
struct State {
  __m128i abef;
  __m128i cdgh;
};

inline __m128i bswap_mask() { return _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL); }

inline State initial_state() {
  __m128i abcd = _mm_loadu_si128(reinterpret_cast<const __m128i*>(H0.data()));
  __m128i efgh = _mm_loadu_si128(reinterpret_cast<const __m128i*>(H0.data() + 4));
  abcd = _mm_shuffle_epi32(abcd, 0xB1);
  efgh = _mm_shuffle_epi32(efgh, 0x1B);
  return State{_mm_alignr_epi8(abcd, efgh, 8), _mm_blend_epi16(efgh, abcd, 0xF0)};
}

// Four rounds with kw = K[t..t+3] + W[t..t+3].
inline void rounds4(State& s, __m128i kw) {
  s.cdgh = _mm_sha256rnds2_epu32(s.cdgh, s.abef, kw);
  s.abef = _mm_sha256rnds2_epu32(s.abef, s.cdgh, _mm_shuffle_epi32(kw, 0x0E));
}

inline __m128i k4(int group) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(K.data() + 4 * group));
}
inline __m128i padding_kw4(int group) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(PADDING_KW.data() + 4 * group));
}

// The next four schedule words from the previous sixteen (m[0] oldest).
inline __m128i schedule(__m128i m0, __m128i m1, __m128i m2, __m128i m3) {
  const __m128i x = _mm_add_epi32(_mm_sha256msg1_epu32(m0, m1), _mm_alignr_epi8(m3, m2, 4));
  return _mm_sha256msg2_epu32(x, m3);
}

inline void store_digest(std::uint8_t* out, State s) {
  const __m128i feba = _mm_shuffle_epi32(s.abef, 0x1B);
  const __m128i dchg = _mm_shuffle_epi32(s.cdgh, 0xB1);
  const __m128i dcba = _mm_blend_epi16(feba, dchg, 0xF0);
  const __m128i hgfe = _mm_alignr_epi8(dchg, feba, 8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_shuffle_epi8(dcba, bswap_mask()));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm_shuffle_epi8(hgfe, bswap_mask()));
}

inline void add_state(State& s, const State& t) {
  s.abef = _mm_add_epi32(s.abef, t.abef);
  s.cdgh = _mm_add_epi32(s.cdgh, t.cdgh);
}

// Hashes two messages (x at in_x, y at in_y) into out_x and out_y.
inline void hash2(std::uint8_t* out_x, std::uint8_t* out_y, const std::uint8_t* in_x,
                  const std::uint8_t* in_y) noexcept {
  const __m128i mask = bswap_mask();
  const State init = initial_state();
  __m128i mx[4], my[4];
  for (int i = 0; i < 4; ++i) {
    mx[i] =
        _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in_x + 16 * i)), mask);
    my[i] =
        _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in_y + 16 * i)), mask);
  }
  State x = init, y = init;
  for (int g = 0; g < 16; ++g) {
    if (g >= 4) {
      // Rolling window: mx[g & 3] holds W of group g-4 and becomes group g.
      mx[g & 3] = schedule(mx[g & 3], mx[(g + 1) & 3], mx[(g + 2) & 3], mx[(g + 3) & 3]);
      my[g & 3] = schedule(my[g & 3], my[(g + 1) & 3], my[(g + 2) & 3], my[(g + 3) & 3]);
    }
    const __m128i k = k4(g);
    rounds4(x, _mm_add_epi32(mx[g & 3], k));
    rounds4(y, _mm_add_epi32(my[g & 3], k));
  }
  add_state(x, init);
  add_state(y, init);
  // The constant padding block: K + W precomputed, no schedule.
  const State x1 = x, y1 = y;
  for (int g = 0; g < 16; ++g) {
    const __m128i kw = padding_kw4(g);
    rounds4(x, kw);
    rounds4(y, kw);
  }
  add_state(x, x1);
  add_state(y, y1);
  store_digest(out_x, x);
  store_digest(out_y, y);
}

}  // namespace

void sha256_shani_x2(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept {
  std::size_t i = 0;
  for (; i + 2 <= count; i += 2)
    hash2(out + 32 * i, out + 32 * i + 32, in + 64 * i, in + 64 * i + 64);
  if (i < count) {
    alignas(16) std::uint8_t scratch[32];
    hash2(out + 32 * i, scratch, in + 64 * i, in + 64 * i);
  }
}

}  // namespace datacap::detail
