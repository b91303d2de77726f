// The exception guarantees of DataCap's mutators (cap.hpp: when they throw, the cap is
// unchanged) and the effective-page iterator.
#include <gtest/gtest.h>

#include <unistd.h>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "cap/cap_access.hpp"
#include "datacap/datacap.hpp"
#include "page/page_pool.hpp"
#include "support/seed.hpp"

namespace datacap {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes all_bytes(const DataCap& cap) {
  Bytes out(cap.content_len());
  cap.copy_into(0, out);
  return out;
}

struct Snapshot {
  Bytes bytes;
  std::uint64_t dirty = 0;
  std::vector<std::uint64_t> missing;
  Hash32 flushed_root{};
};

Snapshot snapshot(const DataCap& cap) {
  Snapshot s;
  s.dirty = cap.dirty_page_count();
  s.missing = cap.missing_pages();
  if (s.missing.empty()) s.bytes = all_bytes(cap);
  s.flushed_root = cap.flush().hash_tree_root();
  return s;
}

void expect_same(const Snapshot& a, const Snapshot& b, const std::string& where) {
  EXPECT_EQ(a.bytes, b.bytes) << where;
  EXPECT_EQ(a.dirty, b.dirty) << where;
  EXPECT_EQ(a.missing, b.missing) << where;
  EXPECT_EQ(a.flushed_root, b.flushed_root) << where;
}

// A cap with backing pages, a copy sharing them, and overlay pages of its own.
DataCap mixed_cap(std::mt19937_64& rng, std::uint64_t pages) {
  Bytes bytes(pages * PAGE_SIZE);
  for (std::uint64_t p = 0; p < pages; p += 2) {
    for (std::size_t i = 0; i < PAGE_SIZE; i += 64)
      bytes[p * PAGE_SIZE + i] = static_cast<std::uint8_t>(rng() | 1);
  }
  DataCap cap = DataCap::from_bytes(bytes);
  for (int k = 0; k < 6; ++k) {
    const Bytes patch(1 + rng() % 100, static_cast<std::uint8_t>(rng() | 1));
    cap.write(rng() % (cap.content_len() - patch.size()), patch);
  }
  return cap;
}

TEST(CapGuarantee, AWriteThatRunsOutOfMemoryLeavesTheCapAsItWas) {
  std::mt19937_64 rng(testing::env_seed(15));
  for (int round = 0; round < 40; ++round) {
    DataCap cap = mixed_cap(rng, 64);
    const DataCap sibling = cap;  // shares the overlay: written pages must be copied, not patched
    const std::uint64_t off = rng() % (20 * PAGE_SIZE);
    const Bytes data(1 + rng() % (12 * PAGE_SIZE), static_cast<std::uint8_t>(rng()));
    const Snapshot before = snapshot(cap);
    const Snapshot sibling_before = snapshot(sibling);
    const std::uint64_t pages = (off + data.size() - 1) / PAGE_SIZE - off / PAGE_SIZE + 1;
    // Fail at every allocation the write makes, then let it succeed.
    bool succeeded = false;
    for (std::int64_t fail_at = 0; fail_at <= static_cast<std::int64_t>(pages) && !succeeded;
         ++fail_at) {
      detail::fail_page_allocations_after(fail_at);
      try {
        cap.write(off, data);
        succeeded = true;
      } catch (const std::bad_alloc&) {
        detail::check_cap_invariants(cap);  // no overlay node left without a page below it
        expect_same(
            snapshot(cap), before,
            "round " + std::to_string(round) + " failing allocation " + std::to_string(fail_at));
      }
      detail::fail_page_allocations_after(-1);
    }
    ASSERT_TRUE(succeeded) << "a write of " << pages << " pages made more than " << pages
                           << " page allocations";
    Bytes expected = before.bytes;
    std::copy(data.begin(), data.end(), expected.begin() + static_cast<std::ptrdiff_t>(off));
    EXPECT_EQ(all_bytes(cap), expected);
    expect_same(snapshot(sibling), sibling_before, "sibling");
  }
}

// A failed write into pages whose overlay leaf (and the nodes above it) does not exist yet must
// not leave those nodes behind: flush() walked into an empty one (a heap overflow under ASan).
TEST(CapGuarantee, AFailedWriteLeavesNoEmptyOverlayNodes) {
  for (const std::uint64_t pages : {std::uint64_t{1}, std::uint64_t{3}, std::uint64_t{70}}) {
    for (std::int64_t fail_at = 0; fail_at < static_cast<std::int64_t>(pages); ++fail_at) {
      DataCap cap = DataCap::zeroed(300000 * PAGE_SIZE);  // three radix levels
      cap.write(7, Bytes(3, 1));                          // an overlay elsewhere
      const Hash32 before = cap.flush().hash_tree_root();
      detail::fail_page_allocations_after(fail_at);
      EXPECT_THROW(cap.write(250000 * PAGE_SIZE - 5, Bytes(pages * PAGE_SIZE - 10, 9)),
                   std::bad_alloc);
      detail::fail_page_allocations_after(-1);
      detail::check_cap_invariants(cap);
      EXPECT_EQ(cap.dirty_page_count(), 1u);
      EXPECT_EQ(cap.flush().hash_tree_root(), before) << pages << " pages, failing at " << fail_at;
    }
  }
  DataCap clean = DataCap::zeroed(5000 * PAGE_SIZE);
  detail::fail_page_allocations_after(0);
  EXPECT_THROW(clean.write(4500 * PAGE_SIZE, Bytes(PAGE_SIZE, 1)), std::bad_alloc);
  detail::fail_page_allocations_after(-1);
  detail::check_cap_invariants(clean);
  EXPECT_EQ(clean.flush().hash_tree_root(), DataCap::zeroed(5000 * PAGE_SIZE).hash_tree_root());
}

std::string temp_path(const char* name) {
  return ::testing::TempDir() + "/" + name + "-" + std::to_string(::getpid());
}

TEST(CapGuarantee, ElideAndResolveAreAllOrNothing) {
  std::mt19937_64 rng(testing::env_seed(16));
  DataCap base = mixed_cap(rng, 32).flush();
  // An archive of it, opened without full verification, with payload 3's bytes damaged: the
  // damage surfaces when elide_pages hashes that page, after it elided the pages before it.
  const std::string path = temp_path("elide");
  (void)write_archive(base, path);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(PAGE_SIZE * 4 + 100));  // header page, then payload 3
    f.put('\x5a');
  }
  ASSERT_THROW((void)open_archive(path, ArchiveVerify::full), DecodeError);
  DataCap lazy = open_archive(path, ArchiveVerify::structure).cap;
  std::vector<std::uint64_t> damaged;  // found through a copy: the lazy cap's pages stay unhashed
  {
    const DataCap probe = open_archive(path, ArchiveVerify::structure).cap;
    for (std::uint64_t i = 0; i < probe.page_count(); ++i) {
      try {
        (void)probe.page_slot(i).root();
      } catch (const DecodeError&) {
        damaged.push_back(i);
      }
    }
  }
  ASSERT_EQ(damaged.size(), 1u);
  ASSERT_GT(damaged[0], 0u) << "pages before the damaged one are elided first";
  std::remove(path.c_str());
  lazy.write(((damaged[0] + 1) % lazy.page_count()) * PAGE_SIZE, Bytes(10, 7));  // an overlay page
  const auto missing_before = lazy.missing_pages();
  const std::uint64_t dirty_before = lazy.dirty_page_count();
  std::vector<std::uint64_t> every(lazy.page_count());
  for (std::uint64_t i = 0; i < every.size(); ++i) every[i] = i;
  EXPECT_THROW(lazy.elide_pages(every), DecodeError);
  EXPECT_EQ(lazy.missing_pages(), missing_before);
  EXPECT_EQ(lazy.dirty_page_count(), dirty_before);
  EXPECT_EQ(lazy.page_at(0).kind, PageResolution::Kind::bytes);

  // resolve_missing checks everything first; the commit is built aside.
  DataCap cap = base;
  const std::vector<std::uint64_t> elide = {0, 2, 4, 6};
  const Bytes original = all_bytes(cap);
  cap.elide_pages(elide);
  EXPECT_EQ(cap.missing_pages(), elide);
  std::vector<DataCap::ResolvedPage> pages;
  for (std::uint64_t i : elide) {
    pages.push_back({i, PageRef::copy_of(std::span(original).subspan(i * PAGE_SIZE, PAGE_SIZE))});
  }
  auto wrong = pages;
  wrong.back().page = PageRef::copy_of(Bytes(PAGE_SIZE, 1));
  EXPECT_THROW(cap.resolve_missing(wrong), IntegrityError);
  EXPECT_EQ(cap.missing_pages(), elide);
  cap.resolve_missing(pages);
  EXPECT_TRUE(cap.missing_pages().empty());
  EXPECT_EQ(all_bytes(cap), original);
  EXPECT_EQ(cap.hash_tree_root(), base.hash_tree_root());
}

