// The Redis page store (open_redis_store): pages and cap records as Redis strings, the save/gc
// lock as a hash of leases, all through the cluster-aware client of store/redis_client.hpp.
//
// Keys (P = RedisOptions::key_prefix, hex = 64 lowercase hex digits of a SHA-256 root):
//   P "p:" hex   a page: its bytes trimmed of trailing zeros (0..4096 bytes; a zero page is
//                the empty string). Trimmed, because sparse pages (code, small heaps) then cost
//                what they hold; a value longer than 4096 bytes cannot be a page (DecodeError).
//   P "c:" hex   a cap record, as docs/format.md §3 "Cap record" lays it out.
//   P "lock"     the save/gc lock: a hash of leases (below).
// Writes are SET ... NX: a page or record already stored is left as it is (same root, same
// bytes), so writing twice — a retry after a lost connection, two machines saving the same
// page — is harmless.
//
// No transactions: keys of one batch live on different masters. A batch of pages that fails
// part way leaves some pages stored, which no record references (gc removes them); a cap
// record is written only after all its pages, so a record never names a page its save did not
// store. gc is not atomic either: it removes records first, then pages, so an interrupted gc
// leaves only unreferenced pages.
//
// The lock. Saves (shared) and gc (exclusive) exclude each other across every process and
// machine using the store, through the hash at P "lock", changed only by Lua scripts (atomic on
// the server, which also supplies the clock: holders' clocks never matter). Its fields:
//   "s:<id>" → expiry (ms)  a shared lease (a save in progress)
//   "x:<id>" → expiry       the exclusive lease (a gc)
//   "w:<id>" → expiry       a gc waiting: no new shared lease is granted while one is live, so
//                           a stream of saves cannot starve gc
// A lease lasts LEASE; a thread of the holder's store renews every lease it holds each
// LEASE / 3. A holder that crashes stops renewing and its leases expire: others wait at most
// LEASE for it. Expired fields are dropped by the next acquire; the key itself expires LEASE
// after its last write, so nothing is left behind. Waiting is polling with a doubling pause.
// A holder that cannot renew for LEASE (a partition) loses its lease; the guarantee below then
// lapses for it.
//
// What gc guarantees while others write: a save holds a shared lease from its first page to
// its record, gc the exclusive lease around its whole mark and sweep. So gc never runs beside a
// save: a save that stored a page (or found it present through SET NX) before gc started has
// written its record before gc marks, and a save that starts later waits until gc is done — a
// page a cap record references is never swept, and a save never relies on a page gc is about
// to remove. put()/put_many() take no lock (PageStore's contract): gc may remove their pages
// at once, since no record references them. Reads take no lock: a load beside a gc that
// removes its cap gives NotFound, or Missing pages, never wrong bytes.
#include "datacap/redis_store.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_set>

#include "datacap/error.hpp"
#include "store/redis_client.hpp"

namespace datacap {

namespace {

using detail::redis::Command;
using detail::redis::RedisClient;

// How long a lease lives without renewal: what a crashed holder costs the others at most.
constexpr std::chrono::milliseconds LEASE{15000};
// Commands per pipelined batch in scans and sweeps: a few round trips per thousand keys, and
// bounded memory.
constexpr std::size_t SWEEP_BATCH = 4096;

// KEYS[1] the lock; ARGV mode ("s" or "x"), holder id, lease ms. Returns 1 when granted.
// Drops expired fields; a shared lease waits for no exclusive holder and no waiting gc, an
// exclusive one for no other holder at all (another waiting gc does not block it, or two gcs
// would wait for each other forever).
constexpr std::string_view ACQUIRE_SCRIPT = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[3])
local mine = ARGV[1] .. ':' .. ARGV[2]
local wish = 'w:' .. ARGV[2]
local busy = false
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local f = fields[i]
  if (tonumber(fields[i + 1]) or 0) <= now then
    redis.call('HDEL', KEYS[1], f)
  elseif f ~= mine and f ~= wish then
    local kind = string.sub(f, 1, 1)
    if kind == 'x' or (kind == 'w' and ARGV[1] == 's') or (kind == 's' and ARGV[1] == 'x') then
      busy = true
    end
  end
end
if busy then
  if ARGV[1] == 'x' then
    redis.call('HSET', KEYS[1], wish, now + lease)
    redis.call('PEXPIRE', KEYS[1], lease + 1000)
  end
  return 0
end
redis.call('HDEL', KEYS[1], wish)
redis.call('HSET', KEYS[1], mine, now + lease)
redis.call('PEXPIRE', KEYS[1], lease + 1000)
return 1
)lua";

