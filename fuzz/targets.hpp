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

#include "archive/archive_internal.hpp"
#include "datacap/datacap.hpp"
#include "store/record.hpp"
#include "store/redis_client.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>
#include <string>

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

// The streamed reader (ArchiveReader, which the CLI uses) on the same bytes, through a memfd:
// it accepts exactly what the in-memory reader accepts under full verification, with the same
// info and root, and delivers exactly the flushed cap's Loaded pages.
inline void archive_reader_agrees(std::span<const std::uint8_t> data, const OpenedArchive* full) {
  const int fd = ::memfd_create("archive", MFD_CLOEXEC);
  if (fd < 0) return;
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  try {
    const ArchiveReader reader(path);
    reader.verify();
    check(full != nullptr);
    check(reader.info().root == full->info.root);
    check(reader.info().flushed_loaded_pages == full->info.flushed_loaded_pages);
    check(reader.info().flushed_missing_pages == full->info.flushed_missing_pages);
    check(reader.info().stored_pages == full->info.stored_pages);
    if (reader.info().flushed_missing_pages == 0) {
      const DataCap flushed = full->cap.flush();
      std::uint64_t delivered = 0;
      reader.for_each_page([&](std::uint64_t index, const std::uint8_t* bytes) {
        const PageResolution r = flushed.page_at(index * PAGE_SIZE);
        check(r.kind == PageResolution::Kind::bytes && std::memcmp(r.data, bytes, PAGE_SIZE) == 0);
        ++delivered;
      });
      check(delivered == reader.info().flushed_loaded_pages);
    }
  } catch (const DecodeError&) {
    check(full == nullptr);
  }
  ::close(fd);
}

// An archive image: opened from memory through the same reader as files, in both modes, and
// through the streamed reader. The tree is bounded (a crafted sparse archive can ask for ~5 KiB
// per 8-byte entry): over the bound is an OutOfRange, as the CLI's limit gives.
inline void archive_input(std::span<const std::uint8_t> data) {
  constexpr std::uint64_t MAX_TREE = std::uint64_t{256} << 20;
  for (ArchiveVerify mode : {ArchiveVerify::full, ArchiveVerify::structure}) {
    auto* file = new detail::MappedFile();
    file->heap = true;
    file->len = data.size();
    file->base =
        ::operator new (std::max<std::size_t>(data.size(), 1), std::align_val_t{PAGE_SIZE});
    if (!data.empty()) std::memcpy(file->base, data.data(), data.size());
    try {
      OpenedArchive a = detail::open_archive_image(file, mode, "Archive", MAX_TREE);
      if (mode == ArchiveVerify::full) {
        check(a.cap.flush().hash_tree_root(a.info.digest) == a.info.root);
        archive_reader_agrees(data, &a);
      } else {
        try {  // lazy: every page checked on first hash; a bad one is a DecodeError, never a hang
          (void)a.cap.flush().hash_tree_root(a.info.digest);
        } catch (const DecodeError&) {
        }
      }
      check(a.cap.content_len() == a.info.content_len);
      check(a.cap.dirty_page_count() == a.info.dirty_pages);
    } catch (const DecodeError&) {
      if (mode == ArchiveVerify::full) archive_reader_agrees(data, nullptr);
    } catch (const OutOfRange&) {
    }
    file->release();
  }
}

// A saved cap's record as a store hands it back (a damaged disk, a foreign writer): a typed
// DecodeError, or a record whose re-encoding is the same bytes.
inline void cap_record_input(std::span<const std::uint8_t> data) {
  detail::CapRecordView view;
  try {
    view = detail::parse_cap_record(data);
  } catch (const DecodeError&) {
    return;
  }
  std::vector<std::uint8_t> again;
  detail::begin_cap_record(again, view.content_len);
  for (std::uint64_t k = 0; k < view.entry_count; ++k) {
    detail::append_cap_record_entry(again, view.entry_index(k), view.entry_root(k));
  }
  detail::end_cap_record(again, view.entry_count);
  check(again.size() == data.size() && std::memcmp(again.data(), data.data(), data.size()) == 0);
  const SavedCap summary = PageStore::record_summary(Hash32{}, data);
  check(summary.content_len == view.content_len && summary.page_entries == view.entry_count);
}