TEST(CapPages, ForEachPageVisitsTheEffectivePagesInOrder) {
  std::mt19937_64 rng(testing::env_seed(17));
  for (int round = 0; round < 30; ++round) {
    const std::uint64_t pages = 1 + rng() % 5000;
    DataCap cap(DataCap::zeroed(pages * PAGE_SIZE));
    for (int k = 0; k < 40; ++k)
      cap.put_page((rng() % pages) * PAGE_SIZE, Bytes(8, static_cast<std::uint8_t>(rng() | 1)));
    for (int k = 0; k < 40; ++k) {
      const std::uint64_t p = rng() % pages;
      if (rng() % 4 == 0) {
        cap.write_page(p * PAGE_SIZE, {});  // a zero overlay page shadowing the backing
      } else {
        cap.write(p * PAGE_SIZE + rng() % PAGE_SIZE,
                  Bytes(1, static_cast<std::uint8_t>(rng() | 1)));
      }
    }
    if (round % 3 == 0) cap.elide_pages(std::vector<std::uint64_t>{rng() % pages, rng() % pages});
    std::vector<std::uint32_t> seen;
    cap.for_each_page([&](std::uint32_t i, const PageSlot& slot) {
      seen.push_back(i);
      EXPECT_TRUE(slot == cap.page_slot(i)) << "page " << i;
      EXPECT_FALSE(slot.is_empty());
    });
    std::vector<std::uint32_t> expected;
    for (std::uint32_t i = 0; i < pages; ++i) {
      if (!cap.page_slot(i).is_empty()) expected.push_back(i);
    }
    EXPECT_EQ(seen, expected) << "round " << round;
  }
}

}  // namespace
}  // namespace datacap

