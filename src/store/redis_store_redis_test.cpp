// The Redis store and its client against real servers (scripts/redis-servers.sh): slots as the
// server computes them, keys spread over the masters, AUTH, ASK and MOVED, a paused master,
// values damaged or deleted behind the store's back, and saves beside gc from another client.
// (The conformance suite runs on both servers from store_test.cpp, in this same binary.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "datacap/datacap.hpp"
#include "datacap/redis_store.hpp"
#include "store/redis_client.hpp"
#include "store/redis_test_env.hpp"
#include "support/seed.hpp"

namespace datacap {
namespace {

using detail::redis::Command;
using detail::redis::Endpoint;
using detail::redis::key_slot;
using detail::redis::parse_redis_url;
using detail::redis::RedisClient;
using Bytes = std::vector<std::uint8_t>;
using namespace std::chrono_literals;

std::string text_of(const redisReply& reply) {
  return reply.str == nullptr ? std::string() : std::string(reply.str, reply.len);
}

// One command on one node; its reply as text (a string or status) or integer.
std::string on_node(RedisClient& client, const Endpoint& node,
                    std::initializer_list<std::string_view> args) {
  std::string out;
  client.run_on(node, Command(args, 0), [&](std::size_t, const redisReply& reply) {
    out = reply.type == REDIS_REPLY_INTEGER ? std::to_string(reply.integer) : text_of(reply);
  });
  return out;
}

// One keyed command, routed by its key (args[1]).
std::string keyed(RedisClient& client, std::initializer_list<std::string_view> args) {
  const Command command(args);
  std::string out = "(nil)";
  client.run(std::span(&command, 1), [&](std::size_t, const redisReply& reply) {
    if (reply.type == REDIS_REPLY_NIL) return;
    out = reply.type == REDIS_REPLY_INTEGER ? std::to_string(reply.integer) : text_of(reply);
  });
  return out;
}

RedisClient admin_client(const std::string& key) {
  return RedisClient(parse_redis_url(testing::redis_url(key)), RedisOptions{});
}

Bytes random_page(std::mt19937_64& rng, std::size_t used = PAGE_SIZE) {
  Bytes page(PAGE_SIZE, 0);
  for (std::size_t i = 0; i < used; ++i) page[i] = static_cast<std::uint8_t>(rng());
  if (used > 0) page[used - 1] |= 1;
  return page;
}

// A clean cap of n pages, some Empty, some sharing content through `pool`.
DataCap random_cap(std::mt19937_64& rng, std::uint64_t n, std::vector<Bytes>* pool = nullptr) {
  DataCap cap = DataCap::zeroed(n * PAGE_SIZE);
  for (std::uint64_t p = 0; p < n; ++p) {
    const auto c = rng() % 10;
    if (c < 2) continue;
    Bytes page = (c < 5 && pool != nullptr && !pool->empty())
                     ? (*pool)[rng() % pool->size()]
                     : random_page(rng, 1 + rng() % PAGE_SIZE);
    if (pool != nullptr) pool->push_back(page);
    cap.put_page(p * PAGE_SIZE, page);
  }
  return cap;
}

// A store on the cluster (or `url_key`) under a prefix of its own, emptied at the end.
struct TestStore {
  explicit TestStore(const std::string& url_key = "DATACAP_REDIS_CLUSTER_URL",
                     RedisOptions options = {}) {
    prefix = testing::unique_redis_prefix();
    options.key_prefix = prefix;
    store = open_redis_store(testing::redis_url(url_key), options);
  }
  ~TestStore() {
    try {
      (void)store->gc({});
    } catch (const Error&) {
      // A test that broke the server reports that itself.
    }
  }
  TestStore(const TestStore&) = delete;
  TestStore& operator=(const TestStore&) = delete;
  PageStore* operator->() const { return store.get(); }
  std::string prefix;
  std::unique_ptr<PageStore> store;
};

// Every (page index, page root) of a cap's Loaded pages.
std::vector<std::pair<std::uint64_t, Hash32>> loaded_pages(const DataCap& cap) {
  std::vector<std::pair<std::uint64_t, Hash32>> out;
  cap.backing().for_each_stored(
      [&](std::uint32_t p, const PageSlot& s) { out.emplace_back(p, s.root()); });
  return out;
}

TEST(RedisClient, SlotsAgreeWithTheServersClusterKeyslot) {
  RedisClient client = admin_client("DATACAP_REDIS_CLUSTER_URL");
  ASSERT_TRUE(client.is_cluster());
  const Endpoint node = client.masters().at(0);
  std::mt19937_64 rng(testing::env_seed(101));
  std::vector<std::string> keys = {
      "foo", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "{", "}", "", "datacap:p:0123"};
  for (int k = 0; k < 200; ++k) {
    std::string key(1 + rng() % 12, 'a');
    for (char& c : key) c = "ab{}xyz01:"[rng() % 10];
    keys.push_back(key);
  }
  for (const std::string& key : keys) {
    EXPECT_EQ(on_node(client, node, {"CLUSTER", "KEYSLOT", key}), std::to_string(key_slot(key)))
        << key;
  }
}

TEST(RedisClient, StandaloneIsDetectedAndOwnsEverySlot) {
  RedisClient client = admin_client("DATACAP_REDIS_URL");
  EXPECT_FALSE(client.is_cluster());
  ASSERT_EQ(client.masters().size(), 1u);
  const std::string key = testing::unique_redis_prefix() + "k";
  EXPECT_EQ(keyed(client, {"SET", key, "v"}), "OK");
  EXPECT_EQ(keyed(client, {"GET", key}), "v");
  EXPECT_EQ(keyed(client, {"DEL", key}), "1");
}

TEST(RedisStore, KeysSpreadOverEveryMaster) {
  TestStore store;
  std::mt19937_64 rng(testing::env_seed(103));
  const DataCap cap = random_cap(rng, 300);
  const Hash32 root = store->save_cap(cap);
  RedisClient client = admin_client("DATACAP_REDIS_CLUSTER_URL");
  const std::vector<Endpoint> masters = client.masters();
  ASSERT_EQ(masters.size(), 3u);
  std::uint64_t total = 0;
  for (const Endpoint& node : masters) {
    std::uint64_t on_this = 0;
    std::string cursor = "0";
    do {
      client.run_on(node, Command({"SCAN", cursor, "MATCH", store.prefix + "p:*"}, 0),
                    [&](std::size_t, const redisReply& reply) {
                      cursor = text_of(*reply.element[0]);
                      on_this += reply.element[1]->elements;
                    });
    } while (cursor != "0");
    EXPECT_GT(on_this, 30u) << node.name();
    total += on_this;
  }
  EXPECT_EQ(total, store->page_count());
  EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
}

TEST(RedisStore, AuthenticationWithUserOrPasswordAndItsFailures) {
  const std::string acl_url = testing::redis_url("DATACAP_REDIS_AUTH_URL");
  const std::string pass_url = testing::redis_url("DATACAP_REDIS_PASS_URL");
  const detail::redis::RedisUrl parsed = parse_redis_url(acl_url);
  const std::string node = parsed.nodes.at(0).name();
  std::mt19937_64 rng(testing::env_seed(107));
  const DataCap cap = random_cap(rng, 20);
  for (const std::string& url : {acl_url, pass_url}) {
    RedisOptions options;
    options.key_prefix = testing::unique_redis_prefix();
    const std::unique_ptr<PageStore> store = open_redis_store(url, options);
    EXPECT_EQ(store->name().find(parse_redis_url(url).password), std::string::npos)
        << store->name();
    EXPECT_NE(store->name().find(node), std::string::npos) << store->name();
    const Hash32 root = store->save_cap(cap);
    EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
    (void)store->gc({});
  }
  // A wrong password, a wrong user, no password: IoError naming the node.
  for (const std::string& url :
       {"redis://" + parsed.user + ":wrong@" + node,
        "redis://nobody:" + parsed.password + "@" + node, "redis://" + node}) {
    SCOPED_TRACE(url);
    try {
      (void)open_redis_store(url);
      ADD_FAILURE() << "no IoError";
    } catch (const IoError& e) {
      EXPECT_EQ(e.path(), node);
      EXPECT_EQ(std::string(e.what()).find("wrong"), std::string::npos) << e.what();
    }
  }
}

TEST(RedisStore, MisuseIsInvalidArgumentAndAnAbsentServerIsIoError) {
  const std::string url = testing::redis_url("DATACAP_REDIS_URL");
  RedisOptions options;
  options.key_prefix = "a{b}:";
  EXPECT_THROW((void)open_redis_store(url, options), InvalidArgument);
  options.key_prefix = "ok:";
  options.command_timeout = 0ms;
  EXPECT_THROW((void)open_redis_store(url, options), InvalidArgument);
  EXPECT_THROW((void)open_redis_store("redis://host:1:2"), InvalidArgument);
  // Port 1 on loopback: nothing listens (refused at once).
  try {
    (void)open_redis_store("redis://127.0.0.1:1");
    ADD_FAILURE() << "no IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(e.path(), "127.0.0.1:1");
  }
}

// Moves `slot` from one master to another the way redis-cli --cluster reshard does, calling
// `midway` while the keys sit on the target but the slot still belongs to the source (ASK).
void move_slot(RedisClient& admin, std::uint16_t slot, const Endpoint& from, const Endpoint& to,
               const std::function<void()>& midway) {
  const std::string from_id = on_node(admin, from, {"CLUSTER", "MYID"});
  const std::string to_id = on_node(admin, to, {"CLUSTER", "MYID"});
  const std::string s = std::to_string(slot);
  ASSERT_EQ(on_node(admin, to, {"CLUSTER", "SETSLOT", s, "IMPORTING", from_id}), "OK");
  ASSERT_EQ(on_node(admin, from, {"CLUSTER", "SETSLOT", s, "MIGRATING", to_id}), "OK");
  std::vector<std::string> keys;
  admin.run_on(from, Command({"CLUSTER", "GETKEYSINSLOT", s, "1000"}, 0),
               [&](std::size_t, const redisReply& reply) {
                 for (std::size_t k = 0; k < reply.elements; ++k)
                   keys.push_back(text_of(*reply.element[k]));
               });
  const std::string port = std::to_string(to.port);
  for (const std::string& key : keys) {
    ASSERT_EQ(on_node(admin, from, {"MIGRATE", to.host, port, "", "0", "5000", "KEYS", key}), "OK");
  }
  midway();
  ASSERT_EQ(on_node(admin, to, {"CLUSTER", "SETSLOT", s, "NODE", to_id}), "OK");
  ASSERT_EQ(on_node(admin, from, {"CLUSTER", "SETSLOT", s, "NODE", to_id}), "OK");
  for (const Endpoint& other : admin.masters()) {
    if (!(other == from) && !(other == to))
      (void)on_node(admin, other, {"CLUSTER", "SETSLOT", s, "NODE", to_id});
  }
}

TEST(RedisClient, FollowsAskDuringAMigrationAndMovedAfterIt) {
  TestStore store;
  std::mt19937_64 rng(testing::env_seed(109));
  const DataCap cap = random_cap(rng, 30);
  const Hash32 root = store->save_cap(cap);
  const auto pages = loaded_pages(cap);
  ASSERT_FALSE(pages.empty());
  const std::string key = store.prefix + "p:" + to_hex(pages[0].second);
  const std::uint16_t slot = key_slot(key);

  RedisClient admin = admin_client("DATACAP_REDIS_CLUSTER_URL");
  RedisClient user = admin_client("DATACAP_REDIS_CLUSTER_URL");  // its map goes stale
  const Endpoint from = admin.master_of(slot);
  Endpoint to;
  for (const Endpoint& m : admin.masters()) {
    if (!(m == from)) to = m;
  }
  const std::string bytes = keyed(user, {"GET", key});
  ASSERT_NE(bytes, "(nil)");
  move_slot(admin, slot, from, to, [&] {
    const std::uint64_t asked = user.stats().asked;
    EXPECT_EQ(keyed(user, {"GET", key}), bytes);
    EXPECT_GT(user.stats().asked, asked) << "no ASK followed";
    EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);  // the store follows ASK too
  });
  const std::uint64_t moved = user.stats().moved;
  EXPECT_EQ(keyed(user, {"GET", key}), bytes);
  EXPECT_GT(user.stats().moved, moved) << "no MOVED followed";
  EXPECT_EQ(user.master_of(slot), to);  // the map learnt it
  EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
  EXPECT_TRUE(store->has(pages[0].second));
  // Put the slot back, so the cluster is as the other tests expect it.
  move_slot(admin, slot, to, from, [] {});
  EXPECT_EQ(keyed(user, {"GET", key}), bytes);
  EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
}

TEST(RedisStore, APausedMasterIsAnIoErrorNamingItNotAHang) {
  RedisOptions options;
  options.command_timeout = 500ms;
  TestStore store("DATACAP_REDIS_CLUSTER_URL", options);
  std::mt19937_64 rng(testing::env_seed(113));
  const DataCap cap = random_cap(rng, 30);
  const Hash32 root = store->save_cap(cap);
  const Hash32 victim = loaded_pages(cap).at(0).second;
  RedisClient admin = admin_client("DATACAP_REDIS_CLUSTER_URL");
  const Endpoint node = admin.master_of(key_slot(store.prefix + "p:" + to_hex(victim)));
  const auto paused_at = std::chrono::steady_clock::now();
  ASSERT_EQ(on_node(admin, node, {"CLIENT", "PAUSE", "3000", "ALL"}), "OK");
  const auto start = std::chrono::steady_clock::now();
  try {
    (void)store->get(victim);
    ADD_FAILURE() << "no IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(e.path(), node.name());
    EXPECT_NE(std::string(e.what()).find("command_timeout"), std::string::npos) << e.what();
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 1500ms);
  EXPECT_GE(took, 400ms);
  // Once the pause ends the store works again: the timed-out connection was discarded.
  std::this_thread::sleep_until(paused_at + 3200ms);
  EXPECT_TRUE(store->get(victim));
  EXPECT_EQ(store->load_cap(root).hash_tree_root(), root);
}

TEST(RedisStore, ValuesDamagedOrDeletedBehindTheStoresBack) {
  for (const char* url_key : {"DATACAP_REDIS_URL", "DATACAP_REDIS_CLUSTER_URL"}) {
    SCOPED_TRACE(url_key);
    TestStore store(url_key);
    RedisClient raw = admin_client(url_key);
    std::mt19937_64 rng(testing::env_seed(127));
    const DataCap cap = random_cap(rng, 20);
    const Hash32 root = store->save_cap(cap);
    const auto pages = loaded_pages(cap);
    ASSERT_GE(pages.size(), 2u);
    const auto [victim_index, victim] = pages[0];
    const std::string page_key = store.prefix + "p:" + to_hex(victim);
    const std::string cap_key = store.prefix + "c:" + to_hex(root);
    ASSERT_EQ(keyed(raw, {"EXISTS", page_key}), "1");
    const std::string good = keyed(raw, {"GET", page_key});

    // Other bytes: load_cap is an IntegrityError, hydrate changes nothing.
    ASSERT_EQ(keyed(raw, {"SET", page_key, std::string(100, '\xAB')}), "OK");
    try {
      (void)store->load_cap(root);
      ADD_FAILURE() << "no IntegrityError";
    } catch (const IntegrityError& e) {
      EXPECT_EQ(e.expected(), victim);
    }
    DataCap light = cap;
    std::vector<std::uint64_t> all;
    for (const auto& [index, page_root] : pages) all.push_back(index);
    light.elide_pages(all);
    EXPECT_THROW((void)hydrate(light, *store.store), IntegrityError);
    EXPECT_TRUE(light.page_slot(victim_index).is_missing());
    EXPECT_EQ(light.missing_pages().size(), pages.size());
    EXPECT_EQ(light.hash_tree_root(), root);

    // Longer than a page: a DecodeError naming the store and the page.
    ASSERT_EQ(keyed(raw, {"SET", page_key, std::string(PAGE_SIZE + 1, 'x')}), "OK");
    try {
      (void)store->load_cap(root);
      ADD_FAILURE() << "no DecodeError";
    } catch (const DecodeError& e) {
      EXPECT_NE(std::string(e.what()).find(store->name()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(to_hex(victim)), std::string::npos) << e.what();
    }

    // Deleted: the page loads Missing (root unchanged); hydrate leaves it Missing.
    ASSERT_EQ(keyed(raw, {"DEL", page_key}), "1");
    EXPECT_FALSE(store->has(victim));
    EXPECT_FALSE(store->get(victim));
    const DataCap back = store->load_cap(root);
    EXPECT_EQ(back.hash_tree_root(), root);
    EXPECT_EQ(back.missing_pages(), std::vector<std::uint64_t>{victim_index});
    const HydrateReport report = hydrate(light, *store.store);
    EXPECT_EQ(report.still_missing, 1u);
    EXPECT_EQ(report.hydrated, pages.size() - 1);
    EXPECT_EQ(light.missing_pages(), std::vector<std::uint64_t>{victim_index});
    // Put back as it was, everything loads again.
    ASSERT_EQ(keyed(raw, {"SET", page_key, good}), "OK");
    EXPECT_TRUE(store->load_cap(root).missing_pages().empty());

    // The record: damaged is a DecodeError, deleted is NotFound.
    ASSERT_EQ(keyed(raw, {"SET", cap_key, std::string(30, '\x01')}), "OK");
    EXPECT_THROW((void)store->load_cap(root), DecodeError);
    EXPECT_THROW((void)store->list_caps(), DecodeError);
    ASSERT_EQ(keyed(raw, {"DEL", cap_key}), "1");
    EXPECT_THROW((void)store->load_cap(root), NotFound);
    EXPECT_FALSE(store->has_cap(root));
  }
}

// Saves on one client, gc on another (as two machines would be): the lock is on the server.
// Without it a save could find a page present (SET NX), gc sweep it before the save writes its
// record, and the record name a page that is gone. Afterwards every record still present must
// load whole.
TEST(RedisStore, SavesBesideGcFromAnotherClientNeverLoseAReferencedPage) {
  TestStore saver;
  RedisOptions options;
  options.key_prefix = saver.prefix;
  const std::unique_ptr<PageStore> collector =
      open_redis_store(testing::redis_url("DATACAP_REDIS_CLUSTER_URL"), options);
  std::mt19937_64 rng(testing::env_seed(131));
  std::vector<Bytes> pool;
  const DataCap pinned_cap = random_cap(rng, 60, &pool);
  std::vector<DataCap> caps;
  for (int k = 0; k < 8; ++k) caps.push_back(random_cap(rng, 40 + rng() % 80, &pool));
  const Hash32 pinned = saver->save_cap(pinned_cap);

  std::mutex mutex;
  std::set<Hash32> saved;
  std::atomic<bool> gc_done{false};
  constexpr int GCS = 12;
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      // Until the gcs are over, and some rounds after, so that some caps outlive the last gc.
      for (int round = 0, after = 0; !gc_done.load() || after++ < 4; ++round) {
        const DataCap& cap = caps[static_cast<std::size_t>(t + 3 * round) % caps.size()];
        const Hash32 root = saver->save_cap(cap);
        const std::lock_guard guard(mutex);
        saved.insert(root);
      }
    });
  }
  threads.emplace_back([&] {
    const std::vector<Hash32> keep = {pinned};
    for (int k = 0; k < GCS; ++k) {
      (void)collector->gc(keep);
      std::this_thread::sleep_for(10ms);  // saves get their turn
    }
    gc_done = true;
  });
  for (auto& thread : threads) thread.join();
  std::size_t present = 0;
  for (const Hash32& root : saved) {
    if (!saver->has_cap(root)) continue;  // removed by a gc, pages and all
    ++present;
    const DataCap back = saver->load_cap(root);
    EXPECT_TRUE(back.missing_pages().empty()) << to_hex(root) << " lost pages";
    EXPECT_EQ(back.hash_tree_root(), root);
  }
  EXPECT_GT(present, 0u);
  const DataCap back = saver->load_cap(pinned);
  EXPECT_TRUE(back.missing_pages().empty());
}

}  // namespace
}  // namespace datacap
