// The client's own reply reader (RedisClient::Connection::next_reply) against a peer that is not
// a Redis server: a loopback socket that answers each command with bytes a test chooses, written
// one byte at a time. A real server never sends malformed replies, so these cases need a peer
// of this kind; everything a real server does is tested against real servers
// (*_redis_test.cpp).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "datacap/error.hpp"
#include "store/redis_client.hpp"
#include "support/seed.hpp"

namespace datacap::detail::redis {
namespace {

// One request of the client: its arguments.
using Request = std::vector<std::string>;

// Serves connections on 127.0.0.1 (a thread each) until destroyed. CLUSTER SLOTS gets the error a
// standalone server gives (so the client runs as standalone); every other request gets
// answer(request). Replies are written `chunk` bytes per write (TCP_NODELAY; 1 by default), so
// the client's reads end at every possible place inside a reply. An empty answer closes the
// connection; one holding CLOSE_HERE closes it after what comes before.
class ScriptedPeer {
 public:
  static constexpr char CLOSE_HERE[] = "<close>";

  explicit ScriptedPeer(std::function<std::string(const Request&)> answer, std::size_t chunk = 1)
      : answer_(std::move(answer)), chunk_(chunk) {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 8) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("ScriptedPeer: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~ScriptedPeer() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
    const std::lock_guard guard(mutex_);
    for (const int fd : open_) ::shutdown(fd, SHUT_RDWR);
    for (std::thread& t : conversations_) t.join();
    for (const int fd : open_) ::close(fd);
  }
  ScriptedPeer(const ScriptedPeer&) = delete;
  ScriptedPeer& operator=(const ScriptedPeer&) = delete;

  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

 private:
  void serve() {
    while (!stop_) {
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) return;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      const std::lock_guard guard(mutex_);
      open_.push_back(fd);
      conversations_.emplace_back([this, fd] {
        converse(fd);
        ::shutdown(fd, SHUT_RDWR);  // closed by the destructor, after every thread is done
      });
    }
  }

