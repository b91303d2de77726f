// SSZ wire forms against hand-built byte strings, round trips, and a typed error for every
// malformed input (truncations, bad offsets, bad selectors, wrong hashes, trailing bytes).
#include <gtest/gtest.h>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes le32(std::uint32_t v) {
  return {static_cast<std::uint8_t>(v), static_cast<std::uint8_t>(v >> 8),
          static_cast<std::uint8_t>(v >> 16), static_cast<std::uint8_t>(v >> 24)};
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
Bytes hash_bytes(const Hash32& h) { return Bytes(h.begin(), h.end()); }

void expect_decode_error(const std::function<void()>& f, const std::string& field,
                         std::uint64_t offset) {
  try {
    f();
    ADD_FAILURE() << "no DecodeError; expected one for " << field;
  } catch (const DecodeError& e) {
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_EQ(e.offset(), offset) << e.what();
    EXPECT_EQ(e.kind(), ErrorKind::decode);
  }
}

TEST(Ssz, PageSlotEveryVariantByteForByte) {
  EXPECT_EQ(encode_page_slot(PageSlot::empty()), Bytes{0x00});
  const Bytes hello = {'h', 'e', 'l', 'l', 'o'};
  const PageRef page = PageRef::copy_of(hello);
  const Hash32 root =
      hash_from_hex("c586e42b289729e1b2b732a06a085910c0b19378b66b8dc1bde2cf86b87572a6");
  const Bytes loaded = cat({{0x01}, hash_bytes(root), le32(36), hello});
  EXPECT_EQ(encode_page_slot(PageSlot::loaded(page)), loaded);
  Hash32 h{};
  h[0] = 0xaa;
  h[31] = 0xbb;
  const Bytes missing = cat({{0x02}, hash_bytes(h)});
  EXPECT_EQ(encode_page_slot(PageSlot::missing(h)), missing);
  // And back.
  EXPECT_TRUE(decode_page_slot(Bytes{0x00}).is_empty());
  const PageSlot l = decode_page_slot(loaded);
  ASSERT_TRUE(l.is_loaded());
  EXPECT_EQ(l.root(), root);
  EXPECT_EQ(decode_page_slot(missing).missing_hash(), h);
}

TEST(Ssz, PageBytesTrimsTrailingZerosAndAcceptsAnyLength) {
  Bytes full(PAGE_SIZE, 0);
  full[100] = 7;
  const PageRef page = PageRef::copy_of(full);
  const Bytes encoded = encode_page_bytes(page);
  EXPECT_EQ(encoded.size(), 36u + 101u);
  EXPECT_EQ(Bytes(encoded.begin() + 32, encoded.begin() + 36), le32(36));
  // A full-length (untrimmed) body is the same page.
  const Bytes untrimmed = cat({hash_bytes(page.root()), le32(36), full});
  EXPECT_EQ(decode_page_bytes(untrimmed).root(), page.root());
  EXPECT_EQ(decode_page_bytes(encoded).root(), page.root());
  // BLAKE2b-256 hashes are checked under that digest.
  const Bytes blake = encode_page_bytes(page, Digest::blake2b256);
  EXPECT_EQ(decode_page_bytes(blake, Digest::blake2b256).root(Digest::blake2b256),
            page.root(Digest::blake2b256));
  EXPECT_THROW((void)decode_page_bytes(blake, Digest::sha256), DecodeError);
}

TEST(Ssz, PageSlotErrorsNameFieldAndOffset) {
  const Bytes hello = {'h', 'i'};
  const PageRef page = PageRef::copy_of(hello);
  const Bytes good = encode_page_slot(PageSlot::loaded(page));
  expect_decode_error([] { (void)decode_page_slot(Bytes{}); }, "PageSlot.selector", 0);
  expect_decode_error([] { (void)decode_page_slot(Bytes{0x03}); }, "PageSlot.selector", 0);
  expect_decode_error([] { (void)decode_page_slot(Bytes{0x00, 0x00}); }, "PageSlot", 1);
  expect_decode_error([] { (void)decode_page_slot(Bytes(20, 0x02)); }, "PageSlot.Missing.hash", 1);
  expect_decode_error(
      [] {
        Bytes b(34, 0);
        b[0] = 2;
        (void)decode_page_slot(b);
      },
      "PageSlot", 33);
  expect_decode_error([&] { (void)decode_page_slot(Bytes(good.begin(), good.begin() + 20)); },
                      "PageSlot.hash", 1);
  expect_decode_error([&] { (void)decode_page_slot(Bytes(good.begin(), good.begin() + 35)); },
                      "PageSlot.bytes", 33);
  Bytes bad_offset = good;
  bad_offset[33] = 37;
  expect_decode_error([&] { (void)decode_page_slot(bad_offset); }, "PageSlot.bytes", 33);
  Bytes bad_hash = good;
  bad_hash[5] ^= 1;
  expect_decode_error([&] { (void)decode_page_slot(bad_hash); }, "PageSlot.hash", 1);
  Bytes too_long = cat({{0x01}, Bytes(32, 0), le32(36), Bytes(PAGE_SIZE + 1, 1)});
  expect_decode_error([&] { (void)decode_page_slot(too_long); }, "PageSlot.bytes", 37);
}

