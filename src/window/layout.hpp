// Internal: a window's layout of a cap — which runs of pages map from which file range, which
// are anonymous zero memory and which are Missing (PROT_NONE) — and the compaction that lays a
// fragmented backing out contiguously in a sealed memfd of its own.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "datacap/cap.hpp"
#include "datacap/hash.hpp"
#include "slab/slot_tree.hpp"

namespace datacap::detail {

struct Segment {
  enum class Kind : std::uint8_t { zero, file, missing };
  std::uint64_t first_page = 0;
  std::uint64_t page_count = 0;
  Kind kind = Kind::zero;
  int fd = -1;               // file: the file mapped (a pool arena or the layout's layer)
  std::uint64_t offset = 0;  // file: byte offset of first_page's bytes in it
};

struct MissingPage {
  std::uint64_t page_index;
  Hash32 hash;
};

// Immutable once built; cached on a backing's root node (NodeAttachment) and shared by every
// window of that backing, or owned by one window (a cap with an overlay).
struct Layout final : NodeAttachment {
  std::uint64_t page_count = 0;
  std::vector<Segment> segments;     // ascending, adjacent, covering [0, page_count)
  std::vector<MissingPage> missing;  // ascending by page_index
  int layer_fd = -1;                 // the compacted layer, if any (mappings keep the file alive)
  bool compacted = false;

  Layout() = default;
  Layout(const Layout&) = delete;
  Layout& operator=(const Layout&) = delete;
  ~Layout() override;
};

// The layout of `cap` in at most `max_mappings` segments: direct (pages mapped from the page
// pool's arenas) when that fits and every Loaded page is in an arena, else compacted (O(n)
// copies into a new sealed memfd). A clean cap's layout is cached on its backing's root node
// and returned from there (`owned` untouched); otherwise it is built into `owned`. Throws
// Unsupported when the Missing runs alone need more than max_mappings segments, IoError when
// the kernel refuses the layer, std::bad_alloc.
const Layout& layout_of(const DataCap& cap, std::uint32_t max_mappings,
                        std::unique_ptr<Layout>& owned);

}  // namespace datacap::detail
