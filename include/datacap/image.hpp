// Image data descriptors (SPEC §6) and instance memory.
//
// An Image carries its data caps page-granularly over one byte arena: each DataDesc names the
// non-zero pages of one cap as windows of the arena (trailing zeros of a page trimmed, identical
// pages sharing a window). An ImageMemory turns descriptors into caps once and composes
// instances from them with place_shared, so N instances share the image's physical pages and
// each copies only the pages it writes.
//
// Thread-safety: DataDesc and ImageLayout are plain values. An ImageBuilder is used by one
// thread at a time. ImageMemory is immutable after construction: instantiate() may be called
// from any number of threads at once.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "datacap/cap.hpp"
#include "datacap/export.hpp"
#include "datacap/types.hpp"

namespace datacap {

// Logical page `page_index` is arena[arena_off .. arena_off + len) zero-padded to a page.
struct ArenaPageRef {
  std::uint32_t page_index = 0;
  std::uint32_t arena_off = 0;
  std::uint32_t len = 0;
  friend bool operator==(const ArenaPageRef&, const ArenaPageRef&) = default;
};

struct DATACAP_API DataDesc {
  std::uint64_t size = 0;           // bytes, a PAGE_SIZE multiple
  std::vector<ArenaPageRef> pages;  // non-zero pages only, strictly ascending page_index

  // Checks SPEC §6's rules against an arena of arena_len bytes, reporting the first broken rule
  // in the SPEC's order: size not a page multiple; a len of 0 or over 4096; a window past the
  // arena; page_index >= page_count; indices not strictly ascending. Throws ValidationError
  // (rule, offending value, entry index). O(pages).
  void validate(std::uint64_t arena_len) const;

  // from_sparse_pages(size, [(page_index, window)…]) after validate(arena.size()). The cap's
  // identity depends only on {size, page_index → content}. Throws ValidationError.
  // O(total window bytes + pages · L).
  [[nodiscard]] DataCap to_data_cap(std::span<const std::uint8_t> arena) const;

  friend bool operator==(const DataDesc&, const DataDesc&) = default;
};

// Builds one arena and the descriptors of several caps or byte regions: all-zero pages elided,
// trailing zeros of each page trimmed, identical pages stored once (across every cap added).
class DATACAP_API ImageBuilder {
 public:
  // The descriptor of `cap`'s effective pages. Throws MissingPage for a Missing page (its bytes
  // are unknown), OutOfRange when the arena would pass 4 GiB (offsets are uint32).
  DataDesc add_cap(const DataCap& cap);
  // The descriptor of from_bytes_sized(bytes, size). Same errors.
  DataDesc add_bytes(std::span<const std::uint8_t> bytes, std::uint64_t size = 0);

  [[nodiscard]] const std::vector<std::uint8_t>& arena() const noexcept { return arena_; }
  // Pages stored in the arena (after deduplication).
  [[nodiscard]] std::uint64_t unique_pages() const noexcept { return windows_.size(); }

 private:
  ArenaPageRef window_for(std::uint32_t page_index, const std::uint8_t* page);
  std::vector<std::uint8_t> arena_;
  std::unordered_map<Hash32, std::pair<std::uint32_t, std::uint32_t>, Hash32Hasher> windows_;
};

// Where a data cap goes in an instance's memory.
struct ImageMapping {
  std::uint64_t offset = 0;      // bytes, page-aligned, within the extent
  std::uint32_t data_index = 0;  // which DataDesc of the image
};

struct ImageLayout {
  std::uint64_t extent = 0;  // instance memory size in bytes (a PAGE_SIZE multiple)
  std::vector<ImageMapping> mappings;
};

// An image's data caps, built once, and the instances composed from them.
class DATACAP_API ImageMemory {
 public:
  // Builds each descriptor's cap from `arena` (validating each) and checks the layout: extent a
  // page multiple within 2^32 pages, every mapping page-aligned, inside the extent and naming an
  // existing descriptor. Throws ValidationError / InvalidArgument / OutOfRange.
  ImageMemory(std::span<const std::uint8_t> arena, std::span<const DataDesc> data,
              ImageLayout layout);

  // A new instance: a clean cap of `extent` bytes whose mapped ranges share the image's pages
  // (and, where aligned, whole subtrees of its tree with their cached hashes). Pages that fall
  // past the extent are dropped. O(mappings · L) when mappings are aligned to 64 pages.
  [[nodiscard]] DataCap instantiate() const;

  [[nodiscard]] const std::vector<DataCap>& data_caps() const noexcept { return caps_; }
  [[nodiscard]] const ImageLayout& layout() const noexcept { return layout_; }

 private:
  std::vector<DataCap> caps_;
  ImageLayout layout_;
};

}  // namespace datacap
