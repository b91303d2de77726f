// Caps the benchmarks share: random fully loaded caps, built once per size and reused.
#pragma once

#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "datacap/datacap.hpp"

namespace datacap::bench {

inline std::vector<std::uint8_t> random_bytes(std::size_t len, std::uint64_t seed) {
  std::vector<std::uint8_t> out(len);
  std::mt19937_64 rng(seed);
  for (std::size_t k = 0; k + 8 <= len; k += 8) {
    const std::uint64_t v = rng();
    std::memcpy(out.data() + k, &v, 8);
  }
  return out;
}

// A clean, fully loaded cap of `pages` random pages. Its hashes are not computed.
inline DataCap full_cap(std::uint64_t pages, std::uint64_t seed = 0) {
  const auto bytes = random_bytes(pages * PAGE_SIZE, pages + seed);
  return DataCap::from_bytes(bytes);
}

// The same cap rooted once, so every page and node hash is cached (shared by copies).
inline const DataCap& rooted_cap(std::uint64_t pages) {
  static std::map<std::uint64_t, DataCap> caps;
  auto it = caps.find(pages);
  if (it == caps.end()) {
    it = caps.emplace(pages, full_cap(pages)).first;
    (void)it->second.hash_tree_root();
  }
  return it->second;
}

}  // namespace datacap::bench
