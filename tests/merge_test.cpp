// Flushes that fold overlays spanning many leaves into shared backings, against the naive
// model: an rvalue flush frees the overlay during the merge, so caps sharing that overlay (whole
// or in part) must be left intact; and roots recomputed across many leaves at once (settled in
// chunks) must equal the model's, with pages to hash and with only known page roots.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>

#include "cap/cap_access.hpp"
#include "datacap/datacap.hpp"
#include "slab/slot_tree_check.hpp"
#include "support/naive_model.hpp"

namespace datacap::testing {
namespace {

Bytes random_page(std::mt19937_64& rng) {
  Bytes page(PAGE_SIZE);
  for (auto& b : page) b = static_cast<std::uint8_t>(rng());
  return page;
}

// Page indices spread over many 64-page leaves of a cap of `pages` pages.
std::vector<std::uint64_t> spread(std::mt19937_64& rng, std::uint64_t pages, std::size_t n) {
  std::set<std::uint64_t> picked;
  while (picked.size() < n) picked.insert(rng() % pages);
  return {picked.begin(), picked.end()};
}

// The slot tree invariants of a cap's backing and overlay (cap/cap_access.hpp).
void expect_invariants(const DataCap& cap, const std::string& what) {
  EXPECT_NO_THROW(detail::check_cap_invariants(cap)) << what;
}

void expect_same(const DataCap& cap, const NaiveCap& model, const char* what) {
  DataCap flushed = cap.flush();
  NaiveCap settled = model;
  settled.flush();
  for (Digest d : {Digest::sha256, Digest::blake2b256}) {
    EXPECT_EQ(to_hex(flushed.hash_tree_root(d)), to_hex(*settled.root(d)))
        << what << " " << to_string(d);
  }
  expect_invariants(cap, std::string(what) + " (after its flush)");
  expect_invariants(flushed, std::string(what) + " flushed, roots cached");
}

TEST(Merge, RvalueFlushLeavesCapsSharingTheOverlayIntact) {
  std::mt19937_64 rng(41);
  constexpr std::uint64_t PAGES = 40000;  // three radix levels
  DataCap a = DataCap::zeroed(PAGES * PAGE_SIZE);
  NaiveCap ma;
  ma.size = PAGES * PAGE_SIZE;
  for (std::uint64_t i : spread(rng, PAGES, 400)) {  // ~400 overlay leaves
    const Bytes page = random_page(rng);
    a.write_page(i * PAGE_SIZE, page);
    ma.write_page(i * PAGE_SIZE, page);
  }
  const DataCap whole = a;  // shares a's entire overlay
  const NaiveCap m_whole = ma;
  for (std::uint64_t i : spread(rng, PAGES, 100)) {  // a's overlay now partly path-copied
    const Bytes page = random_page(rng);
    a.write_page(i * PAGE_SIZE, page);
    ma.write_page(i * PAGE_SIZE, page);
  }
  const DataCap part = a;  // shares a's overlay after the writes
  const NaiveCap m_part = ma;
  a.write(123 * PAGE_SIZE + 7, Bytes(5000, 9));  // one more path copy under a
  ma.write(123 * PAGE_SIZE + 7, Bytes(5000, 9));
  expect_invariants(a, "a before its flush");
  expect_invariants(whole, "whole");
  expect_invariants(part, "part");

  const DataCap flushed = std::move(a).flush();
  NaiveCap settled = ma;
  settled.flush();
  EXPECT_TRUE(flushed.is_clean());
  EXPECT_EQ(to_hex(flushed.hash_tree_root()), to_hex(*settled.root(Digest::sha256)));
  expect_invariants(flushed, "a flushed as an rvalue");
  expect_invariants(whole, "whole after a's flush");
  expect_invariants(part, "part after a's flush");
  // The sharers still see every page of their own overlays.
  EXPECT_EQ(whole.dirty_page_count(), m_whole.overlay.size());
  EXPECT_EQ(part.dirty_page_count(), m_part.overlay.size());
  for (const auto& [index, slot] : m_whole.overlay) {
    Bytes got(PAGE_SIZE);
    whole.copy_into(index * PAGE_SIZE, got);
    ASSERT_EQ(got, slot.bytes) << index;
  }
  expect_same(whole, m_whole, "whole");
  expect_same(part, m_part, "part");
  // And the same flush of an unshared overlay (everything freed during the merge).
  DataCap alone = DataCap::zeroed(PAGES * PAGE_SIZE);
  for (const auto& [index, slot] : m_whole.overlay) alone.write_page(index * PAGE_SIZE, slot.bytes);
  EXPECT_EQ(to_hex(std::move(alone).flush().hash_tree_root()),
            to_hex(whole.flush().hash_tree_root()));
}

TEST(Merge, RootsRecomputedAcrossManyLeavesMatchTheModel) {
  std::mt19937_64 rng(43);
  constexpr std::uint64_t PAGES = 1 << 16;  // 1024 leaves
  DataCap base = DataCap::zeroed(PAGES * PAGE_SIZE);
  NaiveCap model;
  model.size = PAGES * PAGE_SIZE;
  const std::vector<std::uint64_t> stored = spread(rng, PAGES, 3000);  // pages to hash: > 1024
  std::vector<Hash32> roots;
  for (std::uint64_t i : stored) {
    const Bytes page = random_page(rng);
    base.put_page(i * PAGE_SIZE, page);
    model.put_page(i * PAGE_SIZE, page);
    roots.push_back(naive_page_root(Digest::sha256, page));
  }
  const Hash32 root = base.hash_tree_root();
  ASSERT_EQ(to_hex(root), to_hex(*model.root(Digest::sha256)));
  expect_invariants(base, "base");

  // Every stored page rewritten as Missing with its own root, over ~950 leaves: nothing to
  // hash but nodes; the root must not move.
  DataCap same = base;
  for (std::size_t n = 0; n < stored.size(); ++n)
    same.insert_overlay_page(stored[n], PageSlot::missing(roots[n]));
  same = std::move(same).flush();
  EXPECT_EQ(to_hex(same.hash_tree_root()), to_hex(root));
  expect_invariants(same, "same");

  // Half of them as Missing of other hashes, the other half rewritten with new bytes.
  DataCap changed = base;
  for (std::size_t n = 0; n < stored.size(); ++n) {
    if (n % 2 == 0) {
      Hash32 h{};
      for (auto& b : h) b = static_cast<std::uint8_t>(rng());
      changed.insert_overlay_page(stored[n], PageSlot::missing(h));
      model.insert_overlay_page(stored[n], NaiveSlot{true, {}, h});
    } else {
      const Bytes page = random_page(rng);
      changed.write_page(stored[n] * PAGE_SIZE, page);
      model.write_page(stored[n] * PAGE_SIZE, page);
    }
  }
  changed = std::move(changed).flush();
  model.flush();
  EXPECT_EQ(to_hex(changed.hash_tree_root()), to_hex(*model.root(Digest::sha256)));
  EXPECT_EQ(to_hex(base.hash_tree_root()), to_hex(root));  // the shared original is unchanged
  expect_invariants(changed, "changed");
  expect_invariants(base, "base at the end");
}

}  // namespace
}  // namespace datacap::testing