TEST(Ssz, ArenaPageRefByteForByte) {
  const ArenaPageRef ref{0x01020304, 0x0a0b0c0d, 4096};
  const Bytes expected = cat({le32(0x01020304), le32(0x0a0b0c0d), le32(4096)});
  const auto encoded = encode_arena_page_ref(ref);
  EXPECT_EQ(Bytes(encoded.begin(), encoded.end()), expected);
  EXPECT_EQ(decode_arena_page_ref(expected), ref);
  expect_decode_error(
      [&] { (void)decode_arena_page_ref(Bytes(expected.begin(), expected.begin() + 9)); },
      "ArenaPageRef.len", 8);
  expect_decode_error(
      [&] {
        Bytes b = expected;
        b.push_back(0);
        (void)decode_arena_page_ref(b);
      },
      "ArenaPageRef", 12);
}

TEST(Ssz, DataDescByteForByte) {
  DataDesc desc;
  desc.size = 3 * PAGE_SIZE;
  desc.pages = {{0, 0, 5}, {2, 5, 4096}};
  const Bytes expected = cat({Bytes{0x00, 0x30, 0, 0, 0, 0, 0, 0}, le32(12), le32(0), le32(0),
                              le32(5), le32(2), le32(5), le32(4096)});
  EXPECT_EQ(encode_data_desc(desc), expected);
  EXPECT_EQ(decode_data_desc(expected), desc);
  DataDesc empty;
  EXPECT_EQ(decode_data_desc(encode_data_desc(empty)), empty);
  expect_decode_error([] { (void)decode_data_desc(Bytes(7, 0)); }, "DataDesc.size", 0);
  expect_decode_error([] { (void)decode_data_desc(Bytes(10, 0)); }, "DataDesc.pages", 8);
  Bytes bad_offset = expected;
  bad_offset[8] = 16;
  expect_decode_error([&] { (void)decode_data_desc(bad_offset); }, "DataDesc.pages", 8);
  Bytes ragged = expected;
  ragged.push_back(1);
  expect_decode_error([&] { (void)decode_data_desc(ragged); }, "DataDesc.pages", 12);
}

TEST(Ssz, EveryTruncationAndEveryFlippedByteIsATypedErrorOrAValidValue) {
  // Damage valid encodings byte by byte: decoders answer with a value or a DecodeError, never
  // anything else.
  const Bytes loaded = encode_page_slot(PageSlot::loaded(PageRef::copy_of(Bytes(300, 9))));
  DataDesc desc;
  desc.size = 8 * PAGE_SIZE;
  desc.pages = {{1, 0, 10}, {3, 10, 20}, {7, 0, 30}};
  const Bytes dd = encode_data_desc(desc);
  for (const Bytes* input : {&loaded, &dd}) {
    for (std::size_t cut = 0; cut < input->size(); ++cut) {
      const Bytes truncated(input->begin(), input->begin() + static_cast<std::ptrdiff_t>(cut));
      try {
        if (input == &loaded)
          (void)decode_page_slot(truncated);
        else
          (void)decode_data_desc(truncated);
      } catch (const DecodeError&) {
      }
    }
    for (std::size_t at = 0; at < input->size(); ++at) {
      Bytes flipped = *input;
      flipped[at] ^= 0x5a;
      try {
        if (input == &loaded)
          (void)decode_page_slot(flipped);
        else
          (void)decode_data_desc(flipped);
      } catch (const DecodeError&) {
      }
    }
  }
  // The Loaded encoding is fully determined by its bytes: every flip inside it is caught.
  for (std::size_t at = 0; at < loaded.size(); ++at) {
    Bytes flipped = loaded;
    flipped[at] ^= 0x01;
    EXPECT_THROW((void)decode_page_slot(flipped), DecodeError) << "flip at " << at;
  }
}

}  // namespace
}  // namespace datacap
