// DataDesc rules (one error kind each, in the SPEC's order), to_data_cap, the image builder's
// dedup and round trips, and instances that share the image's physical pages.
#include <gtest/gtest.h>

#include <random>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

using Bytes = std::vector<std::uint8_t>;

void expect_rule(const DataDesc& desc, std::uint64_t arena_len, ValidationRule rule,
                 std::uint64_t value, std::uint64_t index) {
  try {
    desc.validate(arena_len);
    ADD_FAILURE() << "no ValidationError; expected " << to_string(rule);
  } catch (const ValidationError& e) {
    EXPECT_EQ(e.rule(), rule) << e.what();
    EXPECT_EQ(e.value(), value) << e.what();
    EXPECT_EQ(e.index(), index) << e.what();
    EXPECT_EQ(e.kind(), ErrorKind::validation);
  }
}

TEST(DataDesc, EachRuleHasItsOwnErrorInTheSpecOrder) {
  DataDesc ok;
  ok.size = 4 * PAGE_SIZE;
  ok.pages = {{0, 0, 10}, {3, 10, 4096}};
  EXPECT_NO_THROW(ok.validate(4106));
  DataDesc d = ok;
  d.size = 4 * PAGE_SIZE + 1;
  d.pages[1].len = 0;  // also broken, but reported later
  expect_rule(d, 4106, ValidationRule::size_not_page_multiple, 4 * PAGE_SIZE + 1, 0);
  d = ok;
  d.pages[1].len = 4097;
  d.pages[0].page_index = 9;
  expect_rule(d, 1 << 20, ValidationRule::page_len_invalid, 4097, 1);
  d = ok;
  d.pages[0].len = 0;
  expect_rule(d, 4106, ValidationRule::page_len_invalid, 0, 0);
  d = ok;
  d.pages[1].arena_off = 11;
  d.pages[0].page_index = 9;
  expect_rule(d, 4106, ValidationRule::window_past_arena, 4107, 1);
  d = ok;
  d.pages[1].arena_off = 0xffffffff;  // no overflow in the check
  expect_rule(d, 4106, ValidationRule::window_past_arena, 0xffffffffULL + 4096, 1);
  d = ok;
  d.pages[1].page_index = 4;
  d.pages[0].page_index = 5;
  expect_rule(d, 4106, ValidationRule::page_index_out_of_range, 5, 0);
  d = ok;
  d.pages[1].page_index = 0;
  expect_rule(d, 4106, ValidationRule::pages_not_ascending, 0, 1);
  d = ok;
  d.pages = {{2, 0, 1}, {1, 0, 1}};
  expect_rule(d, 4106, ValidationRule::pages_not_ascending, 1, 1);
  EXPECT_THROW((void)d.to_data_cap(Bytes(4106)), ValidationError);
}

TEST(DataDesc, ToDataCapDependsOnlyOnPageContent) {
  const Bytes arena_a = {1, 2, 3, 9, 9};
  const Bytes arena_b = {9, 9, 0, 1, 2, 3};
  DataDesc a, b;
  a.size = b.size = 3 * PAGE_SIZE;
  a.pages = {{0, 0, 3}, {2, 3, 2}};
  b.pages = {{0, 3, 3},
             {2, 0, 2}};  // other layout, same content; b's page 0 window includes no trailing zero
  const DataCap ca = a.to_data_cap(arena_a), cb = b.to_data_cap(arena_b);
  EXPECT_EQ(ca.hash_tree_root(), cb.hash_tree_root());
  Bytes flat(3 * PAGE_SIZE, 0);
  flat[0] = 1, flat[1] = 2, flat[2] = 3, flat[2 * PAGE_SIZE] = 9, flat[2 * PAGE_SIZE + 1] = 9;
  EXPECT_EQ(ca.hash_tree_root(), DataCap::from_bytes(flat).hash_tree_root());
}

