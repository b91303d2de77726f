// The version comes from the project (CMakeLists.txt) through the generated header.
#include <gtest/gtest.h>

#include <string>

#include "datacap/version.hpp"

namespace datacap {
namespace {

TEST(Version, TheLinkedLibraryAndTheHeadersAgree) {
  const std::string expected = std::to_string(VERSION_MAJOR) + "." + std::to_string(VERSION_MINOR) +
                               "." + std::to_string(VERSION_PATCH);
  EXPECT_EQ(expected, VERSION_STRING);
  EXPECT_EQ(std::string(version_string()), VERSION_STRING);
}

}  // namespace
}  // namespace datacap
