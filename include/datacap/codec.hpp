// SSZ wire forms of SPEC §5: PageSlot, PageBytes, ArenaPageRef, DataDesc. Byte layouts:
// docs/format.md §1.
//
// Every decoder takes untrusted bytes: any malformed input is a DecodeError naming the field and
// the byte offset, never a crash, an abort or an allocation the input cannot back. A decoder
// consumes exactly its input: trailing bytes are an error. Decoders build their result aside
// and return it whole.
//
// Thread-safety: pure functions; safe to call concurrently.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "datacap/export.hpp"
#include "datacap/hash.hpp"
#include "datacap/image.hpp"
#include "datacap/page.hpp"

namespace datacap {

// Size limits that follow from the types: a PageBytes list holds at most one page.
inline constexpr std::size_t PAGE_BYTES_FIXED = 36;  // hash(32) + offset(4)
inline constexpr std::size_t ARENA_PAGE_REF_SIZE = 12;
inline constexpr std::size_t DATA_DESC_FIXED = 12;  // size(8) + offset(4)

// PageBytes {hash, bytes}: hash(32) || u32 offset (= 36) || bytes. Encoding trims the page's
// trailing zeros (a canonical, compact form); decoding accepts 0..4096 bytes, zero-pads them to a
// page and checks that `hash` is that page's root under `digest` (a mismatch is a DecodeError).
// O(PAGE_SIZE).
DATACAP_API std::vector<std::uint8_t> encode_page_bytes(const PageRef& page,
                                                        Digest digest = Digest::sha256);
DATACAP_API PageRef decode_page_bytes(std::span<const std::uint8_t> bytes,
                                      Digest digest = Digest::sha256);

// PageSlot: Empty → 0x00; Loaded → 0x01 || PageBytes; Missing → 0x02 || hash(32).
DATACAP_API std::vector<std::uint8_t> encode_page_slot(const PageSlot& slot,
                                                       Digest digest = Digest::sha256);
DATACAP_API PageSlot decode_page_slot(std::span<const std::uint8_t> bytes,
                                      Digest digest = Digest::sha256);

// ArenaPageRef: page_index || arena_off || len, each u32 little-endian (12 bytes).
DATACAP_API std::array<std::uint8_t, ARENA_PAGE_REF_SIZE> encode_arena_page_ref(
    const ArenaPageRef& ref);
DATACAP_API ArenaPageRef decode_arena_page_ref(std::span<const std::uint8_t> bytes);

// DataDesc: size(u64) || u32 offset (= 12) || 12 bytes per ArenaPageRef. Decoding checks the
// form only; DataDesc::validate checks the rules. O(pages).
DATACAP_API std::vector<std::uint8_t> encode_data_desc(const DataDesc& desc);
DATACAP_API DataDesc decode_data_desc(std::span<const std::uint8_t> bytes);

}  // namespace datacap
