// The Redis page store against the local 3-master cluster that scripts/redis-servers.sh starts
// (scripts/bench.sh starts it and exports DATACAP_REDIS_CLUSTER_URL), each figure beside a floor
// measured in the same run: raw pipelined SET / GET of 4 KiB values with hiredis, one pipeline per
// master, keys routed by their slot. Without the variable every benchmark here reports an error
// and measures nothing.
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "datacap/datacap.hpp"
#include "store/redis_client.hpp"
#include "support/caps.hpp"

namespace datacap {
namespace {

namespace redis = detail::redis;

constexpr std::uint64_t GIB_PAGES = 262144;
constexpr std::size_t PIPELINE = 1024;  // commands written before their replies are read

const char* cluster_url() { return std::getenv("DATACAP_REDIS_CLUSTER_URL"); }

// Deletes every key of every master (between iterations, untimed): each run starts empty, and
// the replicas follow.
void flush_cluster(const std::string& url) {
  redis::RedisClient client(redis::parse_redis_url(url), RedisOptions{});
  for (const redis::Endpoint& node : client.masters()) {
    client.run_on(node, redis::Command({"FLUSHALL"}, 0), [](std::size_t, const redisReply&) {});
  }
}

// Raw hiredis: one connection per master; pipelines `argv` commands (built by `make` for key i)
// to the master owning each key, PIPELINE at a time per master, and reads every reply.
class RawCluster {
 public:
  explicit RawCluster(const std::string& url) : client_(redis::parse_redis_url(url), {}) {
    for (const redis::Endpoint& node : client_.masters()) {
      redisContext* c = redisConnect(node.host.c_str(), node.port);
      if (c == nullptr || c->err != 0) std::abort();
      contexts_[node.name()] = c;
    }
  }
  ~RawCluster() {
    for (auto& [name, c] : contexts_) redisFree(c);
  }

  // Returns the number of replies that were bulk strings of 4096 bytes (GET) or OK (SET).
  std::size_t run(const std::vector<std::string>& keys, const std::uint8_t* values) {
    std::map<std::string, std::vector<std::size_t>> by_node;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      by_node[client_.master_of(redis::key_slot(keys[i])).name()].push_back(i);
    }
    std::size_t good = 0;
    for (auto& [name, indices] : by_node) {
      redisContext* c = contexts_.at(name);
      for (std::size_t at = 0; at < indices.size(); at += PIPELINE) {
        const std::size_t end = std::min(indices.size(), at + PIPELINE);
        for (std::size_t j = at; j < end; ++j) {
          const std::string& key = keys[indices[j]];
          if (values != nullptr) {
            const char* argv[] = {"SET", key.data(),
                                  reinterpret_cast<const char*>(values + indices[j] * PAGE_SIZE)};
            const std::size_t lens[] = {3, key.size(), PAGE_SIZE};
            redisAppendCommandArgv(c, 3, argv, lens);
          } else {
            const char* argv[] = {"GET", key.data()};
            const std::size_t lens[] = {3, key.size()};
            redisAppendCommandArgv(c, 2, argv, lens);
          }
        }
        for (std::size_t j = at; j < end; ++j) {
          void* reply = nullptr;
          if (redisGetReply(c, &reply) != REDIS_OK) std::abort();
          const auto* r = static_cast<redisReply*>(reply);
          if (r->type == REDIS_REPLY_STATUS || (r->type == REDIS_REPLY_STRING && r->len == 4096)) {
            ++good;
          }
          freeReplyObject(reply);
        }
      }
    }
    return good;
  }

 private:
  redis::RedisClient client_;
  std::map<std::string, redisContext*> contexts_;
};

std::vector<std::string> floor_keys(std::uint64_t n) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) keys.push_back("floor:p:" + std::to_string(i));
  return keys;
}

bool have_cluster(benchmark::State& state) {
  if (cluster_url() != nullptr) return true;
  state.SkipWithError("DATACAP_REDIS_CLUSTER_URL is not set (scripts/bench.sh starts a cluster)");
  return false;
}

// The floor of BM_RedisPut: 262,144 pipelined SETs of distinct 4 KiB values.
void BM_RedisSetFloor(benchmark::State& state) {
  if (!have_cluster(state)) return;
  const auto bytes = bench::random_bytes(GIB_PAGES * PAGE_SIZE, 21);
  const std::vector<std::string> keys = floor_keys(GIB_PAGES);
  for (auto _ : state) {
    state.PauseTiming();
    flush_cluster(cluster_url());
    RawCluster raw(cluster_url());
    state.ResumeTiming();
    if (raw.run(keys, bytes.data()) != keys.size()) state.SkipWithError("a SET failed");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * GIB_PAGES * PAGE_SIZE));
}
BENCHMARK(BM_RedisSetFloor)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();

// First save of a freshly built 1 GiB cap (page hashing included) into the emptied cluster.
void BM_RedisPut(benchmark::State& state) {
  if (!have_cluster(state)) return;
  const auto bytes = bench::random_bytes(GIB_PAGES * PAGE_SIZE, 22);
  for (auto _ : state) {
    state.PauseTiming();
    flush_cluster(cluster_url());
    const std::unique_ptr<PageStore> store = open_redis_store(cluster_url());
    DataCap cap = DataCap::from_bytes(bytes);
    state.ResumeTiming();
    benchmark::DoNotOptimize(store->save_cap(cap));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * GIB_PAGES * PAGE_SIZE));
}
BENCHMARK(BM_RedisPut)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();

