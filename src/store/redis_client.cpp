// The cluster-aware Redis client (store/redis_client.hpp): URL parsing, key slots, the slot map,
// pipelined rounds with redirects and retries, and the connection pool.
#include "store/redis_client.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <thread>

#include "datacap/error.hpp"

namespace datacap::detail::redis {

namespace {

// Commands written to one node before its replies are read: bounds what a pipeline buffers on
// each side (1024 pages are 4 MiB) while keeping a round trip per thousand commands.
constexpr std::size_t CHUNK_COMMANDS = 1024;
// Rounds of MOVED/ASK redirects a call follows before it gives up: a slot moves once per
// resharding step, so more than a few in a row means the cluster is flapping.
constexpr unsigned MAX_REDIRECT_ROUNDS = 16;
// Idle connections kept per node; more are closed when given back.
constexpr std::size_t MAX_IDLE_PER_NODE = 32;

// A connection lost or refused: run() retries it (a failover moves the slot, a restart brings
// the node back). Internal; it is an IoError, so the last one escapes as the caller's error.
class Lost : public IoError {
 public:
  using IoError::IoError;
};

using ReplyPtr = std::unique_ptr<redisReply, void (*)(void*)>;

// hiredis writes with write(2), not send(MSG_NOSIGNAL): a peer that closed the connection makes
// the kernel raise SIGPIPE, whose default action kills the process — a library must not. While
// one is alive, SIGPIPE is blocked on this thread; one raised meanwhile is taken off the
// thread's pending set before the old mask comes back (EPIPE itself reaches hiredis as an error).
class SigpipeBlocked {
 public:
  SigpipeBlocked() noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlocked() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec none{};
        while (sigtimedwait(&pipe_, nullptr, &none) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
};

// The longest single pause between retries: doubling from retry_pause stops here, so
// max_retries bounds the time spent (about max_retries × this at worst), never hours.
constexpr std::chrono::milliseconds MAX_RETRY_PAUSE{2000};

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string_view reply_text(const redisReply& reply) {
  return reply.str == nullptr ? std::string_view() : std::string_view(reply.str, reply.len);
}

// What a command is, for error messages: its name and key (never its value: a page).
std::string describe(const Command& command) {
  std::string out(command.args[0]);
  if (command.key_arg != 0) out.append(" ").append(command.key());
  return out;
}

// Throws for a hiredis context in an error state: IoError for a timeout (not retried), Lost for
// anything else (a reset, a closed connection, a refused connect). `saved_errno` is errno as
// hiredis left it, which tells a timeout (EAGAIN from SO_RCVTIMEO/SO_SNDTIMEO, ETIMEDOUT from
// the connect poll) from the rest.
[[noreturn]] void fail(const Endpoint& node, const redisContext& c, int saved_errno,
                       std::string_view doing, std::chrono::milliseconds timeout,
                       std::string_view timeout_name) {
  if (c.err == REDIS_ERR_IO &&
      (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT)) {
    throw IoError(node.name(), std::string(doing) + ": no answer within " +
                                   std::to_string(timeout.count()) + " ms (" +
                                   std::string(timeout_name) + ")");
  }
  throw Lost(node.name(),
             std::string(doing) + ": " + (c.errstr[0] != '\0' ? c.errstr : "connection lost"));
}

Endpoint parse_endpoint(std::string_view text, const Endpoint& asked) {
  const std::size_t colon = text.rfind(':');
  Endpoint out;
  out.host = colon == std::string_view::npos ? std::string() : std::string(text.substr(0, colon));
  // A node that does not know its own address reports "" or "?": it is the one we asked.
  if (out.host.empty() || out.host == "?") out.host = asked.host;
  unsigned port = 0;
  const std::string_view digits = colon == std::string_view::npos ? "" : text.substr(colon + 1);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (ec != std::errc() || end != digits.data() + digits.size() || port == 0 || port > 65535) {
    throw IoError(asked.name(), "a redirect or slot map names \"" + std::string(text) +
                                    "\", which is not host:port");
  }
  out.port = static_cast<std::uint16_t>(port);
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view text, std::string_view what) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    const int hi = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
    const int lo = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      throw InvalidArgument("redis URL: the " + std::string(what) +
                            " holds a '%' not followed by two hex digits");
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

}  // namespace

// ---- slots -----------------------------------------------------------------------------------

namespace {

// CRC16 tables, computed at compile time from the bitwise definition: SLICES[0][b] is the CRC
// of byte b (from a zero register), SLICES[k][b] that of byte b followed by k zero bytes. CRC
// is linear, so the CRC of eight bytes is the XOR of eight independent lookups (the register
// folded into the first two) instead of a chain of eight dependent ones: a 74-byte page key
// costs ~25 ns instead of ~100. Every command routed pays it (262,144 keys per 1 GiB load).
using Crc16Slices = std::array<std::array<std::uint16_t, 256>, 8>;
constexpr Crc16Slices CRC16_SLICES = [] {
  Crc16Slices t{};
  for (unsigned byte = 0; byte < 256; ++byte) {
    auto crc = static_cast<std::uint16_t>(byte << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021)
                                : static_cast<std::uint16_t>(crc << 1);
    }
    t[0][byte] = crc;
  }
  for (std::size_t k = 1; k < t.size(); ++k) {
    for (unsigned byte = 0; byte < 256; ++byte) {
      const std::uint16_t prev = t[k - 1][byte];
      t[k][byte] = static_cast<std::uint16_t>((prev << 8) ^ t[0][prev >> 8]);
    }
  }
  return t;
}();

}  // namespace

std::uint16_t crc16(std::string_view bytes) noexcept {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  std::size_t n = bytes.size();
  std::uint16_t crc = 0;
  const auto& t = CRC16_SLICES;
  for (; n >= 8; p += 8, n -= 8) {
    crc = static_cast<std::uint16_t>(t[7][(crc >> 8) ^ p[0]] ^ t[6][(crc & 0xFF) ^ p[1]] ^
                                     t[5][p[2]] ^ t[4][p[3]] ^ t[3][p[4]] ^ t[2][p[5]] ^
                                     t[1][p[6]] ^ t[0][p[7]]);
  }
  for (; n > 0; ++p, --n) {
    crc = static_cast<std::uint16_t>((crc << 8) ^ t[0][(crc >> 8) ^ *p]);
  }
  return crc;
}

std::uint16_t key_slot(std::string_view key) noexcept {
  const std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const std::size_t close = key.find('}', open + 1);
    // "{}" (an empty tag) hashes the whole key, as the specification says.
    if (close != std::string_view::npos && close > open + 1)
      key = key.substr(open + 1, close - open - 1);
  }
  return static_cast<std::uint16_t>(crc16(key) % SLOT_COUNT);
}

