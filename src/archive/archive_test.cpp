// Archives: round trips of clean, dirty and partly Missing caps; zero-copy pages; the size
// bound; and damage — every truncation and every flipped byte is a DecodeError under full
// verification, and nothing is returned half-built.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "datacap_" + name + "_" + std::to_string(::getpid()) + ".dcar";
}

Bytes read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}
void write_all(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

DataCap sample_cap() {
  Bytes content(40 * PAGE_SIZE, 0);
  std::mt19937_64 rng(8);
  for (std::size_t p = 0; p < 40; ++p) {
    if (p % 3 == 0) continue;  // zero pages, elided
    for (std::size_t i = 0; i < (p % 5 == 0 ? 10 : PAGE_SIZE); ++i)
      content[p * PAGE_SIZE + i] = static_cast<std::uint8_t>(p % 4 == 1 ? 7 : rng());
  }
  return DataCap::from_bytes_sized(content, 64 * PAGE_SIZE);
}

// The format holds 1 to 2^32 pages, and every reader rejects content_len 0: the writer must not
// produce such a file (it did, for the empty cap: a docs-only reader's finding).
TEST(Archive, TheEmptyCapIsRefusedBeforeAnyFileExists) {
  const std::string path = temp_path("empty-cap");
  std::filesystem::remove(path);
  EXPECT_THROW((void)write_archive(DataCap(), path), InvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(path));
  for (const auto& entry : std::filesystem::directory_iterator(::testing::TempDir())) {
    EXPECT_EQ(entry.path().filename().string().rfind(
                  std::filesystem::path(path).filename().string() + ".tmp-", 0),
              std::string::npos)
        << entry.path();
  }
  // One page is the smallest archive.
  const DataCap one = DataCap::from_bytes(Bytes{1});
  EXPECT_EQ(write_archive(one, path).root, one.hash_tree_root());
  EXPECT_EQ(open_archive(path).cap.hash_tree_root(), one.hash_tree_root());
  std::filesystem::remove(path);
}

TEST(Archive, CleanCapRoundTripsZeroCopyAndSmall) {
  const DataCap cap = sample_cap();
  const std::string path = temp_path("clean");
  const ArchiveInfo written = write_archive(cap, path);
  EXPECT_EQ(written.root, cap.hash_tree_root());
  for (ArchiveVerify mode : {ArchiveVerify::full, ArchiveVerify::structure}) {
    const OpenedArchive a = open_archive(path, mode);
    EXPECT_EQ(a.cap.hash_tree_root(), cap.hash_tree_root());
    EXPECT_EQ(a.info.root, cap.hash_tree_root());
    EXPECT_EQ(a.info.content_len, cap.content_len());
    EXPECT_EQ(a.info.stored_pages, cap.backing().stored_page_count());
    EXPECT_LT(a.info.unique_pages, a.info.stored_pages);  // identical pages stored once
    EXPECT_TRUE(a.cap.is_clean());
  }
  // Pages come from the mapping: aligned, and shared by identical pages.
  const OpenedArchive a = open_archive(path);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.cap.page_at(PAGE_SIZE).data) % PAGE_SIZE, 0u);
  EXPECT_EQ(a.cap.page_at(PAGE_SIZE).data, a.cap.page_at(13 * PAGE_SIZE).data);  // both pages of 7s
  // Size: the header page, the unique payloads, 32 bytes per payload or Missing hash and 8 per
  // entry (under 1% of the payloads when pages are distinct).
  EXPECT_EQ(written.file_size,
            PAGE_SIZE + written.unique_pages * (PAGE_SIZE + 32) + 8 * written.stored_pages);
  // Writing to a cap served from the archive copies; the mapping is never written.
  DataCap copy = a.cap;
  copy.write(PAGE_SIZE + 3, Bytes(2, 0xee));
  EXPECT_EQ(a.cap.flush().hash_tree_root(), cap.hash_tree_root());
  std::filesystem::remove(path);
  // The pages outlive the file name and the OpenedArchive: the mapping stays while caps use it.
  const DataCap survivor = copy;
  EXPECT_NO_THROW((void)survivor.flush().hash_tree_root());
}

TEST(Archive, DirtyCapWithMissingAndZeroPagesRoundTrips) {
  DataCap cap = sample_cap();
  cap.write(3 * PAGE_SIZE - 2, Bytes(5, 0x42));
  cap.write_page(4 * PAGE_SIZE, {});  // explicit zero page in the overlay
  const Hash32 h = page_root(Digest::sha256, Bytes(PAGE_SIZE, 9));
  cap.insert_overlay_page(50, PageSlot::missing(h));
  cap.put_page(60 * PAGE_SIZE, Bytes(1, 1));
  DataCap with_missing_backing = cap.flush();
  with_missing_backing.write(0, Bytes(1, 1));
  for (const DataCap* c : {&cap, &with_missing_backing}) {
    for (Digest d : {Digest::sha256, Digest::blake2b256}) {
      const std::string path = temp_path("dirty");
      write_archive(*c, path, d);
      const OpenedArchive a = open_archive(path);
      EXPECT_EQ(a.info.digest, d);
      EXPECT_EQ(a.cap.dirty_page_count(), c->dirty_page_count());
      EXPECT_TRUE(a.cap.page_slot(50).is_missing());
      EXPECT_EQ(a.cap.page_slot(4).kind(),
                c->page_slot(4).kind());  // Loaded zero, or Empty once flushed
      EXPECT_EQ(a.cap.flush().hash_tree_root(d), c->flush().hash_tree_root(d));
      EXPECT_EQ(a.info.missing_pages, 1u);
      std::filesystem::remove(path);
    }
  }
}

