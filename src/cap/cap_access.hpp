// Internal: the library's own access to a DataCap's representation (its backing slab, overlay
// tree and overlay page count), for builders and invariant checks; DataCap names it a friend.
#pragma once

#include <cstdint>

#include "datacap/cap.hpp"
#include "slab/slot_tree.hpp"

namespace datacap::detail {

struct CapAccess {
  static const PageSlab& backing(const DataCap& cap) noexcept { return cap.backing_; }
  static PageSlab& backing(DataCap& cap) noexcept { return cap.backing_; }
  static const TreeNode* overlay(const DataCap& cap) noexcept { return cap.overlay_; }
  static TreeNode*& overlay(DataCap& cap) noexcept { return cap.overlay_; }
  static std::uint64_t overlay_count(const DataCap& cap) noexcept { return cap.overlay_count_; }
  static std::uint64_t& overlay_count(DataCap& cap) noexcept { return cap.overlay_count_; }
};

// Checks the slot tree invariants (slab/slot_tree_check.hpp) of the cap's backing and overlay
// together — the overlay has the backing's levels and page count, none of its nodes is
// childless — and that overlay_count_ is the overlay's number of pages. Throws
// TreeInvariantError (kind() integrity) on the first broken rule.
// Cost: O(nodes + pages · page hash), see slot_tree_check.hpp; for tests and debugging.
// REQUIRES: nothing mutates or hashes the cap, or any cap sharing its nodes, meanwhile.
void check_cap_invariants(const DataCap& cap);

}  // namespace datacap::detail
