// Digests (SPEC §4) and the SHA-256 kernel in use.
//
// The merkle trees of datacap hash pairs of 32-byte chunks: hash(a, b) = D(a || b), with
// D = SHA-256 by default or BLAKE2b with a 32-byte output (no key). Everything here is a pure
// function of its inputs: identical bytes on every machine, every build and every kernel.
// Page roots, merkleize and the cap-root builder are in merkle.hpp.
//
// Thread-safety: every function is safe to call concurrently, except where stated.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "datacap/export.hpp"
#include "datacap/types.hpp"

namespace datacap {

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
// default; 1 = never start a thread; at most 1024. Small computations always run on the caller
// alone. Do not call concurrently with hashing on other threads. When a thread cannot start,
// throws std::system_error and hashing goes on with the threads that did.
DATACAP_API void set_hash_threads(unsigned threads);
DATACAP_API unsigned hash_threads() noexcept;

// D(bytes) for any byte string. O(len).
DATACAP_API Hash32 digest_bytes(Digest digest, std::span<const std::uint8_t> bytes);
// hash(a, b) = D(a || b). O(1).
DATACAP_API Hash32 hash_pair(Digest digest, const Hash32& left, const Hash32& right);

}  // namespace datacap