namespace {

// A RESP number as Redis writes it (and hiredis reads it): "0", or an optional '-' and digits
// without a leading zero, within a signed 64-bit value. ("-0", "+1", "007" are not numbers.)
bool parse_resp_number(const char* first, const char* last, long long& value) noexcept {
  if (last - first == 1 && *first == '0') {
    value = 0;
    return true;
  }
  const bool negative = first != last && *first == '-';
  if (negative) ++first;
  if (first == last || *first < '1' || *first > '9') return false;
  unsigned long long magnitude = 0;
  const auto [end, ec] = std::from_chars(first, last, magnitude);
  if (ec != std::errc() || end != last) return false;
  constexpr auto LIMIT = static_cast<unsigned long long>(std::numeric_limits<long long>::max());
  if (magnitude > LIMIT + (negative ? 1 : 0)) return false;
  value = negative ? static_cast<long long>(0 - magnitude) : static_cast<long long>(magnitude);
  return true;
}

}  // namespace

ReplyParse parse_reply(const char* bytes, std::size_t size, redisReply& out, std::size_t& used,
                       std::size_t& need, std::size_t& searched) noexcept {
  const char* p = bytes;
  const std::size_t n = size;
  need = n + 1;
  if (n == 0) return ReplyParse::need_more;
  const char type = p[0];
  if (type != '+' && type != '-' && type != ':' && type != '$') return ReplyParse::other_kind;
  const std::size_t from = std::clamp<std::size_t>(searched, 1, n);
  const auto* cr = static_cast<const char*>(std::memchr(p + from, '\r', n - from));
  if (cr == nullptr || cr + 1 == p + n) {
    if (n > MAX_REPLY_LINE_BYTES) return ReplyParse::malformed;
    searched = cr == nullptr ? n : n - 1;
    return ReplyParse::need_more;
  }
  if (cr[1] != '\n') return ReplyParse::malformed;
  const std::size_t line = static_cast<std::size_t>(cr - p) + 2;  // through CRLF
  const char* text = p + 1;
  out = redisReply{};
  if (type == '+' || type == '-') {
    out.type = type == '+' ? REDIS_REPLY_STATUS : REDIS_REPLY_ERROR;
    out.str = const_cast<char*>(text);
    out.len = static_cast<std::size_t>(cr - text);
    used = line;
    return ReplyParse::reply;
  }
  long long value = 0;
  if (!parse_resp_number(text, cr, value)) return ReplyParse::malformed;
  if (type == ':') {
    out.type = REDIS_REPLY_INTEGER;
    out.integer = value;
    used = line;
    return ReplyParse::reply;
  }
  if (value == -1) {
    out.type = REDIS_REPLY_NIL;
    used = line;
    return ReplyParse::reply;
  }
  if (value < 0 || value > MAX_REPLY_BULK_BYTES) return ReplyParse::malformed;
  const std::size_t total = line + static_cast<std::size_t>(value) + 2;
  if (n < total) {
    need = total;
    return ReplyParse::need_more;
  }
  if (p[total - 2] != '\r' || p[total - 1] != '\n') return ReplyParse::malformed;
  out.type = REDIS_REPLY_STRING;
  out.str = const_cast<char*>(p + line);
  out.len = static_cast<std::size_t>(value);
  used = total;
  return ReplyParse::reply;
}

// ---- URLs ------------------------------------------------------------------------------------

std::string RedisUrl::display() const {
  std::string out = "redis://";
  if (!user.empty()) out.append(user).append("@");
  for (std::size_t k = 0; k < nodes.size(); ++k) {
    if (k != 0) out.push_back(',');
    out.append(nodes[k].name());
  }
  return out;
}