  // Reads requests (RESP arrays of bulk strings, as hiredis writes them) and answers each.
  void converse(int fd) {
    std::string in;
    char buf[4096];
    while (!stop_) {
      Request request;
      std::size_t used = 0;
      while (!parse(in, request, used)) {
        const ssize_t got = ::read(fd, buf, sizeof buf);
        if (got <= 0) return;
        in.append(buf, static_cast<std::size_t>(got));
      }
      in.erase(0, used);
      std::string reply = request.size() == 2 && request[0] == "CLUSTER"
                              ? std::string("-ERR This instance has cluster support disabled\r\n")
                              : answer_(request);
      const std::size_t close_at = reply.find(CLOSE_HERE);
      if (close_at != std::string::npos) reply.resize(close_at);
      for (std::size_t at = 0; at < reply.size(); at += chunk_) {
        const std::size_t n = std::min(chunk_, reply.size() - at);
        // The client may have hung up: then stop.
        if (::send(fd, reply.data() + at, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) return;
      }
      if (reply.empty() || close_at != std::string::npos) return;
    }
  }

  static bool parse(const std::string& in, Request& out, std::size_t& used) {
    out.clear();
    std::size_t at = 0;
    const auto line = [&](char type, long& value) {
      if (at >= in.size() || in[at] != type) return false;
      const std::size_t end = in.find("\r\n", at);
      if (end == std::string::npos) return false;
      value = std::stol(in.substr(at + 1, end - at - 1));
      at = end + 2;
      return true;
    };
    long count = 0;
    if (!line('*', count)) return false;
    for (long k = 0; k < count; ++k) {
      long len = 0;
      if (!line('$', len)) return false;
      if (in.size() < at + static_cast<std::size_t>(len) + 2) return false;
      out.push_back(in.substr(at, static_cast<std::size_t>(len)));
      at += static_cast<std::size_t>(len) + 2;
    }
    used = at;
    return true;
  }

  std::function<std::string(const Request&)> answer_;
  std::size_t chunk_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mutex_;
  std::vector<int> open_;
  std::vector<std::thread> conversations_;
};

RedisOptions quick_options() {
  RedisOptions options;
  options.command_timeout = std::chrono::milliseconds(500);
  options.max_retries = 1;
  options.retry_pause = std::chrono::milliseconds(1);
  return options;
}

std::string bulk(const std::string& payload) {
  std::string out = "$";
  out += std::to_string(payload.size());
  out += "\r\n";
  out += payload;
  out += "\r\n";
  return out;
}

std::string line(char type, const std::string& text) {
  std::string out(1, type);
  out += text;
  out += "\r\n";
  return out;
}

struct Seen {
  int type = -1;
  std::string text;
  long long integer = 0;
};

// Runs GET of each key through the client; the replies by command index.
std::vector<Seen> get_all(RedisClient& client, const std::vector<std::string>& keys) {
  std::vector<Command> commands;
  for (const std::string& key : keys) commands.push_back(Command({"GET", key}));
  std::vector<Seen> seen(keys.size());
  client.run(commands, [&](std::size_t k, const redisReply& reply) {
    seen[k].type = reply.type;
    if (reply.str != nullptr) seen[k].text.assign(reply.str, reply.len);
    seen[k].integer = reply.integer;
  });
  return seen;
}

TEST(RedisReplies, EveryKindSplitAtEveryByteIsReadWhole) {
  std::string page(4096, '\0');
  for (std::size_t i = 0; i < page.size(); ++i) page[i] = static_cast<char>(i * 7 + 1);
  page[100] = '\r';  // CR LF inside a bulk string is data
  page[101] = '\n';
  ScriptedPeer peer([&](const Request& r) -> std::string {
    const std::string& key = r.at(1);
    if (key == "page") return bulk(page);
    if (key == "empty") return bulk("");
    if (key == "nil") return "$-1\r\n";
    if (key == "status") return "+OK\r\n";
    if (key == "integer") return ":-42\r\n";
    if (key == "array") return "*2\r\n$1\r\na\r\n:7\r\n";
    return line('-', "ERR unexpected " + key);
  });
  RedisClient client(parse_redis_url(peer.url()), quick_options());
  EXPECT_FALSE(client.is_cluster());
  // An array (which hiredis reads) between simple replies: the bytes after it are hiredis's to
  // read, then the client's own reader takes over again.
  const std::vector<std::string> keys = {"page",  "nil",  "status", "array", "integer",
                                         "empty", "page", "array",  "array", "page"};
  const std::vector<Seen> seen = get_all(client, keys);
  for (std::size_t k = 0; k < keys.size(); ++k) {
    const std::string& key = keys[k];
    if (key == "page") {
      EXPECT_EQ(seen[k].type, REDIS_REPLY_STRING) << k;
      EXPECT_EQ(seen[k].text, page) << k;
    } else if (key == "empty") {
      EXPECT_EQ(seen[k].type, REDIS_REPLY_STRING);
      EXPECT_EQ(seen[k].text, "");
    } else if (key == "nil") {
      EXPECT_EQ(seen[k].type, REDIS_REPLY_NIL);
    } else if (key == "status") {
      EXPECT_EQ(seen[k].type, REDIS_REPLY_STATUS);
      EXPECT_EQ(seen[k].text, "OK");
    } else if (key == "integer") {
      EXPECT_EQ(seen[k].type, REDIS_REPLY_INTEGER);
      EXPECT_EQ(seen[k].integer, -42);
    } else if (key == "array") {
      EXPECT_EQ(seen[k].type, REDIS_REPLY_ARRAY) << k;
    }
  }
  // The connection went back to the pool in a clean state: a second run on it reads right.
  const std::vector<Seen> again = get_all(client, {"status", "page"});
  EXPECT_EQ(again[0].text, "OK");
  EXPECT_EQ(again[1].text, page);
  // An error reply that is not a redirect ends the run as an IoError carrying the text.
  try {
    (void)get_all(client, {"page", "other"});
    ADD_FAILURE() << "no IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("ERR unexpected other"), std::string::npos) << e.what();
  }
}

// Each malformed reply is an IoError naming the node (after the bounded retries), never a crash,
// a hang or an allocation of what the peer announces.
TEST(RedisReplies, MalformedRepliesAreIoErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"$2\r\nabcd\r\n", "Protocol error"},                        // longer than announced
      {"$5\r\nabc\r\n", "no answer within"},                       // shorter: the rest never comes
      {"$3\r\nabcXY", "Protocol error"},                           // no CR LF after the bytes
      {"$999999999999\r\n", "Protocol error"},                     // past the longest record
      {"$-7\r\n", "Protocol error"},                               // a negative length
      {"$12x\r\n", "Protocol error"},                              // not a number
      {":\r\n", "Protocol error"},                                 // an empty integer
      {"+OK\rX", "Protocol error"},                                // CR without LF
      {std::string(1, '+').append(70000, 'a'), "Protocol error"},  // a line that never ends
      {"?what\r\n", "Protocol error"},  // no reply type (hiredis says so)
      {std::string("$4096\r\n").append(100, 'a'), "no answer within"},  // the rest never comes
  };
  for (const auto& [reply, expected] : cases) {
    ScriptedPeer peer([&reply = reply](const Request&) { return reply; });
    RedisClient client(parse_redis_url(peer.url()), quick_options());
    try {
      (void)get_all(client, {"k"});
      ADD_FAILURE() << "no IoError for " << reply.substr(0, 20);
    } catch (const IoError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(expected), std::string::npos) << reply.substr(0, 20) << ": " << what;
      EXPECT_NE(what.find("127.0.0.1:"), std::string::npos) << what;
    }
  }
}

