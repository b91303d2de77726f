// Edge cases of the cap operations and every error the library reports.
#include <gtest/gtest.h>

#include "datacap/datacap.hpp"
#include "support/naive_model.hpp"

namespace datacap::testing {
namespace {

Bytes filled(std::size_t n, std::uint8_t v) { return Bytes(n, v); }

Hash32 builder_root(std::uint64_t size, const std::vector<std::pair<std::uint64_t, Bytes>>& pages) {
  CapRootBuilder b;
  for (const auto& [index, bytes] : pages) {
    b.append_zero_pages(index - b.page_count());
    b.append_page(bytes);
  }
  return b.finish(size);
}

TEST(CapEdge, EmptyCap) {
  const DataCap cap = DataCap::empty();
  EXPECT_EQ(cap.content_len(), 0u);
  EXPECT_EQ(cap.page_count(), 0u);
  EXPECT_TRUE(cap.is_clean());
  // merkleize([], 1) = 0^32, size 0: hash(0^32, 0^32) = zero[1].
  EXPECT_EQ(cap.hash_tree_root(), zero_hash(Digest::sha256, 1));
  EXPECT_THROW((void)cap.page_at(0), OutOfRange);
  Bytes none;
  EXPECT_NO_THROW(cap.copy_into(0, none));
  DataCap copy = cap;
  EXPECT_NO_THROW(copy.write(0, none));
  EXPECT_THROW(copy.write(0, filled(1, 1)), OutOfRange);
  EXPECT_NO_THROW(copy.place_shared(0, DataCap::from_bytes(filled(10, 1))));  // all clamped
  EXPECT_EQ(copy.hash_tree_root(), cap.hash_tree_root());
}

TEST(CapEdge, SizesRoundUpToAtLeastOnePage) {
  EXPECT_EQ(DataCap::from_bytes({}).content_len(), PAGE_SIZE);
  EXPECT_EQ(DataCap::from_bytes(filled(1, 1)).content_len(), PAGE_SIZE);
  EXPECT_EQ(DataCap::from_bytes(filled(PAGE_SIZE + 1, 1)).content_len(), 2 * PAGE_SIZE);
  EXPECT_EQ(DataCap::from_bytes_sized(filled(10, 1), 3 * PAGE_SIZE - 5).content_len(),
            3 * PAGE_SIZE);
  EXPECT_EQ(DataCap::from_bytes_sized(filled(3 * PAGE_SIZE, 1), 10).content_len(), 3 * PAGE_SIZE);
  EXPECT_EQ(DataCap::from_sparse_pages(0, {}).content_len(), PAGE_SIZE);
}

TEST(CapEdge, OnePage) {
  DataCap cap = DataCap::from_bytes(filled(5, 9));
  EXPECT_EQ(cap.page_count(), 1u);
  EXPECT_EQ(cap.page_at(4095).kind, PageResolution::Kind::bytes);
  const auto model = naive_from_bytes_sized(filled(5, 9), 0);
  EXPECT_EQ(cap.hash_tree_root(), *model.root(Digest::sha256));
  EXPECT_EQ(cap.hash_tree_root(Digest::blake2b256), *model.root(Digest::blake2b256));
}

TEST(CapEdge, SparseCapsOfTwoToTheTwentyPagesAndOneMore) {
  for (std::uint64_t pages : {std::uint64_t{1} << 20, (std::uint64_t{1} << 20) + 1}) {
    SCOPED_TRACE(pages);
    const std::uint64_t size = pages * PAGE_SIZE;
    const Bytes a = filled(100, 0xab), b = filled(PAGE_SIZE, 0x01);
    const std::vector<std::pair<std::uint64_t, Bytes>> named = {
        {0, a}, {777777, b}, {pages - 1, a}};
    std::vector<SparsePage> sparse;
    for (const auto& [i, bytes] : named)
      sparse.push_back(SparsePage{static_cast<std::uint32_t>(i), bytes});
    const DataCap cap = DataCap::from_sparse_pages(size, sparse);
    NaiveCap model;
    model.size = size;
    for (const auto& [i, bytes] : named) {
      Bytes p = bytes;
      p.resize(PAGE_SIZE);
      model.backing[i] = NaiveSlot{false, p, {}};
    }
    EXPECT_EQ(to_hex(cap.hash_tree_root()), to_hex(*model.root(Digest::sha256)));
    EXPECT_EQ(cap.hash_tree_root(), builder_root(size, named));
    EXPECT_EQ(cap.backing().stored_page_count(), 3u);
  }
}

TEST(CapEdge, LastPageOfATwoToTheThirtyTwoPageCap) {
  const std::uint64_t size = MAX_PAGE_COUNT * PAGE_SIZE;  // 16 TiB
  DataCap cap = DataCap::zeroed(size);
  EXPECT_EQ(cap.page_count(), MAX_PAGE_COUNT);
  const Bytes content = filled(PAGE_SIZE, 0x5a);
  cap.write(size - PAGE_SIZE, content);
  EXPECT_TRUE(cap.is_dirty(MAX_PAGE_COUNT - 1));
  EXPECT_THROW((void)cap.hash_tree_root(), DirtyCap);
  const DataCap flushed = cap.flush();
  EXPECT_EQ(flushed.hash_tree_root(), builder_root(size, {{MAX_PAGE_COUNT - 1, content}}));
  Bytes last(1);
  flushed.copy_into(size - 1, last);
  EXPECT_EQ(last[0], 0x5a);
  EXPECT_EQ(flushed.page_at(size - 1).kind, PageResolution::Kind::bytes);
  EXPECT_EQ(flushed.page_at(size - PAGE_SIZE - 1).kind, PageResolution::Kind::zero);
  EXPECT_THROW((void)flushed.page_at(size), OutOfRange);
  EXPECT_THROW(DataCap::zeroed(size + PAGE_SIZE), OutOfRange);
  EXPECT_THROW(DataCap::from_bytes_sized({}, size + 1), OutOfRange);
  // The empty 16 TiB cap's root needs no hashing of zeros: zero[32] under the size.
  EXPECT_EQ(DataCap::zeroed(size).hash_tree_root(),
            hash_pair(Digest::sha256, size_root(size), zero_hash(Digest::sha256, 32)));
}

TEST(CapEdge, WritesStraddlePageBoundaries) {
  DataCap cap = DataCap::from_bytes(filled(3 * PAGE_SIZE, 0x11));
  const Bytes patch = filled(PAGE_SIZE + 20, 0x22);
  cap.write(PAGE_SIZE - 10, patch);  // pages 0 (tail), 1 (whole), 2 (head)
  EXPECT_EQ(cap.dirty_page_count(), 3u);
  Bytes got(3 * PAGE_SIZE);
  cap.copy_into(0, got);
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool patched = i >= PAGE_SIZE - 10 && i < 2 * PAGE_SIZE + 10;
    ASSERT_EQ(got[i], patched ? 0x22 : 0x11) << i;
  }
}

TEST(CapEdge, WriteToAnOwnedPagePatchesInPlace) {
  DataCap cap = DataCap::from_bytes(filled(2 * PAGE_SIZE, 1));
  cap.write(10, filled(4, 2));
  const std::uint8_t* first = cap.page_at(0).data;
  const std::uint64_t live = live_page_count();
  cap.write(20, filled(4, 3));
  cap.write_page(0, filled(8, 4));
  EXPECT_EQ(cap.page_at(0).data, first);  // no new copy per store
  EXPECT_EQ(live_page_count(), live);
  // Once the overlay is shared by a copy, the next write copies.
  DataCap copy = cap;
  copy.write(30, filled(1, 5));
  EXPECT_NE(copy.page_at(0).data, first);
  EXPECT_EQ(cap.page_at(0).data, first);
  Bytes b(1);
  cap.copy_into(30, b);
  EXPECT_EQ(b[0], 0);  // write_page zero-padded the page
  copy.copy_into(30, b);
  EXPECT_EQ(b[0], 5);
}

TEST(CapEdge, ZeroWriteShadowsANonZeroBackingPage) {
  const DataCap base = DataCap::from_bytes(filled(2 * PAGE_SIZE, 0xff));
  DataCap cap = base;
  cap.write_page(PAGE_SIZE, {});
  EXPECT_TRUE(cap.is_dirty(1));
  EXPECT_TRUE(cap.page_slot(1).is_loaded());  // explicit Loaded zero page in the overlay
  EXPECT_EQ(cap.page_at(PAGE_SIZE).kind, PageResolution::Kind::bytes);
  Bytes got(PAGE_SIZE);
  cap.copy_into(PAGE_SIZE, got);
  EXPECT_EQ(got, Bytes(PAGE_SIZE, 0));
  const DataCap flushed = cap.flush();
  EXPECT_TRUE(flushed.page_slot(1).is_empty());  // canonical again
  EXPECT_EQ(flushed.hash_tree_root(),
            DataCap::from_bytes_sized(filled(PAGE_SIZE, 0xff), 2 * PAGE_SIZE).hash_tree_root());
  EXPECT_TRUE(base.page_slot(1).is_loaded());
  // put_page of zeros is canonical at once.
  DataCap put = base;
  put.put_page(PAGE_SIZE, filled(PAGE_SIZE, 0));
  EXPECT_TRUE(put.page_slot(1).is_empty());
  EXPECT_EQ(put.hash_tree_root(), flushed.hash_tree_root());
}

TEST(CapEdge, PlaceSharedClampsAndSharesPages) {
  const DataCap src = DataCap::from_bytes(filled(4 * PAGE_SIZE, 7));
  DataCap dst = DataCap::from_bytes(filled(3 * PAGE_SIZE, 9));
  dst.place_shared(2 * PAGE_SIZE, src);  // src pages 1..3 fall past the end
  EXPECT_EQ(dst.content_len(), 3 * PAGE_SIZE);
  EXPECT_EQ(dst.page_at(2 * PAGE_SIZE).data, src.page_at(0).data);  // shared, not copied
  Bytes got(PAGE_SIZE);
  dst.copy_into(PAGE_SIZE, got);
  EXPECT_EQ(got, filled(PAGE_SIZE, 9));
  dst.place_shared(3 * PAGE_SIZE, src);  // entirely past the end: no-op
  dst.place_shared(100 * PAGE_SIZE, src);
  EXPECT_EQ(dst.page_at(2 * PAGE_SIZE).data, src.page_at(0).data);
  // Empty source pages clear the destination; a dirty source contributes its effective pages.
  DataCap dirty_src = DataCap::zeroed(2 * PAGE_SIZE);
  dirty_src.write_page(PAGE_SIZE, filled(PAGE_SIZE, 0));  // a Loaded zero page: canonical → Empty
  dst.place_shared(PAGE_SIZE, dirty_src);
  EXPECT_TRUE(dst.page_slot(1).is_empty());
  EXPECT_TRUE(dst.page_slot(2).is_empty());
  EXPECT_THROW(dst.place_shared(1, src), InvalidArgument);
  // Placing a cap into itself works on a snapshot of the source.
  DataCap self = DataCap::from_bytes(Bytes{1, 2, 3});
  self = DataCap::from_bytes_sized(Bytes{1, 2, 3}, 2 * PAGE_SIZE);
  self.place_shared(PAGE_SIZE, self);
  EXPECT_EQ(self.page_at(PAGE_SIZE).data, self.page_at(0).data);
}

TEST(CapEdge, MissingPagesAreNeverReadAsZeros) {
  const Hash32 h = page_root(Digest::sha256, filled(PAGE_SIZE, 3));
  DataCap cap = DataCap::zeroed(3 * PAGE_SIZE);
  cap.insert_overlay_page(1, PageSlot::missing(h));
  EXPECT_TRUE(cap.is_dirty(1));
  EXPECT_EQ(cap.page_at(PAGE_SIZE + 5).kind, PageResolution::Kind::missing);
  EXPECT_EQ(cap.page_at(PAGE_SIZE + 5).missing_hash, h);
  Bytes out(10);
  try {
    cap.copy_into(PAGE_SIZE - 5, out);
    FAIL() << "copy_into read a Missing page";
  } catch (const MissingPage& e) {
    EXPECT_EQ(e.page_index(), 1u);
    EXPECT_EQ(e.hash(), h);
    EXPECT_NE(std::string(e.what()).find(to_hex(h)), std::string::npos);
    EXPECT_EQ(e.kind(), ErrorKind::missing_page);
  }
  // A partial write over a Missing page fails and changes nothing.
  const std::uint64_t dirty = cap.dirty_page_count();
  EXPECT_THROW(cap.write(PAGE_SIZE - 2, filled(4, 1)), MissingPage);
  EXPECT_EQ(cap.dirty_page_count(), dirty);
  EXPECT_FALSE(cap.is_dirty(0));
  // A whole-page write replaces it.
  DataCap replaced = cap;
  replaced.write_page(PAGE_SIZE, filled(3, 1));
  EXPECT_TRUE(replaced.page_slot(1).is_loaded());
  // flush keeps it Missing, and a Missing slot carrying a page's root is interchangeable with it.
  const DataCap flushed = cap.flush();
  EXPECT_TRUE(flushed.page_slot(1).is_missing());
  DataCap loaded = DataCap::zeroed(3 * PAGE_SIZE);
  loaded.put_page(PAGE_SIZE, filled(PAGE_SIZE, 3));
  EXPECT_EQ(flushed.hash_tree_root(), loaded.hash_tree_root());
  // An Empty overlay entry does not shadow: inserting it removes the overlay entry.
  cap.insert_overlay_page(1, PageSlot::empty());
  EXPECT_FALSE(cap.is_dirty(1));
  EXPECT_TRUE(cap.is_clean());
}

TEST(CapEdge, CopiesAreIsolated) {
  const DataCap base = DataCap::from_bytes(filled(2 * PAGE_SIZE, 1));
  const Hash32 root = base.hash_tree_root();
  DataCap a = base, b = base;
  a.write(0, filled(10, 2));
  a.put_page(PAGE_SIZE, filled(5, 3));  // backing change on a shared backing
  b.write(5, filled(10, 4));
  Bytes got(20);
  base.copy_into(0, got);
  EXPECT_EQ(got, filled(20, 1));
  EXPECT_EQ(base.hash_tree_root(), root);
  a.copy_into(0, got);
  EXPECT_EQ(got[9], 2);
  EXPECT_EQ(got[12], 1);
  b.copy_into(0, got);
  EXPECT_EQ(got[4], 1);
  EXPECT_EQ(got[5], 4);
  EXPECT_NE(a.flush().hash_tree_root(), b.flush().hash_tree_root());
  EXPECT_EQ(base.hash_tree_root(), root);
}

TEST(CapEdge, FlushOfAnRvalueMatchesFlushOfACopy) {
  DataCap cap = DataCap::from_bytes(filled(5 * PAGE_SIZE, 1));
  cap.write(100, filled(9000, 2));
  const DataCap kept = cap.flush();
  const DataCap moved = std::move(cap).flush();
  EXPECT_EQ(kept.hash_tree_root(), moved.hash_tree_root());
  EXPECT_TRUE(moved.is_clean());
}

TEST(Errors, EveryErrorIsADatacapErrorWithAKindAndAPlace) {
  DataCap cap = DataCap::from_bytes(filled(PAGE_SIZE, 1));
  auto expect = [](auto&& f, ErrorKind kind, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected " << to_string(kind);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect([&] { cap.write(4090, filled(7, 1)); }, ErrorKind::out_of_range,
         "write: range [4090, 4090 + 7)");
  expect([&] { cap.write(~std::uint64_t{0}, filled(2, 1)); }, ErrorKind::out_of_range,
         "content_len 4096");
  expect([&] { cap.write_page(4096, {}); }, ErrorKind::out_of_range, "write_page: offset 4096");
  expect([&] { cap.put_page(0, filled(4097, 1)); }, ErrorKind::out_of_range, "4097 bytes");
  expect([&] { (void)cap.page_slot(1); }, ErrorKind::out_of_range, "page_index 1 >= page_count 1");
  expect([&] { (void)cap.page_at(4096); }, ErrorKind::out_of_range, "page_at: offset 4096");
  expect(
      [&] {
        Bytes b(2);
        cap.copy_into(4095, b);
      },
      ErrorKind::out_of_range, "copy_into");
  expect([&] { cap.insert_overlay_page(1, PageSlot()); }, ErrorKind::out_of_range,
         "insert_overlay_page");
  expect([&] { cap.place_shared(7, cap); }, ErrorKind::invalid_argument, "dst_off 7");
  expect(
      [&] {
        (void)DataCap::from_sparse_pages(PAGE_SIZE, std::vector<SparsePage>{{1, {}}});
      },
      ErrorKind::out_of_range, "pages[0].page_index 1");
  const Bytes one(1, 1);
  expect(
      [&] {
        (void)DataCap::from_sparse_pages(2 * PAGE_SIZE,
                                         std::vector<SparsePage>{{1, one}, {1, one}});
      },
      ErrorKind::invalid_argument, "page_index 1 is named more than once");
  expect([&] { (void)DataCap::zeroed(100); }, ErrorKind::invalid_argument, "not a multiple");
  expect([&] { (void)parse_digest("md5"); }, ErrorKind::invalid_argument, "md5");
  expect([&] { (void)hash_from_hex("xyz"); }, ErrorKind::invalid_argument, "64 hex");
  expect([&] { (void)PageSlot().page(); }, ErrorKind::invalid_argument, "Empty");
  expect([&] { (void)PageSlot().missing_hash(); }, ErrorKind::invalid_argument, "not Missing");
  expect([&] { (void)PageRef::copy_of(filled(5000, 1)); }, ErrorKind::out_of_range, "5000");
  expect([&] { (void)zero_hash(Digest::sha256, 65); }, ErrorKind::out_of_range, "height 65");
  expect([&] { (void)merkleize(Digest::sha256, {}, 0); }, ErrorKind::invalid_argument, "limit");
  cap.write(0, one);
  expect([&] { (void)cap.hash_tree_root(); }, ErrorKind::dirty_cap, "1 dirty pages; flush() first");
  // The subclass hierarchy: misuse kinds are InvalidArgument, all are Error.
  EXPECT_THROW((void)cap.page_at(4096), InvalidArgument);
  EXPECT_THROW((void)cap.hash_tree_root(), InvalidArgument);
  EXPECT_THROW((void)cap.hash_tree_root(), Error);
}

TEST(Hashing, MerkleizeMatchesTheNaiveTree) {
  std::vector<Hash32> chunks;
  for (std::uint8_t i = 0; i < 13; ++i) chunks.push_back(Hash32{i, 1, 2});
  for (Digest d : {Digest::sha256, Digest::blake2b256}) {
    for (std::uint64_t limit : {13, 16, 17, 100}) {
      EXPECT_EQ(merkleize(d, chunks, limit), naive_merkleize(d, chunks, limit)) << limit;
    }
    EXPECT_EQ(merkleize(d, {}, 1), Hash32{});
    EXPECT_EQ(merkleize(d, {}, 8), zero_hash(d, 3));
  }
  EXPECT_THROW((void)merkleize(Digest::sha256, chunks, 12), InvalidArgument);
}

TEST(Hashing, HexRoundTripsAndDigestNames) {
  Hash32 h{};
  for (std::size_t i = 0; i < 32; ++i) h[i] = static_cast<std::uint8_t>(i * 7 + 1);
  EXPECT_EQ(hash_from_hex(to_hex(h)), h);
  EXPECT_EQ(parse_digest(to_string(Digest::blake2b256)), Digest::blake2b256);
  EXPECT_EQ(parse_digest("sha256"), Digest::sha256);
}

TEST(Hashing, BuilderMatchesCapsForZeroRunsAndRoots) {
  CapRootBuilder b(Digest::blake2b256);
  b.append_zero_pages(5);
  b.append_page(filled(3, 1));
  b.append_page_root(page_root(Digest::blake2b256, filled(PAGE_SIZE, 2)));
  b.append_zero_pages(1000);
  const Bytes short_page(3, 1), full_page(PAGE_SIZE, 2);  // spans below borrow these
  std::vector<SparsePage> pages = {{5, short_page}, {6, full_page}};
  const DataCap cap = DataCap::from_sparse_pages(5000 * PAGE_SIZE, pages);
  EXPECT_EQ(b.finish(5000 * PAGE_SIZE), cap.hash_tree_root(Digest::blake2b256));
  EXPECT_EQ(b.page_count(), 0u);  // reset by finish
}

TEST(Hashing, BuilderAppendPagesMatchesPageByPage) {
  std::vector<std::uint8_t> bytes(300 * PAGE_SIZE + 777);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const std::size_t page = i / PAGE_SIZE;
    bytes[i] =
        page % 5 == 0 ? 0 : static_cast<std::uint8_t>(i * 2654435761u >> 13);  // some zero pages
  }
  for (unsigned threads : {1u, 2u}) {
    set_hash_threads(threads);
    for (Digest d : {Digest::sha256, Digest::blake2b256}) {
      CapRootBuilder batched(d), single(d);
      batched.append_pages(std::span(bytes).first(128 * PAGE_SIZE));
      batched.append_pages(std::span(bytes).subspan(128 * PAGE_SIZE));
      for (std::size_t off = 0; off < bytes.size(); off += PAGE_SIZE) {
        single.append_page(std::span(bytes).subspan(off, std::min(PAGE_SIZE, bytes.size() - off)));
      }
      EXPECT_EQ(batched.page_count(), 301u);
      const Hash32 expected = DataCap::from_bytes_sized(bytes, 1000 * PAGE_SIZE).hash_tree_root(d);
      EXPECT_EQ(batched.finish(1000 * PAGE_SIZE), expected) << threads;
      EXPECT_EQ(single.finish(1000 * PAGE_SIZE), expected);
    }
  }
  set_hash_threads(0);
}

}  // namespace
}  // namespace datacap::testing