RedisUrl parse_redis_url(const std::string& url) {
  constexpr std::string_view SCHEME = "redis://";
  if (!starts_with(url, SCHEME))
    throw InvalidArgument("redis URL: does not start with \"redis://\"");
  std::string_view rest = std::string_view(url).substr(SCHEME.size());
  RedisUrl out;
  // Host lists hold no '@': the last one ends the user information, whatever the password holds.
  const std::size_t at = rest.rfind('@');
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    const std::size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos) {
      throw InvalidArgument(
          "redis URL: user information without a password (\"user:password@\" or "
          "\":password@\")");
    }
    out.user = percent_decode(userinfo.substr(0, colon), "user");
    out.password = percent_decode(userinfo.substr(colon + 1), "password");
    if (out.password.empty()) throw InvalidArgument("redis URL: the password is empty");
    rest = rest.substr(at + 1);
  }
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    throw InvalidArgument(
        "redis URL: a path, database number or option after the hosts is not supported");
  }
  if (rest.empty()) throw InvalidArgument("redis URL: no host");
  while (true) {
    const std::size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    if (item.empty()) throw InvalidArgument("redis URL: an empty host in the host list");
    if (item.front() == '[')
      throw InvalidArgument("redis URL: \"" + std::string(item) + "\": IPv6 is not supported");
    const std::size_t colon = item.find(':');
    Endpoint node;
    node.host = std::string(item.substr(0, colon));
    node.port = 6379;
    if (node.host.empty() || node.host.size() > 253 ||
        node.host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789.-_") != std::string::npos) {
      throw InvalidArgument("redis URL: \"" + std::string(item) +
                            "\" is not host:port (host: an IPv4 address or a host name)");
    }
    if (colon != std::string_view::npos) {
      const std::string_view digits = item.substr(colon + 1);
      unsigned port = 0;
      const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
          port == 0 || port > 65535) {
        throw InvalidArgument("redis URL: \"" + std::string(item) +
                              "\": the port is not a number in 1..65535");
      }
      node.port = static_cast<std::uint16_t>(port);
    }
    out.nodes.push_back(std::move(node));
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

