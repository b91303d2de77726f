// Regression: save_cap on a read-only store returned the root without refusing when the cap was
// saved already and its root was cached (found by the Python package's tests, issue 13).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

TEST(StoreReadOnly, SaveCapOfASavedCapIsRefusedToo) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("datacap_read_only_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const DataCap cap = DataCap::from_bytes(std::vector<std::uint8_t>(5000, 3));
  const Hash32 root = open_lmdb_store(dir.string())->save_cap(cap);
  ASSERT_EQ(cap.hash_tree_root(), root);  // cached: the early path is the one taken
  LmdbOptions options;
  options.read_only = true;
  const auto store = open_lmdb_store(dir.string(), options);
  EXPECT_TRUE(store->has_cap(root));
  EXPECT_THROW((void)store->save_cap(cap), InvalidArgument);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace datacap
