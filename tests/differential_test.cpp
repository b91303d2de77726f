// Randomized differential test: random sequences of every DataCap operation on several caps
// (copies, writes, flushes, place_shared, Missing pages, errors) applied to the library and to
// the naive model, comparing effective bytes, slots and roots (both digests) after each step.
//
// The seed is printed on failure; rerun with DATACAP_SEED=<seed> to reproduce, and
// DATACAP_DIFF_OPS=<n> to change the length (default 100,000 operations). Every 4th operation
// (DATACAP_DIFF_INVARIANTS_EVERY) and at the end, the caps' slot trees are also checked
// against their invariants (detail::check_cap_invariants).
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>
#include <string>

#include "cap/cap_access.hpp"
#include "datacap/datacap.hpp"
#include "slab/slot_tree_check.hpp"
#include "support/naive_model.hpp"

namespace datacap::testing {
namespace {

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

template <class F>
std::optional<ErrorKind> kind_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.kind();
  }
  return std::nullopt;
}

class Differential {
 public:
  explicit Differential(std::uint64_t seed) : rng_(seed) {
    for (std::size_t i = 0; i < CAPS; ++i) reset(i);
  }

  // One random operation on one cap, then, every INVARIANTS_EVERY-th operation, the slot tree
  // invariants of that cap (a full walk that re-hashes its pages: checking after every
  // operation doubles the run time under ASan). DATACAP_DIFF_INVARIANTS_EVERY=<k> overrides
  // (1: every operation, 0: never).
  void step(std::uint64_t n) {
    const std::size_t a = pick(CAPS);
    apply(n, a);
    if (invariants_every_ != 0 && n % invariants_every_ == 0 && !::testing::Test::HasFailure()) {
      check_invariants(a);
    }
  }

  void apply(std::uint64_t n, std::size_t a) {
    const std::uint64_t op = pick(100);
    if (op < 20) return op_write(a);
    if (op < 30) return op_write_page(a);
    if (op < 38) return op_put_page(a);
    if (op < 46) return op_insert_overlay(a);
    if (op < 52) return op_place_shared(a);
    if (op < 60) return op_copy(a);
    if (op < 72) return op_flush(a, n);
    if (op < 76) return op_root(a);
    if (op < 88) return op_read(a);
    if (op < 90) return reset(a);
    if (op < 95) return op_out_of_range(a);
    return op_check(a);
  }

  void check_all() {
    for (std::size_t i = 0; i < CAPS; ++i) {
      check(i);
      check_invariants(i);
    }
  }

  // The slot tree invariants of a cap's backing and overlay (cap/cap_access.hpp).
  void check_invariants(std::size_t a) {
    ASSERT_NO_THROW(detail::check_cap_invariants(caps_[a])) << "cap " << a;
  }

  std::uint64_t roots_compared = 0;

 private:
  static constexpr std::size_t CAPS = 4;
  // Page counts: single page, tiny, a leaf node boundary, two and three radix levels.
  static constexpr std::uint64_t SIZES[] = {1, 2, 3, 5, 63, 64, 65, 130, 4097};