// Saving again what the cluster holds: case 1 the same cap (its record is found), case 2 a new
// cap of the same pages plus one Empty page (every page looked up in batches and found).
void BM_RedisPutAgain(benchmark::State& state) {
  if (!have_cluster(state)) return;
  flush_cluster(cluster_url());
  const std::unique_ptr<PageStore> store = open_redis_store(cluster_url());
  const DataCap first = DataCap::from_bytes(bench::random_bytes(GIB_PAGES * PAGE_SIZE, 22));
  (void)store->save_cap(first);
  DataCap other = DataCap::zeroed((GIB_PAGES + 1) * PAGE_SIZE);
  other.place_shared(0, first);
  (void)other.hash_tree_root();
  for (auto _ : state) {
    benchmark::DoNotOptimize(store->save_cap(state.range(0) == 1 ? first : other));
  }
}
BENCHMARK(BM_RedisPutAgain)
    ->ArgName("case")
    ->Arg(1)
    ->Arg(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The floor of BM_RedisGet: 262,144 pipelined GETs of 4 KiB values.
void BM_RedisGetFloor(benchmark::State& state) {
  if (!have_cluster(state)) return;
  flush_cluster(cluster_url());
  const auto bytes = bench::random_bytes(GIB_PAGES * PAGE_SIZE, 23);
  const std::vector<std::string> keys = floor_keys(GIB_PAGES);
  RawCluster raw(cluster_url());
  if (raw.run(keys, bytes.data()) != keys.size()) state.SkipWithError("a SET failed");
  for (auto _ : state) {
    if (raw.run(keys, nullptr) != keys.size()) state.SkipWithError("a GET failed");
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * GIB_PAGES * PAGE_SIZE));
}
BENCHMARK(BM_RedisGetFloor)->Unit(benchmark::kMillisecond)->UseRealTime();

// load_cap of a saved 1 GiB cap: every page fetched and checked against its root.
void BM_RedisGet(benchmark::State& state) {
  if (!have_cluster(state)) return;
  flush_cluster(cluster_url());
  const std::unique_ptr<PageStore> store = open_redis_store(cluster_url());
  const Hash32 root =
      store->save_cap(DataCap::from_bytes(bench::random_bytes(GIB_PAGES * PAGE_SIZE, 24)));
  for (auto _ : state) {
    const DataCap loaded = store->load_cap(root);
    benchmark::DoNotOptimize(loaded.page_count());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * GIB_PAGES * PAGE_SIZE));
}
BENCHMARK(BM_RedisGet)->Unit(benchmark::kMillisecond)->UseRealTime();

// 1,000 random Missing pages of a 1 GiB cap hydrated from the cluster, and its floor: the same
// 1,000 pages fetched raw.
void BM_HydrateRemote1000(benchmark::State& state) {
  if (!have_cluster(state)) return;
  flush_cluster(cluster_url());
  const std::unique_ptr<PageStore> store = open_redis_store(cluster_url());
  const DataCap full = DataCap::from_bytes(bench::random_bytes(GIB_PAGES * PAGE_SIZE, 25));
  (void)store->save_cap(full);
  std::mt19937_64 rng(26);
  std::vector<std::uint64_t> pages;
  for (int k = 0; k < 1000; ++k) pages.push_back(rng() % GIB_PAGES);
  DataCap elided = full;
  elided.elide_pages(pages);
  for (auto _ : state) {
    state.PauseTiming();
    DataCap cap = elided;
    state.ResumeTiming();
    benchmark::DoNotOptimize(hydrate(cap, *store).hydrated);
  }
}
BENCHMARK(BM_HydrateRemote1000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_HydrateRemote1000Floor(benchmark::State& state) {
  if (!have_cluster(state)) return;
  flush_cluster(cluster_url());
  const auto bytes = bench::random_bytes(GIB_PAGES * PAGE_SIZE, 27);
  const std::vector<std::string> all = floor_keys(GIB_PAGES);
  RawCluster raw(cluster_url());
  (void)raw.run(all, bytes.data());
  std::mt19937_64 rng(26);
  std::vector<std::string> keys;
  for (int k = 0; k < 1000; ++k) keys.push_back(all[rng() % GIB_PAGES]);
  for (auto _ : state) {
    if (raw.run(keys, nullptr) != keys.size()) state.SkipWithError("a GET failed");
  }
}
BENCHMARK(BM_HydrateRemote1000Floor)->Unit(benchmark::kMillisecond)->UseRealTime();

// load_cap through a tiered store (LMDB in front of the cluster) of a 256 MiB cap: case 0 with
// an empty local tier (every page from the cluster, then cached), case 1 the second load (every
// page from the local tier; the record from the cluster).
void BM_TieredLoad(benchmark::State& state) {
  if (!have_cluster(state)) return;
  constexpr std::uint64_t pages = 65536;
  flush_cluster(cluster_url());
  const Hash32 root =
      open_redis_store(cluster_url())
          ->save_cap(DataCap::from_bytes(bench::random_bytes(pages * PAGE_SIZE, 28)));
  const std::string dir = "/tmp/datacap_bench_tiered_" + std::to_string(::getpid());
  for (auto _ : state) {
    state.PauseTiming();
    std::filesystem::remove_all(dir);
    auto tiered = make_tiered_store(open_lmdb_store(dir), open_redis_store(cluster_url()));
    if (state.range(0) == 1) (void)tiered->load_cap(root);  // fills the local tier
    state.ResumeTiming();
    const DataCap loaded = tiered->load_cap(root);
    benchmark::DoNotOptimize(loaded.page_count());
  }
  std::filesystem::remove_all(dir);
}
BENCHMARK(BM_TieredLoad)
    ->ArgName("second")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace datacap
