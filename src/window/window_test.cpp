// GuestWindow: stores through the mapped range, harvested, must equal the same stores through
// DataCap::write and a naive model — bytes, dirty page sets and roots — on every dirty-tracking
// mechanism this host has.
#include "datacap/window.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "datacap/archive.hpp"
#include "datacap/error.hpp"
#include "page/page_pool.hpp"
#include "support/naive_model.hpp"
#include "support/seed.hpp"
#include "support/vectors.hpp"
#include "window/layout.hpp"
#include "window/tracking.hpp"

namespace datacap {
namespace {

using testing::Bytes;
using testing::NaiveCap;

std::vector<DirtyTracking> available_tracking() {
  std::vector<DirtyTracking> out;
  for (DirtyTracking t :
       {DirtyTracking::uffd_wp_scan, DirtyTracking::pagemap_scan, DirtyTracking::proc_pagemap}) {
    if (dirty_tracking_available(t)) out.push_back(t);
  }
  return out;
}

WindowOptions with(DirtyTracking t, std::uint64_t reserve = 0) {
  WindowOptions o;
  o.tracking = t;
  o.reserve_bytes = reserve;
  return o;
}

Bytes random_bytes(std::mt19937_64& rng, std::size_t n) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

std::vector<std::uint64_t> dirty_set(const DataCap& cap) {
  std::vector<std::uint64_t> out;
  cap.for_each_dirty([&](std::uint32_t i, const PageSlot&) { out.push_back(i); });
  return out;
}

// The naive model of a cap: its effective pages as a backing (the model starts clean).
NaiveCap model_of(const DataCap& cap) {
  NaiveCap m;
  m.size = cap.content_len();
  cap.for_each_page([&](std::uint32_t i, const PageSlot& slot) {
    testing::NaiveSlot s;
    if (slot.is_missing()) {
      s.missing = true;
      s.hash = slot.missing_hash();
    } else {
      s.bytes.assign(slot.page().data(), slot.page().data() + PAGE_SIZE);
      if (std::all_of(s.bytes.begin(), s.bytes.end(), [](std::uint8_t b) { return b == 0; }))
        return;
    }
    m.backing[i] = s;
  });
  return m;
}

// Effective bytes of a cap with Missing pages read as a marker (they are never stored to).
Bytes visible_bytes(const DataCap& cap) {
  Bytes out(cap.content_len());
  for (std::uint64_t p = 0; p < cap.page_count(); ++p) {
    const PageResolution r = cap.page_at(p * PAGE_SIZE);
    if (r.kind == PageResolution::Kind::missing) {
      std::fill_n(out.begin() + static_cast<std::ptrdiff_t>(p * PAGE_SIZE), PAGE_SIZE, 0xEE);
    } else {
      std::memcpy(out.data() + p * PAGE_SIZE, r.data, PAGE_SIZE);
    }
  }
  return out;
}

void expect_window_shows(const GuestWindow& w, const DataCap& cap) {
  ASSERT_EQ(w.size(), cap.content_len());
  for (std::uint64_t p = 0; p < cap.page_count(); ++p) {
    const PageResolution r = cap.page_at(p * PAGE_SIZE);
    if (r.kind == PageResolution::Kind::missing) continue;
    ASSERT_EQ(std::memcmp(w.base() + p * PAGE_SIZE, r.data, PAGE_SIZE), 0) << "page " << p;
  }
}

// A random cap: Empty runs, Loaded pages from from_bytes, pages shared from several sources
// (place_shared), Missing pages (elided), optionally random writes + flush and an overlay.
DataCap random_cap(std::mt19937_64& rng, std::uint64_t pages, bool leave_dirty) {
  DataCap cap = DataCap::zeroed(pages * PAGE_SIZE);
  const int sources = 1 + static_cast<int>(rng() % 4);
  for (int s = 0; s < sources; ++s) {
    const std::uint64_t n = 1 + rng() % (pages / 2);
    Bytes content = random_bytes(rng, n * PAGE_SIZE);
    // Some all-zero pages inside the source, so Empty pages sit between Loaded ones.
    for (std::uint64_t p = 0; p < n; p += 1 + rng() % 8)
      std::fill_n(content.begin() + static_cast<std::ptrdiff_t>(p * PAGE_SIZE), PAGE_SIZE, 0);
    const DataCap src = DataCap::from_bytes(content);
    cap.place_shared((rng() % (pages - n + 1)) * PAGE_SIZE, src);
  }
  for (int i = 0, n = static_cast<int>(rng() % 40); i < n; ++i) {
    const std::uint64_t off = rng() % (pages * PAGE_SIZE - 100);
    cap.write(off, random_bytes(rng, 1 + rng() % 99));
  }
  cap = std::move(cap).flush();
  std::vector<std::uint64_t> elide;
  for (int i = 0, n = static_cast<int>(rng() % 4); i < n; ++i) elide.push_back(rng() % pages);
  cap.elide_pages(elide);
  if (leave_dirty) {
    for (int i = 0, n = static_cast<int>(1 + rng() % 8); i < n; ++i) {
      const std::uint64_t p = rng() % pages;
      if (cap.page_slot(p).is_missing()) continue;
      cap.write(p * PAGE_SIZE + rng() % 100, random_bytes(rng, 1 + rng() % 50));
    }
    // An overlay page over a Missing backing page, and a Missing overlay page.
    const std::vector<std::uint64_t> gone = cap.missing_pages();
    if (!gone.empty() && rng() % 2 == 0)
      cap.write_page(gone[0] * PAGE_SIZE, random_bytes(rng, PAGE_SIZE));
    std::vector<std::uint64_t> dirty;
    cap.for_each_dirty([&](std::uint32_t i, const PageSlot& slot) {
      if (slot.is_loaded()) dirty.push_back(i);
    });
    if (dirty.size() > 1 && rng() % 2 == 0) {
      const std::uint64_t one[] = {dirty[1]};
      cap.elide_pages(one);
    }
  }
  return cap;
}

// A store that avoids Missing pages (a guest store there faults; the interpreter's throws).
bool random_store(std::mt19937_64& rng, const DataCap& cap, std::uint64_t& off, Bytes& bytes) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    const std::uint64_t len = 1 + rng() % 9000;
    if (len > cap.content_len()) continue;
    off = rng() % (cap.content_len() - len + 1);
    bool ok = true;
    for (std::uint64_t p = off / PAGE_SIZE; p <= (off + len - 1) / PAGE_SIZE; ++p) {
      if (cap.page_slot(p).is_missing()) ok = false;
    }
    if (!ok) continue;
    bytes = random_bytes(rng, len);
    if (rng() % 8 == 0) std::fill(bytes.begin(), bytes.end(), 0);  // zeros, into Empty pages too
    return true;
  }
  return false;
}

