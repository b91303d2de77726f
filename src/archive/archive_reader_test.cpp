// ArchiveReader (the tree-free reader the CLI uses) against open_archive and a cap, on random
// clean and dirty caps with Missing, zero and shadowed pages under both digests; the private
// copy (FileAccess::copy); the memory estimate's limit; and raw files read once.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

using Bytes = std::vector<std::uint8_t>;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "datacap_reader_" + name + "_" + std::to_string(::getpid());
}

Bytes read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

// A random cap: a clean backing of scattered pages (some repeated, so payloads are shared),
// then (dirty) overlay writes — some all-zero, some over backing pages — and Missing pages in
// both layers.
DataCap random_cap(std::mt19937_64& rng, bool dirty) {
  const std::uint64_t pages = 1 + rng() % 600;
  std::vector<SparsePage> specs;
  std::vector<Bytes> contents;
  for (std::uint64_t p = 0; p < pages; ++p) {
    if (rng() % 3 != 0) continue;
    Bytes bytes(1 + rng() % PAGE_SIZE, 0);
    const std::uint8_t fill = static_cast<std::uint8_t>(rng() % 4);  // few values: shared payloads
    for (auto& b : bytes) b = fill == 0 ? static_cast<std::uint8_t>(rng()) : fill;
    contents.push_back(std::move(bytes));
  }
  std::uint64_t k = 0;
  for (std::uint64_t p = 0; p < pages && k < contents.size(); ++p) {
    if (rng() % 2 == 0) specs.push_back(SparsePage{static_cast<std::uint32_t>(p), contents[k++]});
  }
  DataCap cap = DataCap::from_sparse_pages(pages * PAGE_SIZE, specs);
  std::vector<std::uint64_t> elide;
  for (const SparsePage& s : specs) {
    if (rng() % 7 == 0) elide.push_back(s.page_index);
  }
  cap.elide_pages(elide);
  if (dirty) {
    for (int w = 0; w < 40; ++w) {
      const std::uint64_t p = rng() % pages;
      Bytes bytes(PAGE_SIZE, 0);
      if (rng() % 3 != 0) {
        for (auto& b : bytes) b = static_cast<std::uint8_t>(rng());
      }
      cap.write_page(p * PAGE_SIZE, bytes);
    }
    // Missing in the overlay too: elide some written pages.
    std::vector<std::uint64_t> dirty_elide;
    cap.for_each_dirty([&](std::uint32_t i, const PageSlot& s) {
      if (!s.is_missing() && !s.page().is_zero() && rng() % 5 == 0) dirty_elide.push_back(i);
    });
    cap.elide_pages(dirty_elide);
  }
  return cap;
}

TEST(ArchiveReader, AgreesWithOpenArchiveAndTheFlushedCapOnRandomCaps) {
  std::mt19937_64 rng(20261129);
  const std::string path = temp_path("random.dcar");
  for (int round = 0; round < 60; ++round) {
    SCOPED_TRACE(round);
    const Digest digest = round % 2 == 0 ? Digest::sha256 : Digest::blake2b256;
    const DataCap cap = random_cap(rng, round % 3 != 0);
    const ArchiveInfo written = write_archive(cap, path, digest);
    const DataCap flushed = cap.flush();

    const ArchiveReader reader(path);
    const ArchiveInfo& info = reader.info();
    EXPECT_EQ(info.root, flushed.hash_tree_root(digest));
    EXPECT_EQ(info.root, written.root);
    EXPECT_NO_THROW(reader.verify());
    // Counts: the writer's, the reader's and open_archive's agree, and the flushed counts are
    // the flushed cap's.
    ArchiveOpenOptions copy;
    copy.access = FileAccess::copy;
    const OpenedArchive opened = open_archive(path, copy);
    for (const ArchiveInfo* other : {&written, &opened.info}) {
      EXPECT_EQ(info.stored_pages, other->stored_pages);
      EXPECT_EQ(info.missing_pages, other->missing_pages);
      EXPECT_EQ(info.flushed_loaded_pages, other->flushed_loaded_pages);
      EXPECT_EQ(info.flushed_missing_pages, other->flushed_missing_pages);
    }
    std::uint64_t loaded = 0, missing = 0;
    flushed.backing().for_each_stored(
        [&](std::uint32_t, const PageSlot& s) { ++(s.is_missing() ? missing : loaded); });
    EXPECT_EQ(info.flushed_loaded_pages, loaded);
    EXPECT_EQ(info.flushed_missing_pages, missing);
    EXPECT_EQ(opened.cap.flush().hash_tree_root(digest), info.root);

    // Every page the reader delivers is the flushed cap's, in ascending order, and all of them.
    if (missing != 0) {
      EXPECT_THROW(
          reader.for_each_page([](std::uint64_t, const std::uint8_t*) { FAIL() << "called"; }),
          MissingPage);
      continue;
    }
    std::uint64_t previous = 0, delivered = 0;
    reader.for_each_page([&](std::uint64_t index, const std::uint8_t* bytes) {
      if (delivered > 0) {
        EXPECT_GT(index, previous);
      }
      previous = index;
      ++delivered;
      const PageResolution r = flushed.page_at(index * PAGE_SIZE);
      ASSERT_EQ(r.kind, PageResolution::Kind::bytes) << index;
      EXPECT_EQ(std::memcmp(r.data, bytes, PAGE_SIZE), 0) << index;
    });
    EXPECT_EQ(delivered, loaded);
  }
  std::filesystem::remove(path);
}

