#include <string>

#include "cap/cap_access.hpp"
#include "slab/slot_tree_check.hpp"

namespace datacap::detail {

void check_cap_invariants(const DataCap& cap) {
  const PageSlab& backing = CapAccess::backing(cap);
  TreeChecker checker;
  checker.add_tree(SlabAccess::root(backing), backing.levels(), backing.page_count(), "backing");
  const std::uint64_t overlay_pages =
      checker.add_tree(CapAccess::overlay(cap), backing.levels(), backing.page_count(), "overlay",
                       /*no_empty_nodes=*/true);
  checker.finish();
  if (overlay_pages != CapAccess::overlay_count(cap)) {
    throw TreeInvariantError(
        TreeRule::overlay, "overlay", backing.levels() == 0 ? 0 : backing.levels() - 1, 0,
        "overlay_count_ " + std::to_string(CapAccess::overlay_count(cap)) +
            " but the overlay holds " + std::to_string(overlay_pages) + " pages");
  }
}

}  // namespace datacap::detail
