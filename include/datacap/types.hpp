// The page geometry and the hash type that every part of datacap shares (SPEC §2, §4), and
// the hex form of a hash.
//
// Thread-safety: the functions are safe to call concurrently.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "datacap/export.hpp"

namespace datacap {

// Bytes per page: every cap size is a multiple.
inline constexpr std::size_t PAGE_SIZE = 4096;
// Pages per 2 MiB group, the natural large-page unit.
inline constexpr std::size_t GROUP_PAGES = 512;
inline constexpr std::size_t GROUP_SIZE = GROUP_PAGES * PAGE_SIZE;
// Page indices are uint32, so a cap holds at most 2^32 pages (16 TiB).
inline constexpr std::uint64_t MAX_PAGE_COUNT = std::uint64_t{1} << 32;
// Chunks of 32 bytes per page: a page root is a merkle tree of depth 7.
inline constexpr std::size_t PAGE_CHUNKS = PAGE_SIZE / 32;
inline constexpr unsigned PAGE_DEPTH = 7;

// A 32-byte digest: a page root, a Missing page's hash, a cap root.
using Hash32 = std::array<std::uint8_t, 32>;

// 64 lowercase hex characters. O(1).
DATACAP_API std::string to_hex(const Hash32& hash);
// Parses exactly 64 hex characters (either case). Throws InvalidArgument otherwise. O(1).
DATACAP_API Hash32 hash_from_hex(std::string_view hex);

// The hasher for unordered containers keyed by Hash32. Mixes all 32 bytes with a seed chosen
// once per process, so hashes picked by an adversary (a crafted archive's Missing pages) cannot
// be lined up in one bucket. O(1).
struct DATACAP_API Hash32Hasher {
  std::size_t operator()(const Hash32& hash) const noexcept;
};

}  // namespace datacap