TEST(ImageBuilder, ElidesZerosTrimsTailsDedupsAndRoundTrips) {
  Bytes region(10 * PAGE_SIZE, 0);
  for (int p : {1, 4, 7}) {
    for (int i = 0; i < 100; ++i)
      region[static_cast<std::size_t>(p) * PAGE_SIZE + static_cast<std::size_t>(i)] =
          static_cast<std::uint8_t>(i + 1);
  }
  region[9 * PAGE_SIZE + 4095] = 5;  // a full-length window
  ImageBuilder builder;
  const DataDesc d1 = builder.add_bytes(region, 16 * PAGE_SIZE);
  EXPECT_EQ(d1.size, 16 * PAGE_SIZE);
  ASSERT_EQ(d1.pages.size(), 4u);
  EXPECT_EQ(d1.pages[0].len, 100u);                         // trailing zeros trimmed
  EXPECT_EQ(d1.pages[0].arena_off, d1.pages[1].arena_off);  // identical pages share a window
  EXPECT_EQ(d1.pages[3].len, 4096u);
  EXPECT_EQ(builder.unique_pages(), 2u);
  EXPECT_EQ(builder.arena().size(), 100u + 4096u);
  // A dirty cap: its effective pages, deduplicated against the first image's pages.
  DataCap cap = DataCap::from_bytes_sized(region, 12 * PAGE_SIZE);
  cap.write(11 * PAGE_SIZE, Bytes(50, 3));
  cap.write_page(PAGE_SIZE, {});  // zero page shadowing a non-zero one: elided
  const DataDesc d2 = builder.add_cap(cap);
  EXPECT_EQ(builder.unique_pages(), 3u);
  for (const auto& [desc, expected] :
       {std::pair{d1, DataCap::from_bytes_sized(region, 16 * PAGE_SIZE)},
        std::pair{d2, cap.flush()}}) {
    EXPECT_NO_THROW(desc.validate(builder.arena().size()));
    EXPECT_EQ(desc.to_data_cap(builder.arena()).hash_tree_root(), expected.hash_tree_root());
    EXPECT_EQ(decode_data_desc(encode_data_desc(desc)), desc);
  }
  DataCap missing = DataCap::zeroed(PAGE_SIZE);
  missing.insert_overlay_page(0, PageSlot::missing(Hash32{1}));
  EXPECT_THROW((void)builder.add_cap(missing), MissingPage);
}

TEST(ImageMemory, InstancesSharePhysicalPagesAndCopyOnlyWhatTheyWrite) {
  std::mt19937_64 rng(3);
  Bytes code(300 * PAGE_SIZE);
  for (auto& b : code) b = static_cast<std::uint8_t>(rng() % 4 == 0 ? 0 : rng());
  Bytes data(5 * PAGE_SIZE + 17, 0x44);
  ImageBuilder builder;
  const std::vector<DataDesc> descs = {builder.add_bytes(code), builder.add_bytes(data)};
  ImageLayout layout;
  layout.extent = 1024 * PAGE_SIZE;
  layout.mappings = {
      {0, 0}, {512 * PAGE_SIZE, 1}, {1000 * PAGE_SIZE, 0}};  // the last one is clamped
  const ImageMemory image(builder.arena(), descs, layout);
  std::vector<DataCap> instances;
  for (int i = 0; i < 8; ++i) instances.push_back(image.instantiate());
  // The expected instance, built byte by byte.
  Bytes flat(layout.extent, 0);
  std::copy(code.begin(), code.end(), flat.begin());
  std::copy(data.begin(), data.end(), flat.begin() + 512 * PAGE_SIZE);
  std::copy(code.begin(), code.begin() + 24 * PAGE_SIZE, flat.begin() + 1000 * PAGE_SIZE);
  const Hash32 expected = DataCap::from_bytes(flat).hash_tree_root();
  for (const DataCap& inst : instances) EXPECT_EQ(inst.hash_tree_root(), expected);
  // Same physical pages, by address.
  for (std::uint64_t p : {0, 5, 299}) {
    const std::uint8_t* image_page = image.data_caps()[0].page_at(p * PAGE_SIZE).data;
    for (const DataCap& inst : instances)
      EXPECT_EQ(inst.page_at(p * PAGE_SIZE).data, image_page) << p;
  }
  EXPECT_EQ(instances[3].page_at(513 * PAGE_SIZE).data,
            image.data_caps()[1].page_at(PAGE_SIZE).data);
  // Each copies only what it writes.
  const std::uint64_t live = live_page_count();
  instances[2].write(7 * PAGE_SIZE + 1, Bytes(3, 1));
  EXPECT_EQ(live_page_count(), live + 1);
  EXPECT_NE(instances[2].page_at(7 * PAGE_SIZE).data, instances[1].page_at(7 * PAGE_SIZE).data);
  EXPECT_EQ(instances[1].page_at(7 * PAGE_SIZE).data,
            image.data_caps()[0].page_at(7 * PAGE_SIZE).data);
  EXPECT_EQ(instances[1].hash_tree_root(), expected);
  EXPECT_NE(instances[2].flush().hash_tree_root(), expected);
}

TEST(ImageMemory, LayoutErrors) {
  ImageBuilder builder;
  const std::vector<DataDesc> descs = {builder.add_bytes(Bytes(10, 1))};
  auto make = [&](std::uint64_t extent, std::vector<ImageMapping> m) {
    return ImageMemory(builder.arena(), descs, ImageLayout{extent, std::move(m)});
  };
  EXPECT_THROW(make(100, {}), InvalidArgument);
  EXPECT_THROW(make(PAGE_SIZE, {{7, 0}}), InvalidArgument);
  EXPECT_THROW(make(PAGE_SIZE, {{PAGE_SIZE, 0}}), OutOfRange);
  EXPECT_THROW(make(PAGE_SIZE, {{0, 1}}), OutOfRange);
  DataDesc broken = descs[0];
  broken.pages[0].len = 0;
  EXPECT_THROW(
      ImageMemory(builder.arena(), std::vector<DataDesc>{broken}, ImageLayout{PAGE_SIZE, {}}),
      ValidationError);
}

}  // namespace
}  // namespace datacap
