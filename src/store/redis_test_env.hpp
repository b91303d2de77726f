// Test support: the Redis servers the *_redis_test.cpp suites run against. ctest starts them
// (scripts/redis-servers.sh, cmake/redis_tests.cmake) and names their URLs file in
// DATACAP_REDIS_ENV; run by hand:
//   scripts/redis-servers.sh start /tmp/rs && DATACAP_REDIS_ENV=/tmp/rs/urls.env
//   build/.../datacap_redis_tests
// A missing variable, file or URL fails the test (never skips it): a Redis suite that passes
// without servers would prove nothing.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>

namespace datacap::testing {

// The URL named `key` (DATACAP_REDIS_URL, DATACAP_REDIS_CLUSTER_URL, DATACAP_REDIS_AUTH_URL,
// DATACAP_REDIS_PASS_URL). Throws std::runtime_error saying what is missing.
inline std::string redis_url(const std::string& key) {
  const char* path = std::getenv("DATACAP_REDIS_ENV");
  if (path == nullptr || *path == '\0') {
    throw std::runtime_error(
        "DATACAP_REDIS_ENV is not set: run the Redis tests through ctest (which starts the "
        "servers), or start them with scripts/redis-servers.sh start DIR and set "
        "DATACAP_REDIS_ENV=DIR/urls.env");
  }
  std::ifstream in(path);
  if (!in) {
    throw std::runtime_error(std::string("DATACAP_REDIS_ENV=") + path +
                             ": cannot read it (did RedisServers.Start run?)");
  }
  std::map<std::string, std::string> values;
  for (std::string line; std::getline(in, line);) {
    const std::size_t eq = line.find('=');
    if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  const auto it = values.find(key);
  if (it == values.end() || it->second.empty())
    throw std::runtime_error(std::string(path) + " has no " + key);
  return it->second;
}

// A key prefix no other test (or run) shares: the current test's name, the pid and a counter.
inline std::string unique_redis_prefix() {
  static std::atomic<unsigned> counter{0};
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name =
      info == nullptr ? "none" : std::string(info->test_suite_name()) + "." + info->name();
  for (char& c : name) {
    if (c == '{' || c == '}' || c == '*' || c == '?' || c == '[' || c == ']') c = '_';
  }
  return "datacap-test:" + name + ":" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1)) + ":";
}

}  // namespace datacap::testing
