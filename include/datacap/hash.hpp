// Digests, page roots, the zero-subtree table and a streaming cap-root builder (SPEC §4).
//
// The cap root is an SSZ-style binary merkle tree: hash(a, b) = D(a || b) over 32-byte chunks,
// with D = SHA-256 by default or BLAKE2b with a 32-byte output (no key). Everything here is a
// pure function of its inputs: identical bytes on every machine and every build.
//
// Thread-safety: the free functions are safe to call concurrently. A CapRootBuilder is a
// plain value: one thread at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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
// zero_hash(k) exists for k in [0, MAX_ZERO_HEIGHT]: enough for 2^32 pages of 2^7 chunks plus
// the container level above them.
inline constexpr unsigned MAX_ZERO_HEIGHT = 64;

using Hash32 = std::array<std::uint8_t, 32>;

enum class Digest : std::uint8_t {
  sha256 = 0,      // the default and consensus digest
  blake2b256 = 1,  // BLAKE2b, 32-byte output, no key
};
inline constexpr std::size_t DIGEST_COUNT = 2;

// "sha256" / "blake2b256".
DATACAP_API const char* to_string(Digest digest) noexcept;
// Parses "sha256" or "blake2b256". Throws InvalidArgument on any other name.
DATACAP_API Digest parse_digest(std::string_view name);

// SHA-256 kernels by instruction set. Every kernel gives the same bytes; they differ in speed.
// On first use the library picks the fastest one the CPU (and OS) supports, unless the
// environment variable DATACAP_ISA names one (portable | avx2 | avx512 | shani).
enum class Isa : std::uint8_t { portable, avx2, avx512, shani };

// "portable" / "avx2" / "avx512" / "shani".
DATACAP_API const char* to_string(Isa isa) noexcept;
// Throws InvalidArgument for any other name.
DATACAP_API Isa parse_isa(std::string_view name);
// True when the kernel is compiled in and this CPU and OS can run it.
DATACAP_API bool isa_available(Isa isa) noexcept;
DATACAP_API std::vector<Isa> available_isas();
// The kernel in use (choosing it now if nothing has hashed yet). Throws InvalidArgument when
// DATACAP_ISA names an unknown or unavailable ISA.
DATACAP_API Isa active_isa();
// Pins the kernel for the whole process (tests, benchmarks). Safe to call while other threads
// hash: each hash call uses one kernel throughout. Throws InvalidArgument when unavailable.
DATACAP_API void set_isa(Isa isa);

// Threads used by large root computations (the caller counts as one). 0 = one per core, the
// default; 1 = never start a thread. Small computations always run on the caller alone.
// Do not call concurrently with hashing on other threads.
DATACAP_API void set_hash_threads(unsigned threads);
DATACAP_API unsigned hash_threads() noexcept;

// 64 lowercase hex characters.
DATACAP_API std::string to_hex(const Hash32& hash);
// Parses exactly 64 hex characters (either case). Throws InvalidArgument otherwise.
DATACAP_API Hash32 hash_from_hex(std::string_view hex);

// D(bytes) for any byte string. O(len).
DATACAP_API Hash32 digest_bytes(Digest digest, std::span<const std::uint8_t> bytes);
// hash(a, b) = D(a || b). O(1).
DATACAP_API Hash32 hash_pair(Digest digest, const Hash32& left, const Hash32& right);

// zero[k]: the root of a subtree of height k whose leaves are all the zero chunk
// (zero[0] = 0^32, zero[k+1] = hash(zero[k], zero[k])). Precomputed: O(1).
// Throws OutOfRange when height > MAX_ZERO_HEIGHT.
DATACAP_API const Hash32& zero_hash(Digest digest, unsigned height);

// Root of a Loaded page holding `bytes` zero-padded to PAGE_SIZE: merkleize(128 chunks, 128).
// Note an all-zero *Loaded* page has root zero[7]; the Empty slot's root is 0^32 (SPEC §4).
// Throws OutOfRange when bytes.size() > PAGE_SIZE. O(PAGE_SIZE).
DATACAP_API Hash32 page_root(Digest digest, std::span<const std::uint8_t> bytes);

// merkleize(chunks, limit) of SPEC §4: depth ceil(log2(limit)), chunks padded with zero chunks.
// Throws InvalidArgument when limit == 0 or chunks.size() > limit. O(chunks.size()) hashes.
DATACAP_API Hash32 merkleize(Digest digest, std::span<const Hash32> chunks, std::uint64_t limit);

// The size root: size as 8 little-endian bytes followed by 24 zero bytes.
DATACAP_API Hash32 size_root(std::uint64_t size);

// Depth of the pages tree of a cap of `page_count` pages: ceil(log2(max(page_count, 1))).
DATACAP_API unsigned pages_depth(std::uint64_t page_count) noexcept;

// Computes the cap root of a byte stream page by page without holding its pages: the root of
// from_bytes_sized(stream, size). Memory is O(log pages); a run of zero pages of any length
// costs O(log) (so a sparse 16 TiB size is immediate).
//
//   CapRootBuilder b(Digest::sha256);
//   while (read a page p) b.append_page(p);
//   Hash32 root = b.finish(target_size);
class DATACAP_API CapRootBuilder {
 public:
  explicit CapRootBuilder(Digest digest = Digest::sha256);

  // Appends the next page: `bytes` zero-padded to a page; an all-zero page counts as Empty.
  // Throws OutOfRange when bytes.size() > PAGE_SIZE or the cap would exceed 2^32 pages.
  void append_page(std::span<const std::uint8_t> bytes);
  // Appends consecutive pages: bytes.size() / PAGE_SIZE whole pages, then a partial last page
  // (zero-padded) if bytes.size() is not a multiple. Pages are hashed 16 at a time and, for
  // large inputs, on several threads (see set_hash_threads): the fast path for streams.
  // Throws OutOfRange when the cap would exceed 2^32 pages.
  void append_pages(std::span<const std::uint8_t> bytes);
  // Appends the next page by its page root (a Missing slot, or a root computed elsewhere).
  void append_page_root(const Hash32& root);
  // Appends `count` Empty pages in O(log count).
  void append_zero_pages(std::uint64_t count);
  // Pages appended so far.
  [[nodiscard]] std::uint64_t page_count() const noexcept { return page_count_; }

  // The cap root for a cap of max(size, pages appended), rounded up to a page, at least one
  // page. Leaves the builder reset to empty. Throws OutOfRange when the size exceeds 2^32
  // pages.
  [[nodiscard]] Hash32 finish(std::uint64_t size = 0);

 private:
  struct Subtree {
    unsigned height;
    Hash32 root;
  };
  void push(unsigned height, const Hash32& root);

  Digest digest_;
  std::uint64_t page_count_ = 0;
  std::vector<Subtree> stack_;  // complete subtrees, strictly decreasing heights
};

}  // namespace datacap
