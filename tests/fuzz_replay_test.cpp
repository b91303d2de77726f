// Replays every fuzz seed and saved regression through the fuzz targets' own logic, so a fixed
// finding stays fixed in ordinary test runs (with or without a fuzzing toolchain).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../fuzz/targets.hpp"

namespace datacap::fuzz {
namespace {

std::vector<std::uint8_t> slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::size_t replay(const std::string& target, void (*fn)(std::span<const std::uint8_t>)) {
  std::size_t n = 0;
  for (const char* dir : {"corpus", "regressions"}) {
    const std::filesystem::path path = std::filesystem::path(DATACAP_FUZZ_DIR) / dir / target;
    if (!std::filesystem::exists(path)) continue;
    for (const auto& entry : std::filesystem::directory_iterator(path)) {
      if (entry.path().filename().string().front() == '.') continue;  // .keep
      SCOPED_TRACE(entry.path().string());
      fn(slurp(entry.path()));
      ++n;
    }
  }
  return n;
}

TEST(FuzzReplay, PageSlot) { EXPECT_GE(replay("page_slot", page_slot_input), 3u); }
TEST(FuzzReplay, Archive) { EXPECT_GE(replay("archive", archive_input), 2u); }
TEST(FuzzReplay, DataDesc) { EXPECT_GE(replay("data_desc", data_desc_input), 2u); }
TEST(FuzzReplay, CapRecord) { EXPECT_GE(replay("cap_record", cap_record_input), 3u); }
TEST(FuzzReplay, Proof) { EXPECT_GE(replay("proof", proof_input), 2u); }
TEST(FuzzReplay, RedisReply) { EXPECT_GE(replay("redis_reply", redis_reply_input), 3u); }

}  // namespace
}  // namespace datacap::fuzz