// A peer that closes the connection before a reply or in the middle of one: lost, retried,
// then an IoError.
TEST(RedisReplies, AConnectionClosedInsideAReplyIsAnIoError) {
  const std::vector<std::string> answers = {std::string(),
                                            std::string("$4096\r\nabc") + ScriptedPeer::CLOSE_HERE,
                                            std::string("+OK\r") + ScriptedPeer::CLOSE_HERE};
  for (const std::string& answer : answers) {
    std::atomic<int> asked{0};
    ScriptedPeer peer([&](const Request&) -> std::string {
      ++asked;
      return answer;
    });
    RedisClient client(parse_redis_url(peer.url()), quick_options());
    try {
      (void)get_all(client, {"k"});
      ADD_FAILURE() << "no IoError";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("closed"), std::string::npos) << e.what();
    }
    EXPECT_EQ(asked.load(), 2);  // the first try and one retry (max_retries = 1)
  }
}

// Replies longer than the connection's buffer (256 KiB) and pipelines longer than it: the buffer
// grows as the bytes come, partial replies move to its start, and a connection given back to
// the pool reads right afterwards.
TEST(RedisReplies, LongRepliesAndLongPipelinesReadWhole) {
  std::mt19937_64 rng(testing::env_seed(72));
  std::map<std::string, std::string> values;
  std::vector<std::string> keys;
  for (std::size_t k = 0; k < 300; ++k) {
    const std::size_t len = k % 50 == 7 ? (std::size_t{1} << 20) + rng() % 5000 : rng() % 9000;
    std::string value(len, '\0');
    for (char& c : value) c = static_cast<char>(rng());
    keys.push_back("key" + std::to_string(k));
    values[keys.back()] = std::move(value);
  }
  ScriptedPeer peer([&](const Request& r) { return bulk(values.at(r.at(1))); }, 4093);
  RedisClient client(parse_redis_url(peer.url()), quick_options());
  for (int round = 0; round < 2; ++round) {
    const std::vector<Seen> seen = get_all(client, keys);
    for (std::size_t k = 0; k < keys.size(); ++k) {
      ASSERT_EQ(seen[k].type, REDIS_REPLY_STRING) << k;
      ASSERT_EQ(seen[k].text, values.at(keys[k])) << k;
    }
  }
}

}  // namespace
}  // namespace datacap::detail::redis