  std::uint64_t pick(std::uint64_t n) {
    return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng_);
  }

  Bytes random_content(std::size_t max_len) {
    const std::uint64_t kind = pick(10);
    std::size_t len = kind < 3 ? max_len : static_cast<std::size_t>(pick(max_len + 1));
    Bytes b(len);
    if (kind == 0) return Bytes(len, 0);  // zeros: canonical-form and shadowing cases
    if (kind == 1 && !pool_.empty()) {    // an earlier content: duplicates across pages and caps
      b = pool_[pick(pool_.size())];
      b.resize(std::min(b.size(), max_len));
      return b;
    }
    for (auto& x : b) x = static_cast<std::uint8_t>(pick(4) == 0 ? 0 : pick(256));
    if (pool_.size() < 64) pool_.push_back(b);
    return b;
  }

  // A page-relative offset biased to the interesting places: page starts, ends, straddles.
  std::uint64_t random_offset(std::uint64_t size) {
    const std::uint64_t page = pick(size / PAGE_SIZE);
    switch (pick(4)) {
      case 0:
        return page * PAGE_SIZE;
      case 1:
        return page * PAGE_SIZE + PAGE_SIZE - 1 - pick(16);
      default:
        return page * PAGE_SIZE + pick(PAGE_SIZE);
    }
  }

  void reset(std::size_t a) {
    std::uint64_t pages = SIZES[pick(std::size(SIZES))];
    Bytes content(
        static_cast<std::size_t>(std::min<std::uint64_t>(pages, 8) * PAGE_SIZE - pick(PAGE_SIZE)));
    for (auto& x : content) x = static_cast<std::uint8_t>(pick(3) == 0 ? 0 : pick(256));
    if (pick(2) == 0) {
      caps_[a] = DataCap::from_bytes_sized(content, pages * PAGE_SIZE);
      model_[a] = naive_from_bytes_sized(content, pages * PAGE_SIZE);
    } else {
      // from_sparse_pages with the same content as a few scattered pages.
      std::vector<SparsePage> named;
      Bytes flat;
      std::vector<Bytes> held;
      std::set<std::uint32_t> used;
      for (int k = 0; k < 4; ++k) {
        const auto p = static_cast<std::uint32_t>(pick(pages));
        if (!used.insert(p).second) continue;
        held.push_back(random_content(PAGE_SIZE));
      }
      std::size_t k = 0;
      for (std::uint32_t p : used) named.push_back(SparsePage{p, held[k++]});
      caps_[a] = DataCap::from_sparse_pages(pages * PAGE_SIZE, named);
      NaiveCap m;
      m.size = pages * PAGE_SIZE;
      k = 0;
      for (std::uint32_t p : used) {
        Bytes page = held[k++];
        page.resize(PAGE_SIZE, 0);
        if (std::any_of(page.begin(), page.end(), [](std::uint8_t x) { return x != 0; })) {
          m.backing[p] = NaiveSlot{false, page, {}};
        }
      }
      model_[a] = m;
    }
  }

  void op_write(std::size_t a) {
    const std::uint64_t size = model_[a].size;
    const std::uint64_t off = random_offset(size);
    const std::size_t max_len =
        static_cast<std::size_t>(std::min<std::uint64_t>(size - off, 3 * PAGE_SIZE));
    const Bytes bytes = random_content(pick(8) == 0 ? max_len : std::min<std::size_t>(max_len, 64));
    expect_same(model_[a].write(off, bytes), kind_of([&] { caps_[a].write(off, bytes); }), "write");
  }
  void op_write_page(std::size_t a) {
    const std::uint64_t off = random_offset(model_[a].size);
    const Bytes content = random_content(PAGE_SIZE);
    expect_same(model_[a].write_page(off, content),
                kind_of([&] { caps_[a].write_page(off, content); }), "write_page");
  }
  void op_put_page(std::size_t a) {
    const std::uint64_t off = random_offset(model_[a].size);
    const Bytes content = random_content(PAGE_SIZE);
    expect_same(model_[a].put_page(off, content), kind_of([&] { caps_[a].put_page(off, content); }),
                "put_page");
  }
  void op_insert_overlay(std::size_t a) {
    const std::uint64_t p = pick(model_[a].page_count());
    const std::uint64_t kind = pick(3);
    std::optional<NaiveSlot> m;
    PageSlot s;
    if (kind == 1) {
      const Bytes content = random_content(PAGE_SIZE);
      m = NaiveSlot{false, content, {}};
      m->bytes.resize(PAGE_SIZE, 0);
      s = PageSlot::loaded(PageRef::copy_of(content));
    } else if (kind == 2) {
      Hash32 h{};
      for (auto& x : h) x = static_cast<std::uint8_t>(pick(256));
      if (pick(2) == 0) {  // a Missing slot that carries a real page's root: interchangeable
        const Bytes content = random_content(PAGE_SIZE);
        h = page_root(Digest::sha256, content);
      }
      m = NaiveSlot{true, {}, h};
      s = PageSlot::missing(h);
    }
    expect_same(model_[a].insert_overlay_page(p, m),
                kind_of([&] { caps_[a].insert_overlay_page(p, s); }), "insert_overlay_page");
  }
  void op_place_shared(std::size_t a) {
    const std::size_t b = pick(CAPS);
    const std::uint64_t dst =
        pick(model_[a].page_count() + 2) * PAGE_SIZE + (pick(10) == 0 ? 8 : 0);
    const NaiveCap src_model = model_[b];
    expect_same(model_[a].place_shared(dst, src_model),
                kind_of([&] { caps_[a].place_shared(dst, caps_[b]); }), "place_shared");
  }
  void op_copy(std::size_t a) {
    const std::size_t b = pick(CAPS);
    caps_[a] = caps_[b];
    model_[a] = model_[b];
  }
  void op_flush(std::size_t a, std::uint64_t n) {
    if (pick(2) == 0) {
      caps_[a] = caps_[a].flush();
    } else {
      caps_[a] = std::move(caps_[a]).flush();
    }
    model_[a].flush();
    check(a);
    compare_root(a, n % 8 == 0 ? Digest::blake2b256 : Digest::sha256);
  }
  void op_root(std::size_t a) {
    const Digest d = pick(4) == 0 ? Digest::blake2b256 : Digest::sha256;
    if (model_[a].overlay.empty()) return compare_root(a, d);
    expect_same(ErrorKind::dirty_cap, kind_of([&] { (void)caps_[a].hash_tree_root(d); }),
                "hash_tree_root on a dirty cap");
  }
  void compare_root(std::size_t a, Digest d) {
    const auto expected = model_[a].root(d);
    ASSERT_TRUE(expected.has_value());
    ASSERT_EQ(to_hex(*expected), to_hex(caps_[a].hash_tree_root(d)))
        << "root, digest " << to_string(d);
    ++roots_compared;
  }
  void op_read(std::size_t a) {
    const std::uint64_t size = model_[a].size;
    const std::uint64_t start = random_offset(size);
    Bytes want(
        static_cast<std::size_t>(std::min<std::uint64_t>(size - start, pick(3 * PAGE_SIZE))));
    Bytes got(want.size(), 0xEE);
    const auto expected = model_[a].copy_into(start, want);
    expect_same(expected, kind_of([&] { caps_[a].copy_into(start, got); }), "copy_into");
    if (!expected) {
      ASSERT_EQ(want, got) << "copy_into bytes at " << start;
    }
    const PageResolution r = caps_[a].page_at(start);
    const auto e = model_[a].effective(start / PAGE_SIZE);
    if (!e) {
      ASSERT_EQ(r.kind, PageResolution::Kind::zero);
      ASSERT_EQ(r.data, zero_page());
    } else if (e->missing) {
      ASSERT_EQ(r.kind, PageResolution::Kind::missing);
      ASSERT_EQ(r.missing_hash, e->hash);
    } else {
      ASSERT_EQ(r.kind, PageResolution::Kind::bytes);
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(r.data) % PAGE_SIZE, 0u);
      ASSERT_TRUE(std::equal(e->bytes.begin(), e->bytes.end(), r.data));
    }
  }
  void op_out_of_range(std::size_t a) {
    const std::uint64_t size = model_[a].size;
    const Bytes one(1, 7);
    const Bytes too_long(PAGE_SIZE + 1, 7);
    expect_same(ErrorKind::out_of_range, kind_of([&] { caps_[a].write(size, one); }),
                "write past end");
    expect_same(ErrorKind::out_of_range, kind_of([&] { caps_[a].write_page(size, one); }),
                "write_page past end");
    expect_same(ErrorKind::out_of_range, kind_of([&] { caps_[a].put_page(0, too_long); }),
                "put_page too long");
    expect_same(ErrorKind::out_of_range,
                kind_of([&] { (void)caps_[a].page_slot(size / PAGE_SIZE); }), "page_slot past end");
    expect_same(ErrorKind::out_of_range, kind_of([&] { (void)caps_[a].page_at(size); }),
                "page_at past end");
    check(a);  // nothing changed
  }
  void op_check(std::size_t a) { check(a); }

  void expect_same(std::optional<ErrorKind> expected, std::optional<ErrorKind> got,
                   const char* what) {
    ASSERT_EQ(expected.has_value(), got.has_value())
        << what << ": expected " << (expected ? to_string(*expected) : "success") << ", got "
        << (got ? to_string(*got) : "success");
    if (expected) {
      ASSERT_EQ(to_string(*expected), to_string(*got)) << what;
    }
  }

  // Every page that either side stores, plus a few others, must resolve identically.
  void check(std::size_t a) {
    const DataCap& cap = caps_[a];
    const NaiveCap& m = model_[a];
    ASSERT_EQ(cap.content_len(), m.size);
    ASSERT_EQ(cap.dirty_page_count(), m.overlay.size());
    ASSERT_EQ(cap.is_clean(), m.overlay.empty());
    std::set<std::uint64_t> pages;
    for (const auto& [p, s] : m.backing) pages.insert(p);
    for (const auto& [p, s] : m.overlay) pages.insert(p);
    cap.backing().for_each_stored([&](std::uint32_t p, const PageSlot& s) {
      pages.insert(p);
      if (s.is_loaded()) {
        EXPECT_FALSE(s.page().is_zero()) << "backing holds a Loaded zero page " << p;
      }
    });
    cap.for_each_dirty([&](std::uint32_t p, const PageSlot&) { pages.insert(p); });
    for (int k = 0; k < 3; ++k) pages.insert(pick(m.page_count()));
    for (std::uint64_t p : pages) {
      const PageSlot s = cap.page_slot(p);
      const auto e = m.effective(p);
      ASSERT_EQ(cap.is_dirty(p), m.overlay.count(p) == 1) << "is_dirty " << p;
      if (!e) {
        ASSERT_TRUE(s.is_empty()) << "page " << p << " should be Empty, is " << to_string(s.kind());
      } else if (e->missing) {
        ASSERT_TRUE(s.is_missing()) << "page " << p;
        ASSERT_EQ(s.missing_hash(), e->hash);
      } else {
        ASSERT_TRUE(s.is_loaded()) << "page " << p << " is " << to_string(s.kind());
        ASSERT_TRUE(std::equal(e->bytes.begin(), e->bytes.end(), s.page().data())) << "page " << p;
      }
    }
  }

  static constexpr std::uint64_t INVARIANTS_EVERY = 4;
  std::uint64_t invariants_every_ = env_or("DATACAP_DIFF_INVARIANTS_EVERY", INVARIANTS_EVERY);
  std::mt19937_64 rng_;
  DataCap caps_[CAPS];
  NaiveCap model_[CAPS];
  std::vector<Bytes> pool_;
};