// Replies from a peer that may not be a Redis server (detail::redis::parse_reply, what the store
// reads pipelined replies with): every reply it accepts is the one hiredis's own reader makes of
// the same bytes (hiredis is laxer: whatever it alone accepts is fine), every shorter prefix of it
// is need_more with a need within the reply (a reply arriving a little at a time reads the
// same), and nothing is read outside the bytes given.
inline void redis_reply_input(std::span<const std::uint8_t> data) {
  const auto* bytes = reinterpret_cast<const char*>(data.data());
  std::size_t at = 0;
  while (at < data.size()) {
    redisReply ours{};
    std::size_t used = 0, need = 0, searched = 0;
    const detail::redis::ReplyParse result =
        detail::redis::parse_reply(bytes + at, data.size() - at, ours, used, need, searched);
    if (result == detail::redis::ReplyParse::need_more) {
      check(need > data.size() - at);
      return;
    }
    if (result != detail::redis::ReplyParse::reply) return;
    check(used >= 3 && used <= data.size() - at);
    // Prefixes, searched on from one call to the next as the client does.
    std::size_t carried = 0;
    for (std::size_t k = 0; k < used; k += 1 + k / 64) {
      redisReply partial{};
      std::size_t partial_used = 0, partial_need = 0;
      check(detail::redis::parse_reply(bytes + at, k, partial, partial_used, partial_need,
                                       carried) == detail::redis::ReplyParse::need_more);
      check(partial_need > k && partial_need <= used);
    }
    redisReader* reader = redisReaderCreate();
    check(reader != nullptr);
    void* raw = nullptr;
    check(redisReaderFeed(reader, bytes + at, used) == REDIS_OK);
    check(redisReaderGetReply(reader, &raw) == REDIS_OK && raw != nullptr);
    const auto* theirs = static_cast<const redisReply*>(raw);
    check(theirs->type == ours.type);
    if (ours.type == REDIS_REPLY_INTEGER) check(theirs->integer == ours.integer);
    if (ours.type == REDIS_REPLY_STRING || ours.type == REDIS_REPLY_STATUS ||
        ours.type == REDIS_REPLY_ERROR) {
      check(theirs->len == ours.len && ours.str >= bytes + at &&
            ours.str + ours.len <= bytes + at + used &&
            std::memcmp(theirs->str, ours.str, ours.len) == 0);
    }
    freeReplyObject(raw);
    redisReaderFree(reader);
    at += used;
  }
}

// Proofs from an untrusted peer: verification returns true or false, never crashes or throws,
// and a proof it accepts for some root is rejected for any other root.
inline void proof_input(std::span<const std::uint8_t> data) {
  if (data.size() < 12) return;
  auto take64 = [&](std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | data[at + static_cast<std::size_t>(i)];
    return v;
  };
  // Sizes from tiny to 2^32 pages (and malformed ones), indices anywhere.
  const std::uint64_t mask = (data[8] & 1) != 0 ? ~std::uint64_t{0} : ~std::uint64_t{0xFFF};
  const std::uint64_t content_len = (take64(0) % (std::uint64_t{1} << 45)) & mask;
  const std::size_t leaves = 1 + data[9] % 8;
  std::size_t at = 12;
  auto take_hash = [&] {
    Hash32 h{};
    for (std::size_t i = 0; i < 32 && at < data.size(); ++i) h[i] = data[at++];
    return h;
  };
  MultiProof multi;
  multi.content_len = content_len;
  for (std::size_t k = 0; k < leaves && at + 4 <= data.size(); ++k) {
    const std::uint64_t index =
        data[at] | data[at + 1] << 8 | data[at + 2] << 16 | std::uint64_t{data[at + 3]} << 24;
    at += 4;
    multi.page_indices.push_back(index);
    multi.leaves.push_back(take_hash());
  }
  while (at < data.size() && multi.helpers.size() < 64) multi.helpers.push_back(take_hash());
  const Hash32 root = multi.helpers.empty() ? Hash32{} : multi.helpers.front();
  Hash32 other = root;
  other[0] ^= 1;
  if (verify_multiproof(multi, root)) check(!verify_multiproof(multi, other));
  PageProof single;
  single.content_len = content_len;
  single.page_index = multi.page_indices.empty() ? 0 : multi.page_indices.front();
  single.leaf = multi.leaves.empty() ? Hash32{} : multi.leaves.front();
  single.branch = multi.helpers;
  if (verify_page_proof(single, root)) check(!verify_page_proof(single, other));
  RangeProof range;
  range.offset = take64(0) % (content_len + 1);
  range.length = data[10];
  range.pages = multi;
  range.page_bytes.assign(multi.page_indices.size() * PAGE_SIZE, data[11]);
  (void)verify_range_proof(range, root);
}

}  // namespace datacap::fuzz
