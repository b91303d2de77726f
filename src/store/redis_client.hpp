// Internal: a small Redis client on hiredis's blocking API that knows Redis Cluster — what the
// Redis page store (store/redis_store.cpp) runs its commands through. hiredis opens, writes and
// authenticates; the replies to run()'s pipelines are parsed by the client itself, from a buffer
// of its own (strings handed out in place, no copy), with hiredis's reader kept for the rest.
//
// Debian ships no cluster-aware C client, so this one does the cluster's part itself: the slot
// of a key (CRC16, the specification's rule), a slot → master map read with CLUSTER SLOTS,
// commands grouped per master and pipelined (all of a node's commands written, then all its
// replies read), MOVED (the map is updated and refreshed) and ASK (ASKING, then the command on
// the node named, once) followed, and TRYAGAIN / CLUSTERDOWN / a lost connection retried a
// bounded number of times with a doubling pause. A standalone server is the same client with
// one node owning every slot.
//
// Every command it is given must be safe to send twice (a retry after a lost connection cannot
// know whether the server ran it): the store sends only GET, EXISTS, SET NX, DEL, SCAN and
// lock scripts that set what they set again.
//
// Timeouts: connections are opened with RedisOptions::connect_timeout and every read and write
// on them times out after command_timeout (redisSetTimeout: SO_RCVTIMEO / SO_SNDTIMEO), so a
// server that stops answering is an IoError naming it, never a hang. A timeout is not retried:
// a node that does not answer is reported at once rather than after max_retries more waits.
//
// Thread-safety: every member may be called from any number of threads at once. Connections
// sit in a pool per node (a mutex around the idle lists); a call borrows one connection per
// node it talks to and returns it after, or closes it when anything went wrong on it (a
// hiredis context in an error state, or replies left unread, is never reused).
#pragma once

#include <hiredis/hiredis.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "datacap/redis_store.hpp"

namespace datacap::detail::redis {

inline constexpr std::uint16_t SLOT_COUNT = 16384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection), the checksum the
// Redis Cluster specification hashes keys with; crc16("123456789") == 0x31C3.
[[nodiscard]] std::uint16_t crc16(std::string_view bytes) noexcept;
// The cluster slot of a key: CRC16 of the key mod 16384, or of its hash tag — the bytes between
// the first '{' and the first '}' after it, when there are any.
[[nodiscard]] std::uint16_t key_slot(std::string_view key) noexcept;

// The longest string the store ever reads back — a cap record of 2^32 entries (24 + 36 · 2^32
// bytes; Redis's proto-max-bulk-len must be raised past its 512 MiB default to store one that
// long) — and a bound on a status or error line: a peer announcing more is not serving a
// datacap store. (A reply's buffer grows only as its bytes arrive, whatever its announced
// length: memory follows what the peer sends.)
inline constexpr long long MAX_REPLY_BULK_BYTES = 24 + 36 * (1LL << 32);
inline constexpr std::size_t MAX_REPLY_LINE_BYTES = std::size_t{64} << 10;

enum class ReplyParse { reply, need_more, other_kind, malformed };
// Parses the RESP2 reply at the start of bytes[0, size) when it is of a kind the client reads
// itself: status (+), error (-), integer (:), bulk string ($; $-1 is nil). `reply`: `out` is
// it (its string points into bytes), `used` its length in bytes. `need_more`: the reply is
// incomplete and needs at least `need` bytes (> size). `other_kind`: an array or an unknown type
// byte (hiredis's to read, or to reject). `malformed`: not RESP (a number that is not "0" or an
// optional '-' and digits without a leading zero, in 64 bits — hiredis's rule; a bulk length
// below -1 or over MAX_REPLY_BULK_BYTES; CR without LF; a bulk string not followed by CR LF; a
// line over MAX_REPLY_LINE_BYTES). `searched` carries over between calls on one growing reply (0
// for a new one): a line arriving a little at a time is searched once. O(size) at most; allocates
// nothing.
[[nodiscard]] ReplyParse parse_reply(const char* bytes, std::size_t size, redisReply& out,
                                     std::size_t& used, std::size_t& need,
                                     std::size_t& searched) noexcept;

struct Endpoint {
  std::string host;  // an IPv4 address or a host name
  std::uint16_t port = 0;
  // "host:port": how errors name the node.
  [[nodiscard]] std::string name() const { return host + ":" + std::to_string(port); }
  friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

struct RedisUrl {
  std::string user;      // empty: AUTH with the password alone (the default user)
  std::string password;  // empty: no AUTH
  std::vector<Endpoint> nodes;
  // "redis://[user@]host:port[,host:port...]": the URL without its password.
  [[nodiscard]] std::string display() const;
};

// Parses "redis://[user[:password]@]host[:port][,host[:port]...]" (port 6379 when left out;
// '%XX' escapes in user and password, for a password holding '@', ':' or ','). Throws
// InvalidArgument naming what is wrong: another scheme, an empty or bad host, a port that is not
// 1..65535, a user without a password, a path, an IPv6 address (not supported).
[[nodiscard]] RedisUrl parse_redis_url(const std::string& url);

// One command: up to MAX_ARGS arguments viewed (not copied: they must outlive the call that
// runs it), and which argument is the key that routes it (key_arg 0: a command without a key,
// which run() sends to an arbitrary master).
struct Command {
  static constexpr std::size_t MAX_ARGS = 8;
  std::array<std::string_view, MAX_ARGS> args{};
  std::uint8_t argc = 0;
  std::uint8_t key_arg = 1;

