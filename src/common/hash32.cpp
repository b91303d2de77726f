#include <random>
#include <string>
#include <string_view>

#include "common/little_endian.hpp"
#include "datacap/error.hpp"
#include "datacap/types.hpp"

namespace datacap {
namespace {

std::uint64_t process_seed() noexcept {
  static const std::uint64_t seed = [] {
    try {
      std::random_device device;
      return std::uint64_t{device()} << 32 ^ device();
    } catch (...) {  // no entropy source: a fixed seed still mixes all 32 bytes
      return std::uint64_t{0x9e3779b97f4a7c15};
    }
  }();
  return seed;
}

}  // namespace

std::size_t Hash32Hasher::operator()(const Hash32& hash) const noexcept {
  std::uint64_t h = process_seed();
  for (std::size_t i = 0; i < 32; i += 8) {
    h = (h ^ detail::get_le64(hash.data() + i)) * 0xff51afd7ed558ccdULL;
    h ^= h >> 32;
  }
  return static_cast<std::size_t>(h);
}

std::string to_hex(const Hash32& hash) {
  static constexpr char DIGITS[] = "0123456789abcdef";
  std::string s(64, '0');
  for (std::size_t i = 0; i < 32; ++i) {
    s[2 * i] = DIGITS[hash[i] >> 4];
    s[2 * i + 1] = DIGITS[hash[i] & 15];
  }
  return s;
}

Hash32 hash_from_hex(std::string_view hex) {
  auto nibble = [&](char c, std::size_t pos) -> std::uint8_t {
    if (c >= '0' && c <= '9') return static_cast<std::uint8_t>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<std::uint8_t>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<std::uint8_t>(c - 'A' + 10);
    throw InvalidArgument("hash hex: character " + std::to_string(pos) + " is not a hex digit");
  };
  if (hex.size() != 64) {
    throw InvalidArgument("hash hex: expected 64 hex characters, got " +
                          std::to_string(hex.size()));
  }
  Hash32 out;
  for (std::size_t i = 0; i < 32; ++i) {
    out[i] = static_cast<std::uint8_t>(nibble(hex[2 * i], 2 * i) << 4 |
                                       nibble(hex[2 * i + 1], 2 * i + 1));
  }
  return out;
}

}  // namespace datacap
