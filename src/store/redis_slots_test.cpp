// The Redis client's pure parts, no server needed: CRC16 and key slots as the Redis Cluster
// specification defines them, and URL parsing. (The slots are checked against a server's
// CLUSTER KEYSLOT too, in redis_store_redis_test.cpp.)
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "datacap/error.hpp"
#include "store/redis_client.hpp"
#include "support/seed.hpp"

namespace datacap::detail::redis {
namespace {

TEST(RedisSlots, Crc16IsXmodemWithTheSpecificationsCheckValue) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);  // the cluster specification's reference value
  EXPECT_EQ(crc16(""), 0);
  EXPECT_EQ(crc16(std::string_view("\0", 1)), 0);
  EXPECT_EQ(crc16("A"), 0x58E5);  // CRC-16/XMODEM of one byte 0x41
}

// The table-driven CRC (eight bytes per step) against the bitwise definition, on random keys of
// every length up to 200 bytes and every alignment.
TEST(RedisSlots, Crc16MatchesTheBitwiseDefinition) {
  const auto bitwise = [](std::string_view bytes) {
    std::uint16_t crc = 0;
    for (const char c : bytes) {
      crc = static_cast<std::uint16_t>(crc ^ (static_cast<std::uint8_t>(c) << 8));
      for (int bit = 0; bit < 8; ++bit) {
        crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                  : static_cast<std::uint16_t>(crc << 1);
      }
    }
    return crc;
  };
  std::mt19937_64 rng(testing::env_seed(71));
  std::string buffer(256, '\0');
  for (int round = 0; round < 2000; ++round) {
    for (char& c : buffer) c = static_cast<char>(rng());
    const std::size_t offset = rng() % 8, length = rng() % 201;
    const std::string_view key(buffer.data() + offset, length);
    ASSERT_EQ(crc16(key), bitwise(key)) << "length " << length;
  }
  EXPECT_EQ(bitwise("123456789"), 0x31C3);
}

TEST(RedisSlots, KeySlotsAndHashTags) {
  // Values Redis's CLUSTER KEYSLOT gives.
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot("123456789"), 0x31C3 % 16384);
  // The tag between the first '{' and the next '}' is hashed, when not empty.
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(key_slot("{user1000}.followers"), key_slot("user1000"));
  EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));   // the first tag only
  EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));  // from the first '{' to the next '}'
  EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") % 16384);  // empty tag: whole key
  EXPECT_EQ(key_slot("foo{bar"), crc16("foo{bar") % 16384);        // no '}': whole key
  EXPECT_EQ(key_slot("}foo{x}"), key_slot("x"));
  for (const char* key : {"a", "datacap:p:00", "{", "}", "{}"}) EXPECT_LT(key_slot(key), 16384);
}

TEST(RedisUrls, HostsUsersAndPasswords) {
  RedisUrl u = parse_redis_url("redis://127.0.0.1:7000");
  ASSERT_EQ(u.nodes.size(), 1u);
  EXPECT_EQ(u.nodes[0].host, "127.0.0.1");
  EXPECT_EQ(u.nodes[0].port, 7000);
  EXPECT_TRUE(u.user.empty());
  EXPECT_TRUE(u.password.empty());
  EXPECT_EQ(u.display(), "redis://127.0.0.1:7000");

  u = parse_redis_url("redis://alice:s%40cr%3At@cache-1.example:7001,10.0.0.2:7002,db/");
  EXPECT_EQ(u.user, "alice");
  EXPECT_EQ(u.password, "s@cr:t");
  ASSERT_EQ(u.nodes.size(), 3u);
  EXPECT_EQ(u.nodes[0].name(), "cache-1.example:7001");
  EXPECT_EQ(u.nodes[1].name(), "10.0.0.2:7002");
  EXPECT_EQ(u.nodes[2].name(), "db:6379");  // the default port
  EXPECT_EQ(u.display(), "redis://alice@cache-1.example:7001,10.0.0.2:7002,db:6379");

  u = parse_redis_url("redis://:p@ss@localhost:1");  // the last '@' ends the password
  EXPECT_TRUE(u.user.empty());
  EXPECT_EQ(u.password, "p@ss");
  EXPECT_EQ(u.display().find("p@ss"), std::string::npos);
}

TEST(RedisUrls, GarbageIsInvalidArgument) {
  for (const char* bad :
       {"", "redis:/host:1", "http://host:1", "redis://", "redis://host:0", "redis://host:65536",
        "redis://host:port", "redis://host:1,", "redis://,host:1", "redis://host:1:2",
        "redis://user@host:1", "redis://user:@host:1", "redis://ho st:1", "redis://[::1]:6379",
        "redis://host:1/0", "redis://host:1?timeout=1", "redis://a:%zz@host:1", "redis://host:-1",
        "rediss://host:1"}) {
    SCOPED_TRACE(bad);
    EXPECT_THROW((void)parse_redis_url(bad), InvalidArgument);
  }
  try {
    (void)parse_redis_url("redis://user:secret@[::1]:1");
    ADD_FAILURE() << "no InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << e.what();
  }
}

TEST(RedisUrls, GlobEscape) {
  EXPECT_EQ(glob_escape("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
  EXPECT_EQ(glob_escape("datacap:"), "datacap:");
}

}  // namespace
}  // namespace datacap::detail::redis
