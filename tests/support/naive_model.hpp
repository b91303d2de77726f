// A deliberately naive model of a DataCap: pages in std::maps, and a textbook merkle tree that
// pads to a power of two with real zero chunks and hashes every pair. Kept as simple as
// possible so that it is obviously right; it shares no code with the library (it calls
// OpenSSL and libb2 directly).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "datacap/error.hpp"
#include "datacap/hash.hpp"

namespace datacap::testing {

using Bytes = std::vector<std::uint8_t>;

struct NaiveSlot {
  bool missing = false;
  Bytes bytes;  // PAGE_SIZE bytes when not missing
  Hash32 hash{};
};

// Independent digests and merkle.
Hash32 naive_digest(Digest digest, const Bytes& bytes);
Hash32 naive_merkleize(Digest digest, std::vector<Hash32> chunks, std::uint64_t limit);
Hash32 naive_page_root(Digest digest, const Bytes& page);

struct NaiveCap {
  std::uint64_t size = 0;
  std::map<std::uint64_t, NaiveSlot> backing;  // absent: Empty; never a zero Loaded page
  std::map<std::uint64_t, NaiveSlot> overlay;  // absent: not dirty

  [[nodiscard]] std::uint64_t page_count() const { return size / PAGE_SIZE; }
  // Effective slot, or nullopt for Empty.
  [[nodiscard]] std::optional<NaiveSlot> effective(std::uint64_t page) const;

  // Each returns the error kind the spec requires, or nullopt after applying the operation.
  std::optional<ErrorKind> write(std::uint64_t off, const Bytes& bytes);
  std::optional<ErrorKind> write_page(std::uint64_t off, const Bytes& content);
  std::optional<ErrorKind> put_page(std::uint64_t off, const Bytes& content);
  std::optional<ErrorKind> insert_overlay_page(std::uint64_t page, std::optional<NaiveSlot> slot);
  std::optional<ErrorKind> place_shared(std::uint64_t dst_off, const NaiveCap& src);
  std::optional<ErrorKind> copy_into(std::uint64_t start, Bytes& out) const;
  void flush();
  // nullopt when dirty.
  [[nodiscard]] std::optional<Hash32> root(Digest digest) const;
};

NaiveCap naive_from_bytes_sized(const Bytes& content, std::uint64_t target);

}  // namespace datacap::testing