class WindowTier : public ::testing::TestWithParam<DirtyTracking> {};

TEST_P(WindowTier, ShowsTheCapAndHarvestsExactlyTheStores) {
  std::mt19937_64 rng(testing::env_seed(1));
  const DataCap cap = random_cap(rng, 300, false);
  GuestWindow w(cap, with(GetParam()));
  EXPECT_EQ(w.tracking(), GetParam());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(w.base()) % PAGE_SIZE, 0u);
  expect_window_shows(w, cap);
  // Nothing written yet: nothing harvested, although every page was read.
  volatile std::uint8_t sink = 0;
  for (std::uint64_t p = 0; p < cap.page_count(); ++p) {
    if (!cap.page_slot(p).is_missing())
      sink = static_cast<std::uint8_t>(sink + w.base()[p * PAGE_SIZE]);
  }
  DataCap h = w.harvest();
  EXPECT_TRUE(h.is_clean());
  EXPECT_EQ(h.flush().hash_tree_root(), cap.flush().hash_tree_root());
}

TEST_P(WindowTier, RandomStoreProgramsMatchTheInterpreterAndTheNaiveModel) {
  std::mt19937_64 rng(testing::env_seed(2));
  std::uint64_t stores = 0;
  for (int round = 0; stores < 12000; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const DataCap cap = random_cap(rng, 64 + rng() % 700, round % 3 == 2);
    GuestWindow w(cap, with(GetParam()));
    DataCap interp = cap;
    NaiveCap model = model_of(cap);
    for (int harvests = 0; harvests < 3; ++harvests) {
      for (int i = 0, n = static_cast<int>(50 + rng() % 400); i < n; ++i) {
        std::uint64_t off;
        Bytes bytes;
        if (!random_store(rng, interp, off, bytes)) continue;
        std::memcpy(w.base() + off, bytes.data(), bytes.size());
        interp.write(off, bytes);
        ASSERT_FALSE(model.write(off, bytes).has_value());
        ++stores;
      }
      const DataCap h = w.harvest();
      ASSERT_EQ(dirty_set(h), dirty_set(interp));
      ASSERT_EQ(visible_bytes(h), visible_bytes(interp));
      expect_window_shows(w, h);
      const Hash32 root = h.flush().hash_tree_root();
      ASSERT_EQ(root, interp.flush().hash_tree_root());
      NaiveCap flushed = model;
      flushed.flush();
      ASSERT_EQ(root, *flushed.root(Digest::sha256));
      ASSERT_EQ(h.flush().hash_tree_root(Digest::blake2b256), *flushed.root(Digest::blake2b256));
    }
  }
  EXPECT_GE(stores, 10000u);
}

