// One function per decoder: what a fuzzer does with one input. Shared by the libFuzzer binaries
// (fuzz/*_fuzz.cpp) and by tests/fuzz_replay_test.cpp, which replays the seed corpus and every
// saved regression in an ordinary test run.
//
// Each function feeds untrusted bytes to a decoder and checks what must hold whatever the
// input: a typed DecodeError / ValidationError or a value that re-encodes and decodes to itself.
// Anything else (a crash, another exception, a failed check) is a finding.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <span>

#include "datacap/datacap.hpp"
#include "archive/archive_internal.hpp"

#include <cstring>
#include <new>

namespace datacap::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();  // the fuzzer's (and the test's) signal that an invariant broke
}

inline void page_slot_input(std::span<const std::uint8_t> data) {
  for (Digest digest : {Digest::sha256, Digest::blake2b256}) {
    PageSlot slot;
    try {
      slot = decode_page_slot(data, digest);
    } catch (const DecodeError&) {
      continue;
    }
    const auto again = encode_page_slot(slot, digest);
    check(decode_page_slot(again, digest) == slot);
  }
}

// The first 4 bytes choose how much of the rest is the arena; the remainder is a DataDesc.
inline void data_desc_input(std::span<const std::uint8_t> data) {
  if (data.size() < 4) return;
  const std::size_t arena_len = (data[0] | data[1] << 8) % (data.size() - 3);
  const auto arena = data.subspan(4, std::min(arena_len, data.size() - 4));
  const auto wire = data.subspan(4 + arena.size());
  DataDesc desc;
  try {
    desc = decode_data_desc(wire);
  } catch (const DecodeError&) {
    return;
  }
  check(encode_data_desc(desc).size() == wire.size());
  check(decode_data_desc(encode_data_desc(desc)) == desc);
  // Keep the cap small: a fuzzed size of 2^60 bytes would only test zero subtrees.
  if (desc.size > (std::uint64_t{1} << 32)) return;
  try {
    desc.validate(arena.size());
  } catch (const ValidationError&) {
    return;
  }
  const DataCap cap = desc.to_data_cap(arena);
  check(cap.content_len() == std::max<std::uint64_t>(desc.size, PAGE_SIZE));
  check(cap.backing().stored_page_count() <= desc.pages.size());
  (void)cap.hash_tree_root();
}

// An archive image: opened from memory through the same reader as files, in both modes.
inline void archive_input(std::span<const std::uint8_t> data) {
  for (ArchiveVerify mode : {ArchiveVerify::structure, ArchiveVerify::full}) {
    auto* file = new detail::MappedFile();
    file->heap = true;
    file->len = data.size();
    file->base = ::operator new(std::max<std::size_t>(data.size(), 1), std::align_val_t{PAGE_SIZE});
    if (!data.empty()) std::memcpy(file->base, data.data(), data.size());
    try {
      OpenedArchive a = detail::open_archive_image(file, mode);
      if (mode == ArchiveVerify::full) {
        check(a.cap.flush().hash_tree_root(a.info.digest) == a.info.root);
      } else {
        try {  // lazy: every page checked on first hash; a bad one is a DecodeError, never a hang
          (void)a.cap.flush().hash_tree_root(a.info.digest);
        } catch (const DecodeError&) {
        }
      }
      check(a.cap.content_len() == a.info.content_len);
      check(a.cap.dirty_page_count() == a.info.dirty_pages);
    } catch (const DecodeError&) {
    }
    file->release();
  }
}

}  // namespace datacap::fuzz