TEST(Differential, RandomOperationSequencesMatchTheNaiveModel) {
  const std::uint64_t seed = env_or("DATACAP_SEED", 20261126);
  const std::uint64_t ops = env_or("DATACAP_DIFF_OPS", 100000);
  SCOPED_TRACE("DATACAP_SEED=" + std::to_string(seed));
  Differential d(seed);
  for (std::uint64_t n = 0; n < ops; ++n) {
    SCOPED_TRACE("operation " + std::to_string(n));
    d.step(n);
    if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) {
      FAIL() << "stopped at operation " << n << " (seed " << seed << ")";
    }
  }
  d.check_all();
  EXPECT_GT(d.roots_compared, ops / 20);
}

// The same, shorter, with each SHA-256 kernel pinned: every kernel computes every root.
class DifferentialPerIsa : public ::testing::TestWithParam<Isa> {};

TEST_P(DifferentialPerIsa, RandomOperationSequencesMatchTheNaiveModel) {
  if (!isa_available(GetParam())) GTEST_SKIP() << "this CPU lacks " << to_string(GetParam());
  const Isa before = active_isa();
  set_isa(GetParam());
  const std::uint64_t seed =
      env_or("DATACAP_SEED", 20261126) + static_cast<std::uint64_t>(GetParam());
  const std::uint64_t ops = env_or("DATACAP_DIFF_OPS", 100000) / 5;
  SCOPED_TRACE("DATACAP_SEED=" + std::to_string(seed) + " ISA " + to_string(GetParam()));
  Differential d(seed);
  for (std::uint64_t n = 0; n < ops; ++n) {
    d.step(n);
    if (::testing::Test::HasFailure()) {
      set_isa(before);
      FAIL() << "stopped at operation " << n << " (seed " << seed << ")";
    }
  }
  d.check_all();
  set_isa(before);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, DifferentialPerIsa,
                         ::testing::Values(Isa::portable, Isa::avx2, Isa::avx512, Isa::shani),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
}  // namespace datacap::testing