TEST_P(WindowTier, VectorsWrittenThroughAWindowHaveTheirRoots) {
  for (const auto& row : testing::read_manifest()) {
    SCOPED_TRACE(row.file);
    const Bytes content = testing::read_file(testing::vectors_dir() + "/" + row.file);
    const DataCap zeroed =
        DataCap::from_bytes_sized({}, std::max<std::uint64_t>(row.size_arg, content.size()));
    GuestWindow w(zeroed, with(GetParam()));
    if (!content.empty()) std::memcpy(w.base(), content.data(), content.size());
    const DataCap h = w.harvest();
    EXPECT_EQ(to_hex(h.flush().hash_tree_root()), row.sha256_root);
    EXPECT_EQ(to_hex(h.flush().hash_tree_root(Digest::blake2b256)), row.blake2b256_root);
  }
}

TEST_P(WindowTier, ResetAndRemapCyclesFollowTheModel) {
  std::mt19937_64 rng(testing::env_seed(3));
  const DataCap a = random_cap(rng, 200, false);
  const DataCap b = random_cap(rng, 120, false);
  GuestWindow w(a, with(GetParam(), 256 * PAGE_SIZE));
  DataCap shown = a;      // what the window must show now
  DataCap harvested = a;  // what reset returns to
  for (int step = 0; step < 300; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    switch (rng() % 6) {
      case 0:
      case 1: {
        std::uint64_t off;
        Bytes bytes;
        if (!random_store(rng, shown, off, bytes)) break;
        std::memcpy(w.base() + off, bytes.data(), bytes.size());
        shown.write(off, bytes);
        break;
      }
      case 2: {
        const DataCap h = w.harvest();
        ASSERT_EQ(visible_bytes(h), visible_bytes(shown));
        ASSERT_EQ(dirty_set(h), dirty_set(shown));
        harvested = h;
        shown = h;
        break;
      }
      case 3:
        w.reset();
        shown = harvested;
        break;
      case 4: {  // the same backing again (flushed), or the other cap
        const DataCap next = rng() % 2 ? a : b;
        w.remap(next);
        shown = harvested = next;
        break;
      }
      case 5: {  // a flushed version of what is shown
        const DataCap next = harvested.flush();
        w.remap(next);
        shown = harvested = next;
        break;
      }
    }
    ASSERT_EQ(w.size(), shown.content_len());
    expect_window_shows(w, shown);
  }
}