// KEYS[1] the lock; ARGV field, lease ms. Extends a lease still present (an expired one not yet
// dropped is safe to extend: nobody was granted anything against it, or it would be gone).
// Returns 0 when the lease was lost.
constexpr std::string_view RENEW_SCRIPT = R"lua(
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
return 1
)lua";

// KEYS[1] the lock; ARGV fields to drop. Deletes the key when it holds nothing more.
constexpr std::string_view RELEASE_SCRIPT = R"lua(
for i = 1, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[1]) end
return 1
)lua";

std::string hex_of(const Hash32& root) { return to_hex(root); }

// The root a key names, or false for a key that is not prefix + tag + 64 hex digits.
bool root_of_key(std::string_view key, std::size_t head, Hash32& root) {
  if (key.size() != head + 64) return false;
  for (std::size_t k = 0; k < 32; ++k) {
    int byte = 0;
    for (int half = 0; half < 2; ++half) {
      const char c = key[head + 2 * k + static_cast<std::size_t>(half)];
      int v = -1;
      if (c >= '0' && c <= '9') v = c - '0';
      if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
      if (v < 0) return false;
      byte = byte * 16 + v;
    }
    root[k] = static_cast<std::uint8_t>(byte);
  }
  return true;
}

// Keeps the store's leases alive: one thread per store renews every lease it holds each
// LEASE / 3, until the store is destroyed.
class LeaseKeeper {
 public:
  LeaseKeeper(RedisClient& client, std::string lock_key)
      : client_(client), lock_key_(std::move(lock_key)), thread_([this] { loop(); }) {}
  ~LeaseKeeper() {
    {
      const std::lock_guard guard(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  void add(const std::string& field) {
    const std::lock_guard guard(mutex_);
    fields_.insert(field);
  }
  void remove(const std::string& field) {
    const std::lock_guard guard(mutex_);
    fields_.erase(field);
  }
  [[nodiscard]] bool holds(const std::string& field) const {
    const std::lock_guard guard(mutex_);
    return fields_.count(field) != 0;
  }
  [[nodiscard]] std::vector<std::string> fields() const {
    const std::lock_guard guard(mutex_);
    return {fields_.begin(), fields_.end()};
  }

 private:
  void loop() {
    std::unique_lock guard(mutex_);
    while (!stopping_) {
      wake_.wait_for(guard, LEASE / 3, [this] { return stopping_; });
      if (stopping_) break;
      const std::vector<std::string> fields(fields_.begin(), fields_.end());
      guard.unlock();
      const std::string lease = std::to_string(LEASE.count());
      for (const std::string& field : fields) {
        try {
          const Command command({"EVAL", RENEW_SCRIPT, "1", lock_key_, field, lease}, 3);
          client_.run(std::span(&command, 1), [](std::size_t, const redisReply&) {});
        } catch (const std::exception&) {
          // The server is unreachable now (or memory ran out): the next round tries again, and
          // a lease not renewed within LEASE is lost — which the save or gc holding it finds
          // out before it commits (confirm_leases).
        }
      }
      guard.lock();
    }
  }

  RedisClient& client_;
  std::string lock_key_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::set<std::string> fields_;  // guarded by mutex_
  bool stopping_ = false;         // guarded by mutex_
  std::thread thread_;            // last: starts once the rest is built
};

class RedisStore final : public PageStore {
 public:
  RedisStore(const std::string& url, const RedisOptions& options)
      : prefix_(options.key_prefix),
        wait_replicas_(options.wait_replicas),
        client_(detail::redis::parse_redis_url(url), options),
        name_(client_.url().display()),
        keeper_(client_, prefix_ + "lock") {
    std::random_device device;
    id_base_ = std::to_string(device()) + "-" + std::to_string(device()) + "-";
  }

  [[nodiscard]] std::string name() const override { return name_; }

 protected:
  void do_put_pages(std::span<const PageRecord> pages) override {
    std::vector<std::string> keys(pages.size());
    std::vector<Command> commands(pages.size());
    for (std::size_t k = 0; k < pages.size(); ++k) {
      keys[k] = page_key(pages[k].root);
      const std::uint8_t* bytes = pages[k].page.data();
      std::size_t used = PAGE_SIZE;
      while (used > 0 && bytes[used - 1] == 0) --used;
      commands[k] = Command(
          {"SET", keys[k], std::string_view(reinterpret_cast<const char*>(bytes), used), "NX"});
    }
    // OK, or nil: present. On a replica as well when the call returns (wait_replicas).
    client().run(
        commands, [](std::size_t, const redisReply&) {}, wait_replicas_);
  }

  void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const override {
    std::vector<std::string> keys(roots.size());
    std::vector<Command> commands(roots.size());
    for (std::size_t k = 0; k < roots.size(); ++k) {
      keys[k] = page_key(roots[k]);
      commands[k] = Command({"GET", keys[k]});
    }
    client().run(commands, [&](std::size_t k, const redisReply& reply) {
      if (reply.type == REDIS_REPLY_NIL) {
        out[k] = PageRef();
        return;
      }
      if (reply.type != REDIS_REPLY_STRING || reply.len > PAGE_SIZE) {
        throw DecodeError(name_ + ": page " + hex_of(roots[k]), PAGE_SIZE,
                          reply.type != REDIS_REPLY_STRING
                              ? std::string("the stored value is not a string")
                              : "a stored value of " + std::to_string(reply.len) +
                                    " bytes is longer than a page");
      }
      out[k] =
          PageRef::copy_of(std::span(reinterpret_cast<const std::uint8_t*>(reply.str), reply.len));
    });
  }

  bool do_has_page(const Hash32& root) const override {
    std::vector<bool> out(1, false);
    do_has_pages(std::span(&root, 1), out);
    return out[0];
  }

  void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const override {
    std::vector<std::string> keys(roots.size());
    std::vector<Command> commands(roots.size());
    for (std::size_t k = 0; k < roots.size(); ++k) {
      keys[k] = page_key(roots[k]);
      commands[k] = Command({"EXISTS", keys[k]});
    }
    client().run(commands, [&](std::size_t k, const redisReply& reply) {
      out[k] = reply.type == REDIS_REPLY_INTEGER && reply.integer == 1;
    });
  }

  // SCAN of every master: O(keys on the servers) time, O(pages) memory (SCAN may return a key
  // twice, so roots are counted in a set).
  std::uint64_t do_page_count() const override {
    std::unordered_set<Hash32, Hash32Hasher> roots;
    const std::size_t head = prefix_.size() + 2;
    client().scan(pattern("p:"), [&](std::string_view key) {
      Hash32 root;
      if (root_of_key(key, head, root)) roots.insert(root);
    });
    return roots.size();
  }

  void do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) override {
    confirm_leases('s', "save_cap");
    const std::string key = cap_key(cap_root);
    const Command command(
        {"SET", key, std::string_view(reinterpret_cast<const char*>(record.data()), record.size()),
         "NX"});
    client().run(
        std::span(&command, 1), [](std::size_t, const redisReply&) {}, wait_replicas_);
  }

  bool do_has_cap(const Hash32& cap_root) const override {
    const std::string key = cap_key(cap_root);
    const Command command({"EXISTS", key});
    bool present = false;
    client().run(std::span(&command, 1), [&](std::size_t, const redisReply& reply) {
      present = reply.type == REDIS_REPLY_INTEGER && reply.integer == 1;
    });
    return present;
  }

  bool do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const override {
    const std::vector<std::optional<std::vector<std::uint8_t>>> got =
        get_records(std::span(&cap_root, 1));
    if (!got[0]) return false;
    record = *got[0];
    return true;
  }

  // The records' roots by SCAN of every master, sorted, then the records read in pipelined
  // batches: not one snapshot — a record removed between the scan and its read is skipped, one
  // added meanwhile may be missed. O(caps) memory for the roots.
  void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const override {
    const std::vector<Hash32> roots = scan_roots("c:");
    for (std::size_t at = 0; at < roots.size(); at += SWEEP_BATCH) {
      const std::span<const Hash32> batch =
          std::span(roots).subspan(at, std::min(SWEEP_BATCH, roots.size() - at));
      const auto records = get_records(batch);
      for (std::size_t k = 0; k < batch.size(); ++k) {
        if (records[k]) fn(batch[k], *records[k]);
      }
    }
  }

  // Mark, then sweep (records first, then pages), under the exclusive lease the base holds.
  // See the comment at the top of this file for what runs beside it.
  GcReport do_gc(std::span<const Hash32> keep) override {
    const std::set<Hash32> kept(keep.begin(), keep.end());
    const std::vector<Hash32> kept_roots(kept.begin(), kept.end());
    std::unordered_set<Hash32, Hash32Hasher> referenced;
    std::vector<Hash32> page_roots;
    for (std::size_t at = 0; at < kept_roots.size(); at += SWEEP_BATCH) {
      const std::span<const Hash32> batch =
          std::span(kept_roots).subspan(at, std::min(SWEEP_BATCH, kept_roots.size() - at));
      const auto records = get_records(batch);
      for (std::size_t k = 0; k < batch.size(); ++k) {
        if (!records[k]) throw NotFound(name_ + ": gc: keep", "cap", batch[k]);
        page_roots.clear();
        record_page_roots(*records[k], page_roots, name_, &batch[k]);
        referenced.insert(page_roots.begin(), page_roots.end());
      }
    }
    GcReport report;
    confirm_leases('x', "gc");
    sweep(
        "c:", [&](const Hash32& root) { return kept.count(root) != 0; }, report.caps_kept,
        report.caps_removed);
    confirm_leases('x', "gc");
    sweep(
        "p:", [&](const Hash32& root) { return referenced.count(root) != 0; }, report.pages_kept,
        report.pages_removed);
    return report;
  }

  std::unique_ptr<Lock> do_lock(bool exclusive) const override {
    struct Held final : Lock {
      Held(const RedisStore& s, std::string f) : store(s), field(std::move(f)) {}
      ~Held() override {
        store.keeper_.remove(field);
        try {
          const std::string key = store.lock_key();  // outlives the command's views
          const Command command({"EVAL", RELEASE_SCRIPT, "1", key, field}, 3);
          store.client().run(std::span(&command, 1), [](std::size_t, const redisReply&) {});
        } catch (...) {
          // The server is unreachable: the lease expires within LEASE by itself.
        }
      }
      Held(const Held&) = delete;
      Held& operator=(const Held&) = delete;
      const RedisStore& store;
      std::string field;
    };
    const std::string id = id_base_ + std::to_string(next_id_.fetch_add(1));
    const std::string mode = exclusive ? "x" : "s";
    const std::string lease = std::to_string(LEASE.count());
    const std::string key = lock_key();
    const Command command({"EVAL", ACQUIRE_SCRIPT, "1", key, mode, id, lease}, 3);
    std::chrono::milliseconds pause{5};
    while (true) {
      bool granted = false;
      // Acknowledged by a replica (wait_replicas): a failover right after the grant must not
      // forget it and grant the other side.
      client().run(
          std::span(&command, 1),
          [&](std::size_t, const redisReply& reply) {
            granted = reply.type == REDIS_REPLY_INTEGER && reply.integer == 1;
          },
          wait_replicas_);
      if (granted) break;
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds{200});
    }
    auto held = std::make_unique<Held>(*this, mode + ":" + id);
    keeper_.add(held->field);
    return held;
  }

 private:
  // Renews, now, every lease of `kind` ('s' saves, 'x' gc) this store holds, and throws IoError
  // when one is gone: it expired (the holder stalled past LEASE, the server was out of reach)
  // and the other side may have been granted the lock meanwhile. A save checks before it
  // writes its record, gc before it deletes: neither commits on a lock it no longer holds.
  void confirm_leases(char kind, const char* what) const {
    const std::string key = lock_key();
    const std::string lease = std::to_string(LEASE.count());
    for (const std::string& field : keeper_.fields()) {
      if (field.empty() || field[0] != kind) continue;
      bool held = false;
      const Command command({"EVAL", RENEW_SCRIPT, "1", key, field, lease}, 3);
      client().run(
          std::span(&command, 1),
          [&](std::size_t, const redisReply& reply) {
            held = reply.type == REDIS_REPLY_INTEGER && reply.integer == 1;
          },
          wait_replicas_);
      // A lease released meanwhile by another save of this store that finished (it leaves the
      // keeper before its release reaches the server) is not a lost one.
      if (!held && keeper_.holds(field)) {
        throw IoError(name(), std::string(what) + ": the lock's lease (" + field +
                                  ") expired before it could commit; nothing was committed");
      }
    }
  }

  [[nodiscard]] RedisClient& client() const { return client_; }
  [[nodiscard]] std::string page_key(const Hash32& root) const {
    return prefix_ + "p:" + hex_of(root);
  }
  [[nodiscard]] std::string cap_key(const Hash32& root) const {
    return prefix_ + "c:" + hex_of(root);
  }
  [[nodiscard]] std::string lock_key() const { return prefix_ + "lock"; }
  [[nodiscard]] std::string pattern(std::string_view tag) const {
    return detail::redis::glob_escape(prefix_) + std::string(tag) + "*";
  }

  // The records under `roots` (nullopt where none), read in one pipelined batch.
  [[nodiscard]] std::vector<std::optional<std::vector<std::uint8_t>>> get_records(
      std::span<const Hash32> roots) const {
    std::vector<std::string> keys(roots.size());
    std::vector<Command> commands(roots.size());
    for (std::size_t k = 0; k < roots.size(); ++k) {
      keys[k] = cap_key(roots[k]);
      commands[k] = Command({"GET", keys[k]});
    }
    std::vector<std::optional<std::vector<std::uint8_t>>> out(roots.size());
    client().run(commands, [&](std::size_t k, const redisReply& reply) {
      if (reply.type == REDIS_REPLY_NIL) return;
      if (reply.type != REDIS_REPLY_STRING)
        throw DecodeError(name_ + ": cap " + hex_of(roots[k]), 0,
                          "the stored value is not a string");
      out[k].emplace(reinterpret_cast<const std::uint8_t*>(reply.str),
                     reinterpret_cast<const std::uint8_t*>(reply.str) + reply.len);
    });
    return out;
  }

  // Every root under prefix + tag, sorted and distinct.
  [[nodiscard]] std::vector<Hash32> scan_roots(std::string_view tag) const {
    std::set<Hash32> roots;
    const std::size_t head = prefix_.size() + tag.size();
    client().scan(pattern(tag), [&](std::string_view key) {
      Hash32 root;
      if (root_of_key(key, head, root)) roots.insert(root);
    });
    return {roots.begin(), roots.end()};
  }

  // Deletes every key under prefix + tag whose root `keep` rejects, in pipelined batches as the
  // scan finds them; counts the kept roots (each once) and the keys DEL removed.
  void sweep(std::string_view tag, const std::function<bool(const Hash32&)>& keep,
             std::uint64_t& kept, std::uint64_t& removed) {
    const std::size_t head = prefix_.size() + tag.size();
    std::unordered_set<Hash32, Hash32Hasher> kept_seen;  // SCAN may return a key twice
    std::vector<std::string> doomed;
    const auto flush = [&] {
      std::vector<Command> commands(doomed.size());
      for (std::size_t k = 0; k < doomed.size(); ++k) commands[k] = Command({"DEL", doomed[k]});
      client().run(commands, [&](std::size_t, const redisReply& reply) {
        if (reply.type == REDIS_REPLY_INTEGER && reply.integer == 1) ++removed;
      });
      doomed.clear();
    };
    client().scan(pattern(tag), [&](std::string_view key) {
      Hash32 root;
      if (!root_of_key(key, head, root)) return;  // not a key this store writes
      if (keep(root)) {
        kept_seen.insert(root);
      } else {
        doomed.emplace_back(key);
        if (doomed.size() == SWEEP_BATCH) flush();
      }
    });
    flush();
    kept += kept_seen.size();
  }

  std::string prefix_;
  unsigned wait_replicas_;
  mutable RedisClient client_;
  std::string name_;
  mutable LeaseKeeper keeper_;
  std::string id_base_;  // unique per store object: random, so across processes and machines
  mutable std::atomic<std::uint64_t> next_id_{0};
};

}  // namespace

std::unique_ptr<PageStore> open_redis_store(const std::string& url, RedisOptions options) {
  if (options.key_prefix.find_first_of("{}") != std::string::npos) {
    throw InvalidArgument("open_redis_store: key_prefix \"" + options.key_prefix +
                          "\" holds '{' or '}', which would pick the keys' cluster slot");
  }
  if (options.connect_timeout.count() <= 0 || options.command_timeout.count() <= 0) {
    throw InvalidArgument(
        "open_redis_store: connect_timeout and command_timeout must be positive (a zero "
        "timeout would let a stalled server hang the caller)");
  }
  if (options.retry_pause.count() < 0 || options.max_retries > 1000) {
    throw InvalidArgument(
        "open_redis_store: retry_pause must not be negative and max_retries at most 1000");
  }
  return std::make_unique<RedisStore>(url, options);
}

}  // namespace datacap
