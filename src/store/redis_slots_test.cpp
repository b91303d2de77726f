// The Redis client's pure parts, no server needed: CRC16 and key slots as the Redis Cluster
// specification defines them, and URL parsing. (The slots are checked against a server's
// CLUSTER KEYSLOT too, in redis_store_redis_test.cpp.)
#include <gtest/gtest.h>

#include "datacap/error.hpp"
#include "store/redis_client.hpp"

namespace datacap::detail::redis {
namespace {

TEST(RedisSlots, Crc16IsXmodemWithTheSpecificationsCheckValue) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);  // the cluster specification's reference value
  EXPECT_EQ(crc16(""), 0);
  EXPECT_EQ(crc16(std::string_view("\0", 1)), 0);
  EXPECT_EQ(crc16("A"), 0x58E5);  // CRC-16/XMODEM of one byte 0x41
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