TEST_P(WindowTier, SameBackingRemapsOntoOtherOverlays) {
  std::mt19937_64 rng(testing::env_seed(12));
  DataCap a = DataCap::from_bytes(random_bytes(rng, 16 * PAGE_SIZE));
  const std::uint64_t seven[] = {7};
  a.elide_pages(seven);  // a Missing backing page
  DataCap b = a;
  b.write(3 * PAGE_SIZE, Bytes(10, 0x22));
  const std::uint64_t three[] = {3};
  b.elide_pages(three);  // a Missing overlay page
  DataCap d = a;
  d.write_page(7 * PAGE_SIZE, random_bytes(rng, PAGE_SIZE));  // Loaded over the Missing one
  GuestWindow w(a, with(GetParam()));
  (void)w.harvest();
  // Each remap keeps the backing; stores after it are harvested exactly.
  for (const DataCap* next : {&b, &d, &a, &d, &b}) {
    w.remap(*next);
    expect_window_shows(w, *next);
    for (std::uint64_t p : {std::uint64_t{3}, std::uint64_t{7}}) {
      EXPECT_EQ(w.classify(w.base() + p * PAGE_SIZE).kind == WindowFault::Kind::missing,
                next->page_slot(p).is_missing())
          << "page " << p;
    }
    DataCap interp = *next;
    w.base()[0] = 0x5A;
    interp.write(0, Bytes(1, 0x5A));
    const DataCap h = w.harvest();
    ASSERT_EQ(dirty_set(h), dirty_set(interp));
    ASSERT_EQ(visible_bytes(h), visible_bytes(interp));
    // Onto the harvested cap itself: its pages stay, and a store into one of them is found.
    w.remap(h);
    w.base()[1] = 0x6B;
    interp.write(1, Bytes(1, 0x6B));
    const DataCap again = w.harvest();
    ASSERT_EQ(dirty_set(again), dirty_set(interp));
    ASSERT_EQ(visible_bytes(again), visible_bytes(interp));
    w.reset();
    expect_window_shows(w, again);
  }
}

TEST_P(WindowTier, SixtyFourWindowsOfOneImage) {
  std::mt19937_64 rng(testing::env_seed(4));
  const DataCap image = DataCap::from_bytes(random_bytes(rng, 512 * PAGE_SIZE));
  std::vector<GuestWindow> windows;
  std::vector<DataCap> interp;
  for (int i = 0; i < 64; ++i) {
    windows.emplace_back(image, with(GetParam()));
    interp.push_back(image);
  }
  for (int i = 0; i < 64; ++i) {
    for (int k = 0; k < 16; ++k) {
      const std::uint64_t off = rng() % (image.content_len() - 8);
      const std::uint64_t v = rng();
      std::memcpy(windows[static_cast<std::size_t>(i)].base() + off, &v, 8);
      interp[static_cast<std::size_t>(i)].write(off,
                                                {reinterpret_cast<const std::uint8_t*>(&v), 8});
    }
  }
  std::vector<Hash32> roots;
  for (int i = 0; i < 64; ++i) {
    const DataCap h = windows[static_cast<std::size_t>(i)].harvest();
    EXPECT_EQ(dirty_set(h), dirty_set(interp[static_cast<std::size_t>(i)]));
    roots.push_back(h.flush().hash_tree_root());
    EXPECT_EQ(roots.back(), interp[static_cast<std::size_t>(i)].flush().hash_tree_root());
  }
  std::sort(roots.begin(), roots.end());
  EXPECT_EQ(std::unique(roots.begin(), roots.end()), roots.end());
  expect_window_shows(windows[0], interp[0].flush());
}