namespace datacap {
namespace {

// missing_pages() (a walk of the tree that skips the per-page callback) against the naive model:
// every page asked one by one. Missing pages in the backing, in the overlay (a dirty page later
// elided), under overlay pages (written over, so not Missing), Empty stretches, shared backings.
TEST(CapPages, MissingPagesMatchesAskingEveryPage) {
  std::mt19937_64 rng(testing::env_seed(23));
  for (int round = 0; round < 40; ++round) {
    const std::uint64_t pages = 1 + rng() % 5000;
    Bytes bytes(pages * PAGE_SIZE);
    for (std::uint64_t p = 0; p < pages; ++p) {
      if (rng() % 4 != 0)
        bytes[p * PAGE_SIZE + rng() % PAGE_SIZE] = static_cast<std::uint8_t>(1 + rng() % 255);
    }
    DataCap base = DataCap::from_bytes(bytes);
    std::vector<std::uint64_t> elide;
    for (std::uint64_t p = 0; p < pages; ++p) {
      if (rng() % 3 == 0) elide.push_back(p);
    }
    base.elide_pages(elide);
    DataCap cap = base;  // shares the backing
    for (int w = 0; w < static_cast<int>(rng() % 20); ++w) {
      const std::uint64_t page = rng() % pages;
      if (cap.page_slot(page).is_missing()) {
        cap.write_page(page * PAGE_SIZE, Bytes(PAGE_SIZE, 9));  // a whole page replaces it
      } else {
        cap.write(page * PAGE_SIZE + rng() % 3000, Bytes(1 + rng() % 300, 9));
      }
    }
    if (rng() % 2 == 0) {
      std::vector<std::uint64_t> more;  // may name overlay pages too
      for (int k = 0; k < 10; ++k) more.push_back(rng() % pages);
      std::sort(more.begin(), more.end());
      more.erase(std::unique(more.begin(), more.end()), more.end());
      cap.elide_pages(more);
    }
    for (const DataCap* c : {&base, &cap}) {
      std::vector<std::uint64_t> naive;
      for (std::uint64_t p = 0; p < c->page_count(); ++p) {
        if (c->page_slot(p).is_missing()) naive.push_back(p);
      }
      ASSERT_EQ(c->missing_pages(), naive) << "round " << round;
    }
  }
}

}  // namespace
}  // namespace datacap
