// Internal: the encoded record of a saved cap (its size and page table), as stores keep it.
//
//   bytes 0..8    magic "DCREC\x01\0\0" (format version 1)
//   bytes 8..16   content_len, u64 little-endian (a PAGE_SIZE multiple, ≤ 2^32 pages)
//   bytes 16..24  entry_count, u64 little-endian
//   then entry_count entries of 36 bytes: page_index u32 LE, page root (32 bytes);
//   page indices strictly ascending and below page_count; Empty pages have no entry.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/little_endian.hpp"
#include "datacap/error.hpp"
#include "datacap/hash.hpp"
#include "datacap/page.hpp"

namespace datacap::detail {

inline constexpr std::uint8_t CAP_RECORD_MAGIC[8] = {'D', 'C', 'R', 'E', 'C', 1, 0, 0};
inline constexpr std::size_t CAP_RECORD_HEADER = 24;
inline constexpr std::size_t CAP_RECORD_ENTRY = 36;

inline void begin_cap_record(std::vector<std::uint8_t>& record, std::uint64_t content_len) {
  record.assign(CAP_RECORD_HEADER, 0);
  std::memcpy(record.data(), CAP_RECORD_MAGIC, sizeof CAP_RECORD_MAGIC);
  put_le64(record.data() + 8, content_len);
}

inline void append_cap_record_entry(std::vector<std::uint8_t>& record, std::uint32_t page_index,
                                    const Hash32& root) {
  const std::size_t at = record.size();
  record.resize(at + CAP_RECORD_ENTRY);
  put_le32(record.data() + at, page_index);
  std::memcpy(record.data() + at + 4, root.data(), 32);
}

inline void end_cap_record(std::vector<std::uint8_t>& record, std::uint64_t entries) {
  put_le64(record.data() + 16, entries);
}

// A validated record, viewed in place.
struct CapRecordView {
  std::uint64_t content_len = 0;
  std::uint64_t entry_count = 0;
  const std::uint8_t* entries = nullptr;

  [[nodiscard]] std::uint32_t entry_index(std::uint64_t k) const noexcept {
    return get_le32(entries + k * CAP_RECORD_ENTRY);
  }
  [[nodiscard]] Hash32 entry_root(std::uint64_t k) const noexcept {
    Hash32 h;
    std::memcpy(h.data(), entries + k * CAP_RECORD_ENTRY + 4, 32);
    return h;
  }
};

// The field a DecodeError about a record names: "<store>: cap <root>: CapRecord.<field>", the
// parts that are known (item 10 of the CLI review: an error names the store and the record).
inline std::string cap_record_field(std::string_view store, const Hash32* cap_root,
                                    const std::string& field) {
  std::string out;
  if (!store.empty()) out.append(store).append(": ");
  if (cap_root != nullptr) out.append("cap ").append(to_hex(*cap_root)).append(": ");
  return out + field;
}

// Throws DecodeError (field "[<store>: ][cap <root>: ]CapRecord.*", byte offset) for anything
// malformed. `store` and `cap_root` only name the record in the message; the strings are built
// only when throwing.
inline CapRecordView parse_cap_record(std::span<const std::uint8_t> record,
                                      std::string_view store = {},
                                      const Hash32* cap_root = nullptr) {
  const auto field = [&](const std::string& name) {
    return cap_record_field(store, cap_root, name);
  };
  if (record.size() < CAP_RECORD_HEADER) {
    throw DecodeError(
        field("CapRecord"), 0,
        "record of " + std::to_string(record.size()) + " bytes is shorter than its 24-byte header");
  }
  if (std::memcmp(record.data(), CAP_RECORD_MAGIC, sizeof CAP_RECORD_MAGIC) != 0) {
    throw DecodeError(field("CapRecord.magic"), 0, "not a version-1 cap record");
  }
  CapRecordView view;
  view.content_len = get_le64(record.data() + 8);
  view.entry_count = get_le64(record.data() + 16);
  if (view.content_len % PAGE_SIZE != 0 || view.content_len / PAGE_SIZE > MAX_PAGE_COUNT) {
    throw DecodeError(
        field("CapRecord.content_len"), 8,
        "size " + std::to_string(view.content_len) + " is not a page multiple within 2^32 pages");
  }
  const std::uint64_t body = record.size() - CAP_RECORD_HEADER;
  if (body % CAP_RECORD_ENTRY != 0 || body / CAP_RECORD_ENTRY != view.entry_count) {
    throw DecodeError(field("CapRecord.entry_count"), 16,
                      std::to_string(view.entry_count) + " entries do not fill the " +
                          std::to_string(body) + " bytes after the header");
  }
  view.entries = record.data() + CAP_RECORD_HEADER;
  const std::uint64_t page_count = view.content_len / PAGE_SIZE;
  for (std::uint64_t k = 0; k < view.entry_count; ++k) {
    const std::uint64_t index = view.entry_index(k);
    if (index >= page_count || (k > 0 && index <= view.entry_index(k - 1))) {
      throw DecodeError(field("CapRecord.entries[" + std::to_string(k) + "].page_index"),
                        CAP_RECORD_HEADER + k * CAP_RECORD_ENTRY,
                        "page " + std::to_string(index) + " is not ascending below page_count " +
                            std::to_string(page_count));
    }
  }
  return view;
}

// The SHA-256 cap root that a record's size and page table give (defined in store.cpp).
// O(entry_count + internal nodes) hashing of 64-byte pairs.
[[nodiscard]] Hash32 cap_record_root(const CapRecordView& view);

// Computes (and caches) the SHA-256 roots of the pages that have none, on every core (defined in
// store.cpp).
void ensure_page_roots(std::span<const PageRef> pages);

}  // namespace datacap::detail