TEST_P(WindowTier, GuestThreadsStoreConcurrently) {
  std::mt19937_64 rng(testing::env_seed(5));
  const DataCap image = DataCap::from_bytes(random_bytes(rng, 256 * PAGE_SIZE));
  GuestWindow w(image, with(GetParam()));
  DataCap interp = image;
  constexpr int THREADS = 4;
  std::vector<std::vector<std::pair<std::uint64_t, Bytes>>> programs(THREADS);
  for (int t = 0; t < THREADS; ++t) {
    // Each thread owns a quarter of the pages, so the final bytes do not depend on the order.
    const std::uint64_t lo = static_cast<std::uint64_t>(t) * 64 * PAGE_SIZE;
    for (int i = 0; i < 500; ++i) {
      const std::uint64_t len = 1 + rng() % 5000;
      const std::uint64_t off = lo + rng() % (64 * PAGE_SIZE - len);
      programs[static_cast<std::size_t>(t)].push_back({off, random_bytes(rng, len)});
    }
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < THREADS; ++t) {
    threads.emplace_back([&, t] {
      for (const auto& [off, bytes] : programs[static_cast<std::size_t>(t)])
        std::memcpy(w.base() + off, bytes.data(), bytes.size());
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& program : programs) {
    for (const auto& [off, bytes] : program) interp.write(off, bytes);
  }
  const DataCap h = w.harvest();
  EXPECT_EQ(dirty_set(h), dirty_set(interp));
  EXPECT_EQ(h.flush().hash_tree_root(), interp.flush().hash_tree_root());
}

INSTANTIATE_TEST_SUITE_P(Available, WindowTier, ::testing::ValuesIn(available_tracking()),
                         [](const auto& info) { return std::string(to_string(info.param)); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(WindowTier);

// ---- faults ------------------------------------------------------------------------------------

sigjmp_buf g_jump;
const GuestWindow* g_window = nullptr;
WindowFault g_fault;
volatile sig_atomic_t g_faults = 0;

void on_fault(int, siginfo_t* info, void*) {
  g_fault = g_window->classify(info->si_addr);
  g_faults = g_faults + 1;
  siglongjmp(g_jump, 1);
}

// Touches `p` (a read, or a write), returning whether it faulted.
bool faults(volatile std::uint8_t* p, bool write) {
  struct sigaction sa {
  }, old_segv{}, old_bus{};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, &old_segv);
  sigaction(SIGBUS, &sa, &old_bus);
  bool faulted = false;
  if (sigsetjmp(g_jump, 1) == 0) {
    if (write) {
      *p = 1;
    } else {
      (void)*p;
    }
  } else {
    faulted = true;
  }
  sigaction(SIGSEGV, &old_segv, nullptr);
  sigaction(SIGBUS, &old_bus, nullptr);
  return faulted;
}

TEST(WindowFaults, AMissingPageFaultsAndIsClassified) {
  std::mt19937_64 rng(testing::env_seed(6));
  DataCap cap = DataCap::from_bytes(random_bytes(rng, 16 * PAGE_SIZE));
  const Hash32 hash = cap.page_slot(5).page().root();
  const std::uint64_t five[] = {5};
  cap.elide_pages(five);
  WindowOptions o;
  o.reserve_bytes = 20 * PAGE_SIZE;
  o.guard_bytes = 2 * PAGE_SIZE;
  GuestWindow w(cap, o);
  g_window = &w;
  for (const bool write : {false, true}) {
    ASSERT_TRUE(faults(w.base() + 5 * PAGE_SIZE + 17, write));
    EXPECT_EQ(g_fault.kind, WindowFault::Kind::missing);
    EXPECT_EQ(g_fault.page_index, 5u);
    EXPECT_EQ(g_fault.hash, hash);
  }
  EXPECT_FALSE(faults(w.base() + 4 * PAGE_SIZE, false));
  EXPECT_FALSE(faults(w.base() + 6 * PAGE_SIZE, true));
  ASSERT_TRUE(faults(w.base() + 16 * PAGE_SIZE, false));  // reserved, past the cap
  EXPECT_EQ(g_fault.kind, WindowFault::Kind::guard);
  ASSERT_TRUE(faults(w.base() + 21 * PAGE_SIZE, true));  // the guard region
  EXPECT_EQ(g_fault.kind, WindowFault::Kind::guard);
  EXPECT_EQ(w.classify(w.base() + 22 * PAGE_SIZE).kind, WindowFault::Kind::outside);
  EXPECT_EQ(w.classify(w.base() - 1).kind, WindowFault::Kind::outside);
  EXPECT_EQ(w.classify(w.base() + 3 * PAGE_SIZE).kind, WindowFault::Kind::page);
  EXPECT_EQ(w.classify(w.base() + 3 * PAGE_SIZE).page_index, 3u);
  // The store to page 6 is harvested; the Missing page stays Missing.
  const DataCap h = w.harvest();
  EXPECT_EQ(dirty_set(h), std::vector<std::uint64_t>{6});
  EXPECT_TRUE(h.page_slot(5).is_missing());
  g_window = nullptr;
}

// ---- layouts: compaction, budgets, caches
// ---------------------------------------------------------

TEST(WindowLayout, AScatteredBackingIsCompactedOnceAndSharedByItsWindows) {
  std::mt19937_64 rng(testing::env_seed(7));
  DataCap cap = DataCap::from_bytes(random_bytes(rng, 2048 * PAGE_SIZE));
  for (int i = 0; i < 300; ++i) cap.write((rng() % 2048) * PAGE_SIZE, random_bytes(rng, 64));
  cap = std::move(cap).flush();
  WindowOptions o;
  o.max_mappings = 16;
  GuestWindow a(cap, o);
  EXPECT_LE(a.mapping_count(), 16u);
  expect_window_shows(a, cap);
  GuestWindow b(cap, o);
  EXPECT_LE(b.mapping_count(), 16u);
  expect_window_shows(b, cap);
  std::memcpy(a.base() + 100, "abc", 3);
  expect_window_shows(b, cap);  // a's store is a's alone
  DataCap interp = cap;
  interp.write(100, {reinterpret_cast<const std::uint8_t*>("abc"), 3});
  EXPECT_EQ(a.harvest().flush().hash_tree_root(), interp.flush().hash_tree_root());
}

TEST(WindowLayout, PagesMadeAfterTheFirstWindowAreMappedFromWhereTheyAre) {
  std::mt19937_64 rng(testing::env_seed(13));
  { GuestWindow first(DataCap::zeroed(PAGE_SIZE)); }
  { const DataCap dropped = DataCap::from_bytes(random_bytes(rng, 4096 * PAGE_SIZE)); }
  // On another thread too (its page cache may hold pages from before the first window).
  DataCap image;
  std::thread([&] { image = DataCap::from_bytes(random_bytes(rng, 2048 * PAGE_SIZE)); }).join();
  std::uint64_t outside = 0;
  image.for_each_page([&](std::uint32_t, const PageSlot& slot) {
    detail::PageFileLocation where;
    if (!detail::page_file_location(slot.page().data(), where)) ++outside;
  });
  EXPECT_EQ(outside, 0u);  // (reused pages need not be adjacent: the layout may still be a layer)
  GuestWindow w(image);
  expect_window_shows(w, image);
}

TEST(WindowLayout, MissingRunsBeyondTheBudgetAreUnsupported) {
  std::mt19937_64 rng(testing::env_seed(8));
  DataCap cap = DataCap::from_bytes(random_bytes(rng, 64 * PAGE_SIZE));
  std::vector<std::uint64_t> every_other;
  for (std::uint64_t p = 0; p < 64; p += 2) every_other.push_back(p);
  cap.elide_pages(every_other);
  WindowOptions o;
  o.max_mappings = 8;
  try {
    GuestWindow w(cap, o);
    FAIL() << "mapped 32 Missing runs in 8 mappings";
  } catch (const Unsupported& e) {
    EXPECT_NE(std::string(e.what()).find("max_mappings 8"), std::string::npos) << e.what();
  }
  o.max_mappings = 64;
  GuestWindow w(cap, o);
  expect_window_shows(w, cap);
}

TEST(WindowLayout, PagesBorrowedFromAnArchiveAreMappedThroughALayer) {
  std::mt19937_64 rng(testing::env_seed(9));
  const DataCap cap = DataCap::from_bytes(random_bytes(rng, 100 * PAGE_SIZE));
  const std::string path =
      ::testing::TempDir() + "/window_layer_" + std::to_string(::getpid()) + ".dcap";
  write_archive(cap, path);
  const OpenedArchive opened = open_archive(path);
  std::remove(path.c_str());
  GuestWindow w(opened.cap);
  expect_window_shows(w, cap);
  std::memcpy(w.base() + 5000, "xyz", 3);
  DataCap interp = cap;
  interp.write(5000, {reinterpret_cast<const std::uint8_t*>("xyz"), 3});
  EXPECT_EQ(w.harvest().flush().hash_tree_root(), interp.flush().hash_tree_root());
}

TEST(WindowLayout, ABackingChangedInPlaceAfterItsWindowsIsMappedAnew) {
  std::mt19937_64 rng(testing::env_seed(10));
  DataCap cap = DataCap::from_bytes(random_bytes(rng, 64 * PAGE_SIZE));
  { GuestWindow w(cap); }  // caches the backing's layout
  const Bytes page = random_bytes(rng, PAGE_SIZE);
  cap.put_page(7 * PAGE_SIZE, page);  // the backing is this cap's alone: changed in place
  GuestWindow w(cap);
  expect_window_shows(w, cap);
  EXPECT_EQ(std::memcmp(w.base() + 7 * PAGE_SIZE, page.data(), PAGE_SIZE), 0);
}

TEST(WindowLayout, RemapSizesAndErrors) {
  const DataCap small = DataCap::zeroed(4 * PAGE_SIZE);
  const DataCap big = DataCap::zeroed(64 * PAGE_SIZE);
  GuestWindow w(small, {});
  EXPECT_EQ(w.reserved_bytes(), 4 * PAGE_SIZE);
  EXPECT_THROW(w.remap(big), OutOfRange);
  expect_window_shows(w, small);
  GuestWindow wide(big, {});
  wide.remap(small);
  EXPECT_EQ(wide.size(), small.content_len());
  EXPECT_EQ(wide.classify(wide.base() + 10 * PAGE_SIZE).kind, WindowFault::Kind::guard);
  wide.remap(DataCap());
  EXPECT_EQ(wide.size(), 0u);
  EXPECT_TRUE(wide.harvest().is_clean());
  WindowOptions bad;
  bad.max_mappings = 0;
  EXPECT_THROW(GuestWindow(small, bad), InvalidArgument);
  WindowOptions huge;
  huge.reserve_bytes = ~std::uint64_t{0} - 2 * PAGE_SIZE;
  EXPECT_THROW(GuestWindow(small, huge), InvalidArgument);  // with the guard: past 2^64
  huge.reserve_bytes = std::uint64_t{1} << 62;              // fits 64 bits, not the address space
  EXPECT_THROW(GuestWindow(small, huge), IoError);
  huge.reserve_bytes = ~std::uint64_t{0};
  EXPECT_THROW(GuestWindow(small, huge), InvalidArgument);
  GuestWindow moved = std::move(wide);
  EXPECT_EQ(wide.base(), nullptr);  // NOLINT(bugprone-use-after-move): the documented state
  EXPECT_THROW((void)wide.harvest(), InvalidArgument);
  EXPECT_EQ(wide.classify(moved.base()).kind, WindowFault::Kind::outside);
}

// ---- tracking selection -------------------------------------------------------------------------

TEST(WindowTracking, NoMechanismIsUnsupportedAndTheInterpreterPathIsUnaffected) {
  const DataCap cap = DataCap::from_bytes(Bytes(3 * PAGE_SIZE, 7));
  detail::disable_dirty_tracking_for_tests(0b111);
  EXPECT_THROW(GuestWindow w(cap), Unsupported);
  detail::disable_dirty_tracking_for_tests(0b001);  // userfaultfd off: the next one is chosen
  if (dirty_tracking_available(DirtyTracking::pagemap_scan)) {
    GuestWindow w(cap);
    EXPECT_EQ(w.tracking(), DirtyTracking::pagemap_scan);
    EXPECT_THROW(GuestWindow(cap, with(DirtyTracking::uffd_wp_scan)), Unsupported);
  }
  detail::disable_dirty_tracking_for_tests(0);
  DataCap interp = cap;
  interp.write(10, Bytes(5, 1));
  EXPECT_EQ(interp.dirty_page_count(), 1u);
}

TEST(WindowTracking, TheEnvironmentChoosesAndBadNamesAreRefused) {
  const DataCap cap = DataCap::zeroed(PAGE_SIZE);
  ::setenv("DATACAP_DIRTY_TRACKING", "no_such_thing", 1);
  EXPECT_THROW(GuestWindow w(cap), InvalidArgument);
  for (DirtyTracking t : available_tracking()) {
    ::setenv("DATACAP_DIRTY_TRACKING", to_string(t), 1);
    EXPECT_EQ(GuestWindow(cap).tracking(), t);
  }
  ::unsetenv("DATACAP_DIRTY_TRACKING");
}

TEST(WindowTracking, ThisHostHasTheFirstTier) {
  // The machines this project runs on have Linux >= 6.7; a regression here would silently move
  // every window to a slower tier.
  EXPECT_TRUE(dirty_tracking_available(DirtyTracking::uffd_wp_scan) ||
              std::getenv("DATACAP_EXPECT_NO_UFFD") != nullptr);
}

// ---- fork ---------------------------------------------------------------------------------------

#if !defined(__SANITIZE_THREAD__)
TEST(WindowFork, AChildsCapsAndWindowsAreItsOwn) {
  std::mt19937_64 rng(testing::env_seed(11));
  { GuestWindow first(DataCap::zeroed(PAGE_SIZE)); }  // pages come from arenas from now on
  const DataCap image = DataCap::from_bytes(random_bytes(rng, 32 * PAGE_SIZE));
  { GuestWindow cached(image); }  // the image's layout (naming an arena) is cached
  DataCap cap = image;
  cap.write(100, Bytes(10, 1));  // an overlay page this cap owns alone: patched in place
  const Bytes before = visible_bytes(cap);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The parent changes the same page in place as soon as fork() returns there, and drops and
    // allocates pages: none of it may reach this process's caps or windows.
    int status = 0;
    try {
      ::usleep(100000);
      if (visible_bytes(cap) != before) status = 3;
      // A descriptor opened here must not be taken for the arena's by the cached layout.
      const int other = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
      GuestWindow w(image);
      if (std::memcmp(w.base(), visible_bytes(image).data(), image.content_len()) != 0) status = 4;
      std::vector<DataCap> mine;
      for (int i = 0; i < 64; ++i) mine.push_back(DataCap::from_bytes(Bytes(8 * PAGE_SIZE, 0x55)));
      cap.write(100, Bytes(10, 2));
      if (cap.page_at(0).data[100] != 2) status = 5;
      if (other >= 0) ::close(other);
    } catch (...) {
      status = 6;
    }
    ::_exit(status);
  }
  cap.write(100, Bytes(10, 9));  // at once, in place
  std::vector<DataCap> ours;
  for (int i = 0; i < 64; ++i) ours.push_back(DataCap::from_bytes(Bytes(8 * PAGE_SIZE, 0x33)));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(cap.page_at(0).data[100], 9);
  for (const DataCap& c : ours) ASSERT_EQ(c.page_at(0).data[0], 0x33);
}
#endif

}  // namespace
}  // namespace datacap