TEST(ArchiveReader, AChangedPayloadOrRootIsCaughtBeforeItsBytesAreDelivered) {
  std::mt19937_64 rng(5);
  const std::string path = temp_path("damaged.dcar");
  Bytes content(50 * PAGE_SIZE);
  for (auto& b : content) b = static_cast<std::uint8_t>(rng() | 1);
  const DataCap cap = DataCap::from_bytes(content);
  write_archive(cap, path);
  const ArchiveReader reader(path);
  // Flip one byte of payload 0 on disk after the reader read its tables: the page is caught
  // when read, never handed out.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(PAGE_SIZE + 17);
    f.put('\x5a' ^ static_cast<char>(read_all(path)[PAGE_SIZE + 17]));
  }
  EXPECT_THROW(reader.verify(), DecodeError);
  const DataCap flushed = cap.flush();
  try {
    // Whatever is delivered before the damaged payload is reached is the original content.
    reader.for_each_page([&](std::uint64_t index, const std::uint8_t* bytes) {
      const PageResolution r = flushed.page_at(index * PAGE_SIZE);
      ASSERT_EQ(r.kind, PageResolution::Kind::bytes);
      EXPECT_EQ(std::memcmp(r.data, bytes, PAGE_SIZE), 0)
          << "page " << index << " delivered damaged";
    });
    ADD_FAILURE() << "for_each_page went through a damaged payload";
  } catch (const DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  // A file that shrinks after the tables were read is an IoError naming it, not a fault.
  std::filesystem::resize_file(path, PAGE_SIZE + 100);
  try {
    reader.verify();
    ADD_FAILURE() << "verify passed on a truncated file";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(ArchiveReader, ARecordedRootThatDisagreesWithTheTablesIsRefused) {
  std::mt19937_64 rng(11);
  const std::string path = temp_path("root.dcar");
  write_archive(random_cap(rng, true), path, Digest::blake2b256);
  Bytes bytes = read_all(path);
  bytes[72] ^= 1;  // the root; then fix the header hash so the root itself is what disagrees
  const Hash32 check =
      digest_bytes(Digest::blake2b256, std::span<const std::uint8_t>(bytes.data(), 104));
  std::memcpy(bytes.data() + 104, check.data(), 32);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  const ArchiveReader reader(path);
  EXPECT_THROW(reader.check_root(), DecodeError);
  EXPECT_THROW(reader.verify(), DecodeError);
  EXPECT_THROW(verify_archive(path), DecodeError);
  std::filesystem::remove(path);
}

TEST(ArchiveReader, AnAllZeroPayloadIsRefusedByEveryModeNamingTheFile) {
  const std::string path = temp_path("zero_payload.dcar");
  Bytes one(PAGE_SIZE, 3);
  write_archive(DataCap::from_bytes(one), path);
  Bytes bytes = read_all(path);
  // Payload 0 becomes zeros and its recorded hash the zero page's: consistent with each other,
  // but an archive never stores a zero page, and lazy verification would otherwise accept it.
  std::fill(bytes.begin() + PAGE_SIZE, bytes.begin() + 2 * PAGE_SIZE, 0);
  const Hash32 zero_root = page_root(Digest::sha256, Bytes(PAGE_SIZE, 0));
  std::memcpy(bytes.data() + 2 * PAGE_SIZE, zero_root.data(), 32);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  for (const ArchiveVerify mode : {ArchiveVerify::structure, ArchiveVerify::full}) {
    try {
      (void)open_archive(path, mode);
      ADD_FAILURE() << "opened";
    } catch (const DecodeError& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("payload_hashes[0]"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(ArchiveReader{path}, DecodeError);
  std::filesystem::remove(path);
}

TEST(ArchiveReader, LazyVerificationErrorsNameTheFile) {
  const std::string path = temp_path("lazy.dcar");
  Bytes one(PAGE_SIZE, 3);
  write_archive(DataCap::from_bytes(one), path);
  Bytes bytes = read_all(path);
  bytes[PAGE_SIZE + 5] ^= 1;  // payload 0 no longer matches its recorded hash
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  const OpenedArchive a = open_archive(path, ArchiveVerify::structure);
  try {
    (void)a.cap.hash_tree_root();
    ADD_FAILURE() << "a damaged payload hashed without complaint";
  } catch (const DecodeError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

TEST(ArchiveReader, ASparseArchiveOverTheMemoryLimitIsRefusedBeforeAnythingIsBuilt) {
  // 4096 pages 4096 apart: a leaf and a level-1 node each, ~5 KiB of tree per entry.
  std::vector<SparsePage> specs;
  Bytes one(PAGE_SIZE, 1);
  for (std::uint64_t k = 0; k < 4096; ++k)
    specs.push_back(SparsePage{static_cast<std::uint32_t>(k * 4096), one});
  const DataCap cap = DataCap::from_sparse_pages(std::uint64_t{4096} * 4096 * PAGE_SIZE, specs);
  const std::string path = temp_path("sparse.dcar");
  write_archive(cap, path);
  const std::uint64_t file_size = std::filesystem::file_size(path);
  ArchiveOpenOptions options;
  options.access = FileAccess::copy;
  options.max_memory = file_size + (std::uint64_t{4} << 20);
  try {
    (void)open_archive(path, options);
    ADD_FAILURE() << "opened over the limit";
  } catch (const MemoryLimitExceeded& e) {
    EXPECT_NE(std::string(e.what()).find("max_memory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_EQ(e.limit(), options.max_memory);
    EXPECT_GT(e.needed(), e.limit());
    EXPECT_EQ(e.kind(), ErrorKind::out_of_range);  // an OutOfRange, as callers caught before
  }
  options.max_memory = std::uint64_t{256} << 20;
  EXPECT_EQ(open_archive(path, options).cap.hash_tree_root(), cap.hash_tree_root());
  // The reader needs only the tables.
  const ArchiveReader reader(path, std::uint64_t{1} << 20);
  EXPECT_NO_THROW(reader.verify());
  EXPECT_EQ(reader.info().root, cap.hash_tree_root());
  EXPECT_THROW(ArchiveReader(path, 1000), MemoryLimitExceeded);
  EXPECT_THROW((void)read_raw_file(path, 0, 1000), MemoryLimitExceeded);
  std::filesystem::remove(path);
}

TEST(ArchiveReader, ACopiedArchiveIsImmuneToTheFileBeingTruncatedLater) {
  std::mt19937_64 rng(3);
  const std::string path = temp_path("copy.dcar");
  DataCap cap = random_cap(rng, false);
  write_archive(cap, path);
  ArchiveOpenOptions options;
  options.access = FileAccess::copy;
  options.verify = ArchiveVerify::structure;
  const OpenedArchive a = open_archive(path, options);
  std::filesystem::resize_file(path, 0);  // a mapping would fault on the next page read
  EXPECT_EQ(a.cap.flush().hash_tree_root(), cap.flush().hash_tree_root());
  std::filesystem::remove(path);
}

TEST(RawFile, ReadRawFileEqualsFromBytesSizedAndHoldsItsOwnPages) {
  std::mt19937_64 rng(17);
  const std::string path = temp_path("raw.bin");
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE(round);
    Bytes bytes(rng() % (40 * PAGE_SIZE), 0);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      if ((i / PAGE_SIZE) % 3 == 1) bytes[i] = static_cast<std::uint8_t>(rng());
    }
    {
      std::ofstream f(path, std::ios::binary | std::ios::trunc);
      f.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    }
    const std::uint64_t size = rng() % 2 == 0 ? 0 : rng() % (64 * PAGE_SIZE);
    const DataCap cap = read_raw_file(path, size);
    const DataCap expected = DataCap::from_bytes_sized(bytes, size);
    std::filesystem::resize_file(path, 0);  // the cap holds its own pages
    EXPECT_EQ(cap.content_len(), expected.content_len());
    EXPECT_EQ(cap.hash_tree_root(), expected.hash_tree_root());
    EXPECT_EQ(cap.hash_tree_root(Digest::blake2b256), expected.hash_tree_root(Digest::blake2b256));
  }
  std::filesystem::remove(path);
}

TEST(RawFile, FilesEndingInAHoleWithAPartialPageStreamToTheEnd) {
  // The hang of issue 11: a file whose last partial page lies in a hole.
  const std::string path = temp_path("hole.bin");
  for (const auto& [data_at, len] :
       std::vector<std::pair<std::int64_t, std::uint64_t>>{{-1, 5000},
                                                           {0, 10000},
                                                           {-1, 1},
                                                           {8192, 8193},
                                                           {-1, (std::uint64_t{4} << 30) + 1},
                                                           {100, 3 * PAGE_SIZE + 5}}) {
    SCOPED_TRACE(len);
    std::filesystem::remove(path);
    { std::ofstream f(path, std::ios::binary); }
    if (data_at >= 0) {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(data_at);
      f.put('a');
    }
    std::filesystem::resize_file(path, len);
    std::uint64_t pages = 0, bytes_seen = 0;
    FilePageSink sink;
    sink.on_pages = [&](std::span<const std::uint8_t> b) {
      bytes_seen += b.size();
      pages += (b.size() + PAGE_SIZE - 1) / PAGE_SIZE;
    };
    sink.on_zero_pages = [&](std::uint64_t n) {
      pages += n;
      bytes_seen += n * PAGE_SIZE;
    };
    EXPECT_EQ(stream_file_pages(path, sink), len);
    EXPECT_EQ(bytes_seen, len);
    EXPECT_EQ(pages, (len + PAGE_SIZE - 1) / PAGE_SIZE);
    Bytes dense(len <= (64u << 20) ? len : 0, 0);
    if (!dense.empty()) {
      if (data_at >= 0) dense[static_cast<std::size_t>(data_at)] = 'a';
      EXPECT_EQ(read_raw_file(path).hash_tree_root(), DataCap::from_bytes(dense).hash_tree_root());
      EXPECT_EQ(map_raw_file(path).hash_tree_root(), DataCap::from_bytes(dense).hash_tree_root());
    }
  }
  std::filesystem::remove(path);
}

// A file of /proc says it holds 0 bytes: all three readers read it to its end (they read
// nothing of it, and gave the empty file's cap).
TEST(RawFile, AFileThatSaysItIsEmptyIsReadToItsEnd) {
  const std::string path = "/proc/version";  // fixed while the machine runs
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || st.st_size != 0) GTEST_SKIP() << path << " is not procfs";
  std::ifstream in(path, std::ios::binary);
  const Bytes content((std::istreambuf_iterator<char>(in)), {});
  ASSERT_FALSE(content.empty());
  const Hash32 expected = DataCap::from_bytes(content).hash_tree_root();
  EXPECT_EQ(read_raw_file(path).hash_tree_root(), expected);
  EXPECT_EQ(map_raw_file(path).hash_tree_root(), expected);
  std::uint64_t seen = 0;
  FilePageSink sink;
  sink.on_pages = [&](std::span<const std::uint8_t> b) { seen += b.size(); };
  sink.on_zero_pages = [&](std::uint64_t n) { seen += n * PAGE_SIZE; };
  EXPECT_EQ(stream_file_pages(path, sink), content.size());
  EXPECT_EQ(seen, content.size());
}

}  // namespace
}  // namespace datacap