TEST(Archive, StreamingWriterMatchesACap) {
  Bytes content(300 * PAGE_SIZE + 123);
  std::mt19937_64 rng(2);
  for (auto& b : content) b = static_cast<std::uint8_t>(rng() % 3 == 0 ? 0 : rng());
  std::fill(content.begin() + 10 * PAGE_SIZE, content.begin() + 20 * PAGE_SIZE, 0);
  const std::string path = temp_path("stream");
  ArchiveWriter w(path);
  w.append_pages(std::span(content).first(64 * PAGE_SIZE));
  w.append_zero_pages(0);
  w.append_pages(std::span(content).subspan(64 * PAGE_SIZE));
  const ArchiveInfo info = w.finish(1000 * PAGE_SIZE);
  const DataCap expected = DataCap::from_bytes_sized(content, 1000 * PAGE_SIZE);
  EXPECT_EQ(info.root, expected.hash_tree_root());
  EXPECT_EQ(open_archive(path).cap.hash_tree_root(), expected.hash_tree_root());
  std::filesystem::remove(path);
}

TEST(Archive, EveryTruncationAndEveryFlippedByteIsADecodeError) {
  DataCap cap = DataCap::from_bytes_sized(Bytes(2 * PAGE_SIZE + 5, 3), 8 * PAGE_SIZE);
  cap.insert_overlay_page(6, PageSlot::missing(Hash32{7}));
  cap.write_page(7 * PAGE_SIZE, {});
  const std::string path = temp_path("damage");
  write_archive(cap, path);
  const Bytes good = read_all(path);
  const std::string bad = temp_path("damaged");
  // Truncations (every length across the header, a sample elsewhere).
  for (std::size_t len = 0; len < good.size(); len += (len < PAGE_SIZE + 64 ? 1 : 97)) {
    write_all(bad, Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len)));
    EXPECT_THROW((void)open_archive(bad, ArchiveVerify::structure), DecodeError)
        << "length " << len;
  }
  Bytes longer = good;
  longer.push_back(0);
  write_all(bad, longer);
  EXPECT_THROW((void)open_archive(bad), DecodeError);
  // Every byte flipped: the header hash, the table checks, the payload hashes and the root
  // leave no byte unchecked under full verification. (Unused header padding is not hashed.)
  std::size_t checked = 0;
  for (std::size_t at = 0; at < good.size(); ++at) {
    if (at >= 136 && at < PAGE_SIZE) continue;  // header padding: reserved, ignored
    Bytes flipped = good;
    flipped[at] ^= 0x10;
    write_all(bad, flipped);
    try {
      (void)open_archive(bad, ArchiveVerify::full);
      ADD_FAILURE() << "flip at byte " << at << " went unnoticed";
    } catch (const DecodeError& e) {
      ++checked;
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos);
    }
  }
  EXPECT_GT(checked, good.size() / 2);
  write_all(bad, Bytes(5000, 0));
  EXPECT_THROW((void)open_archive(bad), DecodeError);
  EXPECT_THROW((void)open_archive("/nonexistent/archive"), IoError);
  std::filesystem::remove(path);
  std::filesystem::remove(bad);
}

TEST(Archive, StructureModeChecksEachPageOnFirstUse) {
  // 3000 distinct pages: enough for page hashing to run on the thread pool.
  Bytes content(3000 * PAGE_SIZE);
  std::mt19937_64 rng(12);
  for (auto& b : content) b = static_cast<std::uint8_t>(rng());
  const std::string path = temp_path("lazy");
  const DataCap cap = DataCap::from_bytes(content);
  write_archive(cap, path);
  {
    const OpenedArchive good = open_archive(path, ArchiveVerify::structure);
    EXPECT_EQ(good.cap.hash_tree_root(), cap.hash_tree_root());
  }
  Bytes damaged = read_all(path);
  damaged[PAGE_SIZE + 2000 * PAGE_SIZE + 17] ^= 1;  // payload 2000
  write_all(path, damaged);
  for (unsigned threads : {1u, 2u}) {
    set_hash_threads(threads);
    const OpenedArchive lazy = open_archive(path, ArchiveVerify::structure);  // structure is fine
    try {
      (void)lazy.cap.hash_tree_root();
      ADD_FAILURE() << "a damaged page went unnoticed on first use";
    } catch (const DecodeError& e) {
      EXPECT_EQ(e.field(), path + ": Archive.payload_hashes[2000]") << e.what();  // names the file
    }
    // Nothing was cached from the bad page and no claim was left behind: it fails again, no hang.
    EXPECT_THROW((void)lazy.cap.hash_tree_root(), DecodeError);
    // Pages that are fine can still be used and hashed one by one.
    EXPECT_EQ(lazy.cap.page_slot(5).root(), cap.page_slot(5).root());
    EXPECT_THROW((void)open_archive(path, ArchiveVerify::full), DecodeError);
  }
  set_hash_threads(0);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace datacap
