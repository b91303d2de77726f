// Seeds for randomized tests: DATACAP_SEED overrides the default, and every test that uses one
// records it in its failure messages so a failure can be replayed.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

namespace datacap::testing {

inline std::uint64_t env_seed(std::uint64_t fallback) {
  std::uint64_t seed = fallback;
  if (const char* env = std::getenv("DATACAP_SEED"))
    seed = std::strtoull(env, nullptr, 10) + fallback;
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  std::cerr << "[ seed     ] DATACAP_SEED-derived seed " << seed << "\n";
  return seed;
}

}  // namespace datacap::testing
