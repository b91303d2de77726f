// SPEC vectors through the library: MANIFEST.tsv (both digests, three construction paths) and
// PAGE_ROOTS.tsv.
#include <gtest/gtest.h>

#include "datacap/datacap.hpp"
#include "support/naive_model.hpp"
#include "support/vectors.hpp"

namespace datacap::testing {
namespace {

TEST(Vectors, ManifestHasEveryVector) {
  const auto rows = read_manifest();
  ASSERT_EQ(rows.size(), 12u) << "vectors dir: " << vectors_dir();
}

TEST(Vectors, CapRootsThroughFromBytesSized) {
  for (const auto& row : read_manifest()) {
    SCOPED_TRACE(row.file);
    const auto content = read_file(vectors_dir() + "/" + row.file);
    const DataCap cap = DataCap::from_bytes_sized(content, row.size_arg);
    EXPECT_EQ(to_hex(cap.hash_tree_root()), row.sha256_root);
    EXPECT_EQ(to_hex(cap.hash_tree_root(Digest::sha256)), row.sha256_root);
    EXPECT_EQ(to_hex(cap.hash_tree_root(Digest::blake2b256)), row.blake2b256_root);
  }
}

TEST(Vectors, CapRootsThroughSparsePagesAndWritesAndBuilder) {
  for (const auto& row : read_manifest()) {
    SCOPED_TRACE(row.file);
    const auto content = read_file(vectors_dir() + "/" + row.file);
    const std::uint64_t size = std::max<std::uint64_t>(row.size_arg, content.size());
    // from_sparse_pages, pages named in reverse order.
    std::vector<SparsePage> pages;
    for (std::size_t off = 0; off < content.size(); off += PAGE_SIZE) {
      pages.push_back(
          SparsePage{static_cast<std::uint32_t>(off / PAGE_SIZE),
                     std::span(content).subspan(off, std::min(PAGE_SIZE, content.size() - off))});
    }
    std::reverse(pages.begin(), pages.end());
    const DataCap sparse = DataCap::from_sparse_pages(size, pages);
    EXPECT_EQ(to_hex(sparse.hash_tree_root()), row.sha256_root);
    EXPECT_EQ(to_hex(sparse.hash_tree_root(Digest::blake2b256)), row.blake2b256_root);
    // A zeroed cap written through the overlay, then flushed.
    DataCap written = DataCap::zeroed(sparse.content_len());
    written.write(0, content);
    const DataCap flushed = written.flush();
    EXPECT_EQ(to_hex(flushed.hash_tree_root()), row.sha256_root);
    // The streaming builder used by the CLI.
    for (Digest d : {Digest::sha256, Digest::blake2b256}) {
      CapRootBuilder builder(d);
      for (const auto& p : std::vector<SparsePage>(pages.rbegin(), pages.rend()))
        builder.append_page(p.bytes);
      EXPECT_EQ(to_hex(builder.finish(size)),
                d == Digest::sha256 ? row.sha256_root : row.blake2b256_root);
    }
  }
}

TEST(Vectors, PageRoots) {
  const Bytes hello = {'h', 'e', 'l', 'l', 'o'};
  EXPECT_EQ(to_hex(page_root(Digest::sha256, hello)),
            "c586e42b289729e1b2b732a06a085910c0b19378b66b8dc1bde2cf86b87572a6");
  const Bytes ff(PAGE_SIZE, 0xff);
  EXPECT_EQ(to_hex(page_root(Digest::sha256, ff)),
            "8f711e9197bcd96314b8d20425eac7dce4aee7c9a0579e901d636d3256db3672");
  EXPECT_EQ(to_hex(PageSlot().root()), std::string(64, '0'));
  EXPECT_EQ(to_hex(page_root(Digest::sha256, Bytes(PAGE_SIZE, 0))),
            "87eb0ddba57e35f6d286673802a4af5975e22506c7cf4c64bb6be5ee11527f2c");
  EXPECT_EQ(to_hex(zero_hash(Digest::sha256, 7)),
            "87eb0ddba57e35f6d286673802a4af5975e22506c7cf4c64bb6be5ee11527f2c");
  // The same through a Loaded slot and the naive model.
  EXPECT_EQ(PageSlot::loaded(PageRef::copy_of(hello)).root(), naive_page_root(Digest::sha256, [&] {
              Bytes p = hello;
              p.resize(PAGE_SIZE);
              return p;
            }()));
}

TEST(Vectors, WorkedExampleOfSpec) {
  EXPECT_EQ(to_hex(DataCap::zeroed(PAGE_SIZE).hash_tree_root()),
            "ed5f4ed0d6617d50abd49d4c84281e175b48a7e1edf550a89bf2c9b5c4ce01f0");
}

}  // namespace
}  // namespace datacap::testing