std::string glob_escape(std::string_view literal) {
  std::string out;
  for (const char c : literal) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

Command::Command(std::initializer_list<std::string_view> list, std::uint8_t key) : key_arg(key) {
  if (list.size() > MAX_ARGS || list.size() == 0 || key >= list.size())
    throw InvalidArgument("redis command: " + std::to_string(list.size()) + " arguments");
  std::copy(list.begin(), list.end(), args.begin());
  argc = static_cast<std::uint8_t>(list.size());
}

// ---- connections -----------------------------------------------------------------------------

// A reply read by Connection::next_reply: `view` points into the connection's buffer (valid
// until its next read), or `owned` holds one hiredis parsed.
struct RedisClient::Reply {
  redisReply view{};
  ReplyPtr owned{nullptr, freeReplyObject};
  [[nodiscard]] const redisReply& get() const noexcept { return owned ? *owned : view; }
};

struct RedisClient::Connection {
  Endpoint node;
  redisContext* context = nullptr;
  Connection(Endpoint n, redisContext* c) : node(std::move(n)), context(c) {}
  ~Connection() {
    if (context != nullptr) redisFree(context);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The next reply on this connection. Pipelined replies are read here with one buffer of the
  // connection's own, large reads and no copy: hiredis's reader reads 16 KiB per call, copies
  // every byte into its buffer, moves the rest of that buffer down after each reply and
  // allocates a copy of each string — for a 1 GiB load, 65,536 reads and a gigabyte each of
  // copies and moves. Status, error, integer, bulk string and nil replies (all that run()'s
  // commands get) are parsed here; anything else (an array, a malformed reply) goes to hiredis
  // along with every byte read after it, and later replies come from hiredis until it has
  // nothing buffered. False on failure, with the context's err/errstr set as hiredis would
  // (so fail() reports it, and the connection is never pooled again).
  bool next_reply(Reply& out);
  // True when no byte read from the socket is waiting in this connection's buffer: only then
  // may hiredis read from it (at give_back, a leftover means the peer sent what nobody asked
  // for, and the connection is dropped).
  [[nodiscard]] bool drained() const noexcept { return in_begin_ == in_end_; }
  // Gives back a buffer grown past its usual size for a long reply (a cap record): what an
  // idle connection in the pool keeps stays BUFFER_BYTES. REQUIRES drained().
  void shrink_buffer() noexcept {
    if (in_capacity_ <= BUFFER_BYTES) return;
    in_.reset();
    in_capacity_ = in_begin_ = in_end_ = 0;
  }

 private:
  bool fill(std::size_t need);
  bool set_error(int err, const char* message) noexcept;

  // Enough for 64 pages per read(); grown for a longer reply, and shrunk back after one.
  static constexpr std::size_t BUFFER_BYTES = std::size_t{256} << 10;
  std::unique_ptr<char[]> in_;
  std::size_t in_capacity_ = 0, in_begin_ = 0, in_end_ = 0;
  // Bytes of the reply at in_begin_ known to hold no CR: a line that arrives a little at a time
  // is searched once, not again from its start on every read.
  std::size_t line_searched_ = 0;
};

bool RedisClient::Connection::set_error(int err, const char* message) noexcept {
  context->err = err;
  std::snprintf(context->errstr, sizeof context->errstr, "%s", message);
  return false;
}

// Makes room toward `need` bytes from in_begin_ and reads at least one more byte. The buffer
// grows by doubling, and only when it is full: what a reply's length announces is never
// allocated before the bytes arrive, so memory follows what the peer really sends.
bool RedisClient::Connection::fill(std::size_t need) {
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
  if (in_begin_ > 0 && (in_capacity_ - in_begin_ < need || in_end_ == in_capacity_)) {
    // A partial reply at the end of the buffer moves to its start (at most once a buffer).
    std::memmove(in_.get(), in_.get() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  if (in_end_ == in_capacity_) {
    const std::size_t bigger_capacity =
        in_capacity_ == 0 ? BUFFER_BYTES
                          : std::max(in_capacity_ + 1, std::min(need, 2 * in_capacity_));
    auto bigger = std::make_unique_for_overwrite<char[]>(bigger_capacity);
    if (in_end_ > 0) std::memcpy(bigger.get(), in_.get(), in_end_);
    in_ = std::move(bigger);
    in_capacity_ = bigger_capacity;
  }
  while (true) {
    const ssize_t got = ::read(context->fd, in_.get() + in_end_, in_capacity_ - in_end_);
    if (got > 0) {
      in_end_ += static_cast<std::size_t>(got);
      return true;
    }
    if (got == 0) return set_error(REDIS_ERR_EOF, "Server closed the connection");
    if (errno == EINTR) continue;
    const int saved = errno;
    set_error(REDIS_ERR_IO, std::strerror(saved));
    errno = saved;  // fail() tells a timeout (EAGAIN from SO_RCVTIMEO) by it
    return false;
  }
}

bool RedisClient::Connection::next_reply(Reply& out) {
  out.owned.reset();
  // hiredis's reader first, while it holds bytes of replies not yet taken.
  if (context->reader->len > context->reader->pos) {
    void* raw = nullptr;
    if (redisGetReply(context, &raw) != REDIS_OK) return false;
    out.owned.reset(static_cast<redisReply*>(raw));
    return true;
  }
  while (true) {
    std::size_t used = 0, need = 0;
    switch (parse_reply(in_.get() + in_begin_, in_end_ - in_begin_, out.view, used, need,
                        line_searched_)) {
      case ReplyParse::reply:
        in_begin_ += used;
        line_searched_ = 0;
        return true;
      case ReplyParse::need_more:
        if (!fill(need)) return false;
        break;
      case ReplyParse::other_kind: {
        if (redisReaderFeed(context->reader, in_.get() + in_begin_, in_end_ - in_begin_) !=
            REDIS_OK) {
          return set_error(REDIS_ERR_OOM, "Out of memory");
        }
        in_begin_ = in_end_ = 0;
        line_searched_ = 0;
        void* raw = nullptr;
        if (redisGetReply(context, &raw) != REDIS_OK) return false;
        out.owned.reset(static_cast<redisReply*>(raw));
        return true;
      }
      case ReplyParse::malformed:
        return set_error(REDIS_ERR_PROTOCOL, "Protocol error: a malformed reply");
    }
  }
}

RedisClient::RedisClient(RedisUrl url, const RedisOptions& options)
    : url_(std::move(url)), options_(options) {
  const SigpipeBlocked no_sigpipe;
  if (url_.nodes.empty()) throw InvalidArgument("redis URL: no host");
  // Every seed is tried (one may be down or slow); when none answers, the last one's error —
  // which names it — is the caller's.
  std::exception_ptr last;
  for (const Endpoint& seed : url_.nodes) {
    try {
      std::unique_ptr<Connection> connection = connect(seed);
      load_slots(*connection);
      give_back(std::move(connection));
      return;
    } catch (const IoError&) {
      last = std::current_exception();
    }
  }
  std::rethrow_exception(last);
}

RedisClient::~RedisClient() = default;

std::unique_ptr<RedisClient::Connection> RedisClient::connect(const Endpoint& node) const {
  redisContext* context =
      redisConnectWithTimeout(node.host.c_str(), node.port, to_timeval(options_.connect_timeout));
  const int saved_errno = errno;
  if (context == nullptr) throw IoError(node.name(), "connect: cannot allocate a connection");
  auto connection = std::make_unique<Connection>(node, context);
  if (context->err != 0) {
    // A node that does not answer a connect is as good as gone (a machine that vanished drops
    // packets): Lost, so run() refreshes the slot map and retries, and a failover that replaced
    // the node is found — not a timeout reported on every call for good.
    try {
      fail(node, *context, saved_errno, "connect", options_.connect_timeout, "connect_timeout");
    } catch (const Lost&) {
      throw;
    } catch (const IoError& e) {
      throw Lost(node.name(), std::string(e.what()).substr(node.name().size() + 2));
    }
  }
  if (redisSetTimeout(context, to_timeval(options_.command_timeout)) != REDIS_OK)
    fail(node, *context, errno, "set timeout", options_.command_timeout, "command_timeout");
  ++stats_.connected;
  if (!url_.password.empty()) {
    std::array<const char*, 3> argv{};
    std::array<std::size_t, 3> lens{};
    int argc = 0;
    argv[argc] = "AUTH";
    lens[argc++] = 4;
    if (!url_.user.empty()) {
      argv[argc] = url_.user.data();
      lens[argc++] = url_.user.size();
    }
    argv[argc] = url_.password.data();
    lens[argc++] = url_.password.size();
    const ReplyPtr reply(
        static_cast<redisReply*>(redisCommandArgv(context, argc, argv.data(), lens.data())),
        freeReplyObject);
    if (!reply) fail(node, *context, errno, "AUTH", options_.command_timeout, "command_timeout");
    if (reply->type == REDIS_REPLY_ERROR) {
      // Not retried: a wrong password stays wrong.
      throw IoError(node.name(), "authentication failed for user \"" +
                                     (url_.user.empty() ? std::string("default") : url_.user) +
                                     "\": " + std::string(reply_text(*reply)));
    }
  }
  return connection;
}

std::unique_ptr<RedisClient::Connection> RedisClient::borrow(const Endpoint& node) {
  {
    const std::lock_guard guard(pool_mutex_);
    auto it = idle_.find(node.name());
    if (it != idle_.end() && !it->second.empty()) {
      std::unique_ptr<Connection> connection = std::move(it->second.back());
      it->second.pop_back();
      return connection;
    }
  }
  return connect(node);  // outside the mutex: a slow connect must not hold up other threads
}

void RedisClient::drop_idle(const Endpoint& node) {
  std::vector<std::unique_ptr<Connection>> dropped;  // closed outside the mutex
  {
    const std::lock_guard guard(pool_mutex_);
    const auto it = idle_.find(node.name());
    if (it != idle_.end()) dropped.swap(it->second);
  }
}

void RedisClient::give_back(std::unique_ptr<Connection> connection) {
  if (!connection || connection->context->err != 0 || !connection->drained()) return;
  connection->shrink_buffer();
  const std::lock_guard guard(pool_mutex_);
  auto& idle = idle_[connection->node.name()];
  if (idle.size() < MAX_IDLE_PER_NODE) idle.push_back(std::move(connection));
}

// ---- the slot map ----------------------------------------------------------------------------

void RedisClient::load_slots(Connection& connection) {
  const char* argv[] = {"CLUSTER", "SLOTS"};
  const std::size_t lens[] = {7, 5};
  const ReplyPtr reply(
      static_cast<redisReply*>(redisCommandArgv(connection.context, 2, argv, lens)),
      freeReplyObject);
  if (!reply) {
    fail(connection.node, *connection.context, errno, "CLUSTER SLOTS", options_.command_timeout,
         "command_timeout");
  }
  std::vector<Endpoint> nodes;
  std::vector<unsigned> replicas;  // per node: the replicas CLUSTER SLOTS lists for it
  std::vector<std::uint16_t> slot_node(SLOT_COUNT, NO_NODE);
  bool cluster = true;
  if (reply->type == REDIS_REPLY_ERROR) {
    if (reply_text(*reply).find("cluster support disabled") == std::string_view::npos) {
      throw IoError(connection.node.name(), "CLUSTER SLOTS: " + std::string(reply_text(*reply)));
    }
    // A standalone server: it owns every slot.
    cluster = false;
    nodes.push_back(connection.node);
    replicas.push_back(0);  // a standalone server's replicas are not waited for
    std::fill(slot_node.begin(), slot_node.end(), 0);
  } else if (reply->type == REDIS_REPLY_ARRAY) {
    for (std::size_t k = 0; k < reply->elements; ++k) {
      const redisReply& range = *reply->element[k];
      if (range.type != REDIS_REPLY_ARRAY || range.elements < 3 ||
          range.element[0]->type != REDIS_REPLY_INTEGER ||
          range.element[1]->type != REDIS_REPLY_INTEGER ||
          range.element[2]->type != REDIS_REPLY_ARRAY || range.element[2]->elements < 2 ||
          range.element[2]->element[0]->type != REDIS_REPLY_STRING ||
          range.element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
        throw IoError(connection.node.name(), "CLUSTER SLOTS: a malformed slot range");
      }
      const long long first = range.element[0]->integer, last = range.element[1]->integer;
      const redisReply& master = *range.element[2];
      if (first < 0 || last >= SLOT_COUNT || first > last || master.element[1]->integer <= 0 ||
          master.element[1]->integer > 65535) {
        throw IoError(connection.node.name(), "CLUSTER SLOTS: a slot range out of bounds");
      }
      Endpoint node = parse_endpoint(std::string(reply_text(*master.element[0])) + ":" +
                                         std::to_string(master.element[1]->integer),
                                     connection.node);
      auto it = std::find(nodes.begin(), nodes.end(), node);
      if (it == nodes.end()) {
        it = nodes.insert(nodes.end(), std::move(node));
        replicas.push_back(0);
      }
      const auto index = static_cast<std::uint16_t>(it - nodes.begin());
      replicas[index] = std::max(replicas[index], static_cast<unsigned>(range.elements - 3));
      std::fill(slot_node.begin() + first, slot_node.begin() + last + 1, index);
    }
  } else {
    throw IoError(connection.node.name(), "CLUSTER SLOTS: an unexpected reply");
  }
  ++stats_.refreshed;
  const std::unique_lock guard(slots_mutex_);
  cluster_ = cluster;
  nodes_ = std::move(nodes);
  replicas_ = std::move(replicas);
  slot_node_ = std::move(slot_node);
}

void RedisClient::refresh_slots() {
  const SigpipeBlocked no_sigpipe;
  std::vector<Endpoint> candidates;
  {
    const std::shared_lock guard(slots_mutex_);
    if (!cluster_) return;
    candidates = nodes_;
  }
  for (const Endpoint& seed : url_.nodes) {
    if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end())
      candidates.push_back(seed);
  }
  std::string last;
  for (const Endpoint& node : candidates) {
    try {
      std::unique_ptr<Connection> connection = borrow(node);
      load_slots(*connection);
      give_back(std::move(connection));
      return;
    } catch (const IoError& e) {
      last = e.what();  // a node down (that is why we refresh): ask the next
    }
  }
  throw Lost(candidates.back().name(), "no node answers CLUSTER SLOTS (last: " + last + ")");
}

std::vector<Endpoint> RedisClient::masters() const {
  const std::shared_lock guard(slots_mutex_);
  std::vector<bool> seen(nodes_.size(), false);
  std::vector<Endpoint> out;
  for (const std::uint16_t index : slot_node_) {
    if (index != NO_NODE && !seen[index]) {
      seen[index] = true;
      out.push_back(nodes_[index]);
    }
  }
  return out;
}

Endpoint RedisClient::master_of(std::uint16_t slot) const {
  const std::shared_lock guard(slots_mutex_);
  const std::uint16_t index = slot_node_.at(slot);
  if (index == NO_NODE)
    throw IoError(url_.display(), "slot " + std::to_string(slot) + " is served by no master");
  return nodes_[index];
}

// ---- running commands ------------------------------------------------------------------------

void RedisClient::run(std::span<const Command> commands, const ReplyFn& on_reply,
                      unsigned wait_replicas) {
  const SigpipeBlocked no_sigpipe;
  // One round sends every pending command to the node that should answer it; what comes back as
  // a redirect, a retryable error or on a lost connection is pending for the next round.
  struct Item {
    std::size_t index;
    bool asking;  // preceded by ASKING (an ASK redirect, good for one command)
  };
  struct Group {
    Endpoint node;
    unsigned replicas = 0;  // the replicas to wait for after the last item (WAIT)
    std::vector<Item> items;
    std::size_t done = 0;       // items answered or handed back to `again`
    std::size_t chunk_end = 0;  // items written so far
    std::unique_ptr<Connection> connection;
    bool broken = false;
  };
  std::vector<std::size_t> pending(commands.size());
  for (std::size_t k = 0; k < pending.size(); ++k) pending[k] = k;
  std::unordered_map<std::size_t, Endpoint> ask;  // command → the node an ASK named
  unsigned failed_rounds = 0, redirect_rounds = 0;
  std::string last_problem;
  std::string last_node = url_.display();

  while (!pending.empty()) {
    std::vector<Group> groups;
    std::vector<std::size_t> again;
    bool pause = false, refresh = false, redirected = false;
    {
      // The group of each node of the map, by its index there (most commands: no string built
      // or looked up per command); ASK targets, which may be outside the map, by name.
      constexpr std::size_t NO_GROUP = ~std::size_t{0};
      std::unordered_map<std::string, std::size_t> group_of;
      const std::shared_lock guard(slots_mutex_);
      std::vector<std::size_t> group_of_node(nodes_.size(), NO_GROUP);
      const auto group_for = [&](const Endpoint& node) {
        const std::string name = node.name();
        auto [it, added] = group_of.try_emplace(name, groups.size());
        if (added) {
          unsigned replicas = 0;
          if (wait_replicas != 0) {
            const auto known = std::find(nodes_.begin(), nodes_.end(), node);
            if (known != nodes_.end()) replicas = replicas_[known - nodes_.begin()];
          }
          groups.push_back(
              Group{node, std::min(replicas, wait_replicas), {}, 0, 0, nullptr, false});
        }
        return it->second;
      };
      for (const std::size_t index : pending) {
        const Command& command = commands[index];
        const auto asked = ask.find(index);
        std::size_t group;
        if (asked != ask.end()) {
          group = group_for(asked->second);
        } else {
          const std::uint16_t slot = command.key_arg == 0 ? 0 : key_slot(command.key());
          const std::uint16_t n = slot_node_[slot];
          if (n == NO_NODE) {
            again.push_back(index);
            pause = refresh = true;
            last_problem = "slot " + std::to_string(slot) + " is served by no master";
            continue;
          }
          if (group_of_node[n] == NO_GROUP) group_of_node[n] = group_for(nodes_[n]);
          group = group_of_node[n];
        }
        groups[group].items.push_back({index, asked != ask.end()});
      }
    }
    const auto give_up_group = [&](Group& group, const Lost& e) {
      group.broken = true;
      group.connection.reset();
      // The node's other idle connections went down with this one (a restart, a failover):
      // retrying on them would spend the retries on dead sockets.
      drop_idle(group.node);
      // Writes that must reach a replica start over whole: those the lost node answered may
      // never have been replicated (it may be the master that died), and a WAIT on another
      // connection would not cover them. Every command is safe to send twice.
      for (std::size_t k = group.replicas != 0 ? 0 : group.done; k < group.items.size(); ++k)
        again.push_back(group.items[k].index);
      pause = refresh = true;
      last_problem = e.what();
      last_node = group.node.name();
    };
    while (true) {
      // Write a chunk to every node, then read each node's replies: the nodes work at once.
      bool wrote = false;
      for (Group& group : groups) {
        if (group.broken || group.done == group.items.size()) continue;
        group.chunk_end = std::min(group.done + CHUNK_COMMANDS, group.items.size());
        try {
          if (!group.connection) group.connection = borrow(group.node);
          redisContext* context = group.connection->context;
          for (std::size_t k = group.done; k < group.chunk_end; ++k) {
            const Command& command = commands[group.items[k].index];
            if (group.items[k].asking) redisAppendCommand(context, "ASKING");
            std::array<const char*, Command::MAX_ARGS> argv{};
            std::array<std::size_t, Command::MAX_ARGS> lens{};
            for (std::size_t a = 0; a < command.argc; ++a) {
              argv[a] = command.args[a].data();
              lens[a] = command.args[a].size();
            }
            if (redisAppendCommandArgv(context, command.argc, argv.data(), lens.data()) !=
                REDIS_OK) {
              throw IoError(group.node.name(), "cannot queue " + describe(command));
            }
          }
          int done = 0;
          while (done == 0) {
            if (redisBufferWrite(context, &done) != REDIS_OK) {
              fail(group.node, *context, errno, "write", options_.command_timeout,
                   "command_timeout");
            }
          }
          wrote = true;
        } catch (const Lost& e) {
          give_up_group(group, e);
        }
      }
      if (!wrote) break;
      for (Group& group : groups) {
        if (group.broken || group.done == group.items.size()) continue;
        try {
          Connection& connection = *group.connection;
          Reply holder;
          const auto read = [&](const Command& command) -> const redisReply* {
            if (!connection.next_reply(holder)) {
              const int saved_errno = errno;
              fail(group.node, *connection.context, saved_errno,
                   "reading the reply to " + describe(command), options_.command_timeout,
                   "command_timeout");
            }
            return &holder.get();
          };
          for (; group.done < group.chunk_end; ++group.done) {
            const Item& item = group.items[group.done];
            const Command& command = commands[item.index];
            if (item.asking) (void)read(command);  // +OK; a failure shows in the command's reply
            const redisReply* reply = read(command);
            if (reply->type != REDIS_REPLY_ERROR) {
              if (item.asking) ask.erase(item.index);
              on_reply(item.index, *reply);
              continue;
            }
            const std::string_view text = reply_text(*reply);
            if (starts_with(text, "MOVED ") || starts_with(text, "ASK ")) {
              // "MOVED <slot> <host:port>": the slot lives there now.
              const bool moved = text[0] == 'M';
              const std::string_view rest = text.substr(moved ? 6 : 4);
              const std::size_t space = rest.find(' ');
              unsigned slot = SLOT_COUNT;
              std::from_chars(rest.data(), rest.data() + rest.size(), slot);
              if (space == std::string_view::npos || slot >= SLOT_COUNT)
                throw IoError(group.node.name(), "a malformed redirect: " + std::string(text));
              Endpoint target = parse_endpoint(rest.substr(space + 1), group.node);
              if (moved) {
                ++stats_.moved;
                ask.erase(item.index);
                const std::unique_lock guard(slots_mutex_);
                auto it = std::find(nodes_.begin(), nodes_.end(), target);
                if (it == nodes_.end()) {
                  it = nodes_.insert(nodes_.end(), target);
                  replicas_.push_back(0);  // known at the refresh that follows
                }
                slot_node_[slot] = static_cast<std::uint16_t>(it - nodes_.begin());
                refresh = true;
              } else {
                ++stats_.asked;
                ask[item.index] = std::move(target);
              }
              redirected = true;
              again.push_back(item.index);
              last_problem = std::string(text);
              last_node = group.node.name();
              continue;
            }
            if (starts_with(text, "TRYAGAIN") || starts_with(text, "CLUSTERDOWN") ||
                starts_with(text, "LOADING") || starts_with(text, "MASTERDOWN") ||
                starts_with(text, "READONLY")) {
              // A slot mid-migration, a cluster electing a new master, a server still loading,
              // a former master now a replica: the same command succeeds a little later.
              ask.erase(item.index);
              again.push_back(item.index);
              pause = true;
              refresh = refresh || !starts_with(text, "TRYAGAIN");
              last_problem = std::string(text);
              last_node = group.node.name();
              continue;
            }
            throw IoError(group.node.name(), describe(command) + ": " + std::string(text));
          }
          if (group.done == group.items.size() && group.replicas != 0) {
            wait_for_replicas(group.node, *group.connection, group.replicas,
                              commands[group.items.front().index].key());
          }
        } catch (const Lost& e) {
          give_up_group(group, e);
        }
      }
    }
    for (Group& group : groups) {
      if (!group.broken) give_back(std::move(group.connection));
    }
    if (again.empty()) return;
    if (pause) {
      if (++failed_rounds > options_.max_retries) {
        throw IoError(last_node, last_problem + " (gave up after " +
                                     std::to_string(options_.max_retries) + " retries)");
      }
      ++stats_.retried;
      const auto wait = std::min<std::chrono::milliseconds>(
          MAX_RETRY_PAUSE,
          options_.retry_pause * (std::uint64_t{1} << std::min(failed_rounds - 1, 20u)));
      std::this_thread::sleep_for(wait);
    } else if (redirected && ++redirect_rounds > MAX_REDIRECT_ROUNDS) {
      throw IoError(last_node, "still redirected after " + std::to_string(MAX_REDIRECT_ROUNDS) +
                                   " rounds (last: " + last_problem + ")");
    }
    if (refresh) {
      try {
        refresh_slots();
      } catch (const IoError&) {
        // No node answers now: keep the map (MOVED updates included); the next round's
        // failures count against max_retries.
      }
    }
    // A group resent whole (waiting for replicas) may hand back commands already queued by a
    // redirect: each is sent once per round.
    std::sort(again.begin(), again.end());
    again.erase(std::unique(again.begin(), again.end()), again.end());
    pending = std::move(again);
  }
}

void RedisClient::wait_for_replicas(const Endpoint& node, Connection& connection, unsigned replicas,
                                    std::string_view key) {
  // WAIT waits for this connection's last write; a SET NX that found its key present wrote
  // nothing, and that key may have been written by another client a moment ago and not be
  // replicated yet. So one write comes first: a marker in the slot of one of the commands' keys
  // (its hash tag is that key), expiring by itself, outside every datacap key pattern.
  // WAIT's own timeout ends well before the socket's, so a replica that does not acknowledge is
  // reported as that, not as a node that stopped answering.
  const long long wait_ms = std::max<long long>(1, options_.command_timeout.count() / 2);
  const std::string count = std::to_string(replicas), timeout = std::to_string(wait_ms);
  std::string marker = "{";
  marker += key;
  marker += "}replicated";
  const char* set_argv[] = {"SET", marker.c_str(), "1", "PX", "60000"};
  const std::size_t set_lens[] = {3, marker.size(), 1, 2, 5};
  const char* argv[] = {"WAIT", count.c_str(), timeout.c_str()};
  const std::size_t lens[] = {4, count.size(), timeout.size()};
  if (redisAppendCommandArgv(connection.context, 5, set_argv, set_lens) != REDIS_OK ||
      redisAppendCommandArgv(connection.context, 3, argv, lens) != REDIS_OK) {
    throw IoError(node.name(), "cannot queue WAIT");
  }
  void* raw = nullptr;
  if (redisGetReply(connection.context, &raw) != REDIS_OK) {
    const int saved_errno = errno;
    fail(node, *connection.context, saved_errno, "SET (before WAIT)", options_.command_timeout,
         "command_timeout");
  }
  // An error here (a slot moving) leaves WAIT covering the batch's own writes only.
  freeReplyObject(raw);
  raw = nullptr;
  const int got = redisGetReply(connection.context, &raw);
  const int saved_errno = errno;
  const ReplyPtr reply(got == REDIS_OK ? static_cast<redisReply*>(raw) : nullptr, freeReplyObject);
  // A connection lost here is Lost like any other: run() sends the node's commands again, whole,
  // to whichever master holds their slots then, and waits again.
  if (!reply) {
    fail(node, *connection.context, saved_errno, "WAIT", options_.command_timeout,
         "command_timeout");
  }
  if (reply->type != REDIS_REPLY_INTEGER) {
    throw IoError(node.name(), "WAIT: " + std::string(reply_text(*reply)));
  }
  if (reply->integer < static_cast<long long>(replicas)) {
    throw IoError(node.name(), "the writes were acknowledged by " + std::to_string(reply->integer) +
                                   " of " + count + " replicas within " + timeout +
                                   " ms (RedisOptions::wait_replicas)");
  }
}

void RedisClient::run_on(const Endpoint& node, const Command& command, const ReplyFn& on_reply) {
  const SigpipeBlocked no_sigpipe;
  unsigned failed_rounds = 0;
  while (true) {
    try {
      std::unique_ptr<Connection> connection = borrow(node);
      std::array<const char*, Command::MAX_ARGS> argv{};
      std::array<std::size_t, Command::MAX_ARGS> lens{};
      for (std::size_t a = 0; a < command.argc; ++a) {
        argv[a] = command.args[a].data();
        lens[a] = command.args[a].size();
      }
      const ReplyPtr reply(static_cast<redisReply*>(redisCommandArgv(
                               connection->context, command.argc, argv.data(), lens.data())),
                           freeReplyObject);
      if (!reply) {
        fail(node, *connection->context, errno, describe(command), options_.command_timeout,
             "command_timeout");
      }
      if (reply->type == REDIS_REPLY_ERROR) {
        const std::string_view text = reply_text(*reply);
        if (!(starts_with(text, "LOADING") || starts_with(text, "CLUSTERDOWN") ||
              starts_with(text, "TRYAGAIN"))) {
          throw IoError(node.name(), describe(command) + ": " + std::string(text));
        }
        throw Lost(node.name(), describe(command) + ": " + std::string(text));
      }
      on_reply(0, *reply);
      give_back(std::move(connection));
      return;
    } catch (const Lost& e) {
      drop_idle(node);
      if (++failed_rounds > options_.max_retries) {
        throw IoError(node.name(), std::string(e.what()) + " (gave up after " +
                                       std::to_string(options_.max_retries) + " retries)");
      }
      ++stats_.retried;
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
          MAX_RETRY_PAUSE,
          options_.retry_pause * (std::uint64_t{1} << std::min(failed_rounds - 1, 20u))));
    }
  }
}

void RedisClient::scan(std::string_view pattern,
                       const std::function<void(std::string_view key)>& fn) {
  for (const Endpoint& node : masters()) {
    std::string cursor = "0";
    do {
      std::string next;
      const Command command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"}, 0);
      run_on(node, command, [&](std::size_t, const redisReply& reply) {
        if (reply.type != REDIS_REPLY_ARRAY || reply.elements != 2 ||
            reply.element[0]->type != REDIS_REPLY_STRING ||
            reply.element[1]->type != REDIS_REPLY_ARRAY) {
          throw IoError(node.name(), "SCAN: an unexpected reply");
        }
        next = std::string(reply_text(*reply.element[0]));
        const redisReply& keys = *reply.element[1];
        for (std::size_t k = 0; k < keys.elements; ++k) {
          if (keys.element[k]->type == REDIS_REPLY_STRING) fn(reply_text(*keys.element[k]));
        }
      });
      cursor = std::move(next);
    } while (cursor != "0");
  }
}

}  // namespace datacap::detail::redis