  Command() = default;
  Command(std::initializer_list<std::string_view> list, std::uint8_t key = 1);
  [[nodiscard]] std::string_view key() const { return key_arg == 0 ? "" : args[key_arg]; }
};

// What the client did, for tests and diagnostics (relaxed counters).
struct ClientStats {
  std::atomic<std::uint64_t> moved{0};      // MOVED replies followed
  std::atomic<std::uint64_t> asked{0};      // ASK replies followed
  std::atomic<std::uint64_t> retried{0};    // rounds repeated after TRYAGAIN/CLUSTERDOWN/...
  std::atomic<std::uint64_t> connected{0};  // connections opened
  std::atomic<std::uint64_t> refreshed{0};  // slot maps read
};

class RedisClient {
 public:
  // Connects to the first seed that answers, authenticates, and reads the slot map (CLUSTER
  // SLOTS; a server answering "cluster support disabled" is standalone). Throws IoError naming
  // the last seed tried when none answers or authentication fails.
  RedisClient(RedisUrl url, const RedisOptions& options);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  [[nodiscard]] bool is_cluster() const noexcept { return cluster_; }
  [[nodiscard]] const RedisUrl& url() const noexcept { return url_; }
  [[nodiscard]] const ClientStats& stats() const noexcept { return stats_; }

  // Called with each command's final reply (never a redirect or a retryable error), in no
  // particular order: once per command — except that with wait_replicas, a command whose node
  // was lost before its WAIT is sent again and answered again; `index` is the command's position.
  // The reply is valid during the call only. An exception thrown by it ends run() (the connections
  // in use are closed).
  using ReplyFn = std::function<void(std::size_t index, const redisReply& reply)>;

  // Runs the commands, each on the master owning its key's slot, pipelined per node in chunks.
  // With wait_replicas != 0 (writes), each node's commands end with WAIT for min(wait_replicas,
  // the replicas CLUSTER SLOTS lists for it) replicas, so what returns is on a replica too (a
  // standalone server is not waited for); a node lost meanwhile has all its commands sent again
  // (to the master that replaces it), and a WAIT that falls short is an IoError.
  // Throws IoError naming the node (and the command and key) for an error reply that is not a
  // redirect, for a timeout, and when the retries are spent.
  void run(std::span<const Command> commands, const ReplyFn& on_reply, unsigned wait_replicas = 0);
  // Runs one command on the given node (SCAN, CLUSTER and admin commands), retrying lost
  // connections as run() does; calls on_reply with its reply. Same errors.
  void run_on(const Endpoint& node, const Command& command, const ReplyFn& on_reply);
  // The masters that own slots now (the one server when standalone).
  [[nodiscard]] std::vector<Endpoint> masters() const;
  // The master owning `slot` in the client's current map.
  [[nodiscard]] Endpoint master_of(std::uint16_t slot) const;
  // Calls fn(key) for every key matching `pattern` (a SCAN MATCH glob) on every master; SCAN's
  // guarantees: each key present throughout is seen at least once (possibly twice), keys added
  // or removed meanwhile may or may not be. O(keys on the server).
  void scan(std::string_view pattern, const std::function<void(std::string_view key)>& fn);
  // Reads the slot map again (CLUSTER SLOTS on a known node or a seed).
  void refresh_slots();

 private:
  struct Connection;
  struct Reply;

  [[nodiscard]] std::unique_ptr<Connection> connect(const Endpoint& node) const;
  [[nodiscard]] std::unique_ptr<Connection> borrow(const Endpoint& node);
  void give_back(std::unique_ptr<Connection> connection);
  void load_slots(Connection& connection);
  void drop_idle(const Endpoint& node);
  void wait_for_replicas(const Endpoint& node, Connection& connection, unsigned replicas,
                         std::string_view key);

  RedisUrl url_;
  RedisOptions options_;
  std::atomic<bool> cluster_{false};  // written by load_slots, read anywhere
  mutable ClientStats stats_;

  // The slot map: slot → index into nodes_ (NO_NODE when no master serves it).
  static constexpr std::uint16_t NO_NODE = 0xFFFF;
  mutable std::shared_mutex slots_mutex_;
  std::vector<Endpoint> nodes_;
  std::vector<unsigned> replicas_;  // per node in nodes_: its replicas in the last map read
  std::vector<std::uint16_t> slot_node_;

  std::mutex pool_mutex_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Connection>>> idle_;
};

// Escapes the glob characters of `literal` for a SCAN MATCH pattern.
[[nodiscard]] std::string glob_escape(std::string_view literal);

}  // namespace datacap::detail::redis
