// Portable SHA-256 of 64-byte messages, one at a time: the reference every SIMD kernel must
// match byte for byte, and the fallback on any CPU.
#include <cstring>

#include "hash/kernel.hpp"
#include "hash/sha256_constants.hpp"

namespace datacap::detail {
namespace {

using namespace sha256;

inline std::uint32_t load_be32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}
inline void store_be32(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 24);
  p[1] = static_cast<std::uint8_t>(v >> 16);
  p[2] = static_cast<std::uint8_t>(v >> 8);
  p[3] = static_cast<std::uint8_t>(v);
}

// 64 rounds over `state` with kw[t] = K[t] + W[t] supplied by the caller.
inline void rounds(std::uint32_t s[8], const std::uint32_t kw[64]) {
  std::uint32_t a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
  for (int t = 0; t < 64; ++t) {
    const std::uint32_t t1 = h + big_sigma1(e) + ((e & f) ^ (~e & g)) + kw[t];
    const std::uint32_t t2 = big_sigma0(a) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s[0] += a;
  s[1] += b;
  s[2] += c;
  s[3] += d;
  s[4] += e;
  s[5] += f;
  s[6] += g;
  s[7] += h;
}

}  // namespace

void sha256_portable_x1(std::uint8_t* out, const std::uint8_t* in, std::size_t count) noexcept {
  for (std::size_t i = 0; i < count; ++i) {
    const std::uint8_t* msg = in + 64 * i;
    std::uint32_t w[64];
    for (int t = 0; t < 16; ++t) w[t] = load_be32(msg + 4 * t);
    for (int t = 16; t < 64; ++t) {
      w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];
    }
    for (int t = 0; t < 64; ++t) w[t] += K[static_cast<std::size_t>(t)];
    std::uint32_t s[8];
    std::memcpy(s, H0.data(), sizeof s);
    rounds(s, w);
    rounds(s, PADDING_KW.data());  // the constant second block: no schedule to compute
    for (int k = 0; k < 8; ++k) store_be32(out + 32 * i + 4 * k, s[k]);
  }
}

}  // namespace datacap::detail
