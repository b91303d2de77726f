// Crash safety of the LMDB store: `datacap store put` (and `store gc`) killed with SIGKILL at
// random points; after each kill the store is reopened and every cap the writer reported saved
// (printed its root) must load, verify and hold its file's bytes.
// DATACAP_CRASH_ROUNDS sets the number of kills (default 16); DATACAP_SEED varies the points.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "datacap/datacap.hpp"
#include "support/seed.hpp"
#include "support/vectors.hpp"

extern char** environ;

#ifdef DATACAP_CLI_PATH
namespace datacap::testing {
namespace {

namespace fs = std::filesystem;

struct Outcome {
  std::vector<std::string> reported;  // complete lines only
  bool killed = false;                // the signal arrived before the process exited
  double seconds = 0;
};

// Runs the CLI with `args`, kills it after `delay` (never, when negative), returns its output.
Outcome run_and_kill(const std::vector<std::string>& args, std::chrono::microseconds delay) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  std::vector<std::string> all = {DATACAP_CLI_PATH};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, DATACAP_CLI_PATH, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("posix_spawn failed");
  }
  Outcome out;
  if (delay.count() >= 0) {
    std::this_thread::sleep_for(delay);
    ::kill(pid, SIGKILL);
  }
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.killed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  if (!out.killed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
    throw std::runtime_error("datacap exited with status " + std::to_string(status));
  }
  for (std::size_t at = 0, nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
    out.reported.push_back(text.substr(at, nl - at));
  }
  return out;
}

TEST(StoreCrash, EveryReportedCapSurvivesSigkill) {
  std::mt19937_64 rng(env_seed(211));
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("datacap_crash_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string db = (dir / "db").string();

  // Inputs: files that share pages, one past a 64 MiB save batch, one sparse.
  std::vector<std::string> files;
  std::map<std::string, std::string> file_of_root;
  std::vector<std::uint8_t> pool(8 << 20);
  for (auto& b : pool) b = static_cast<std::uint8_t>(rng());
  for (int k = 0; k < 10; ++k) {
    const std::uint64_t pages = k == 0 ? 17000 : 1 + rng() % 600;
    std::vector<std::uint8_t> bytes(pages * PAGE_SIZE);
    for (std::uint64_t p = 0; p < pages; ++p) {
      auto* dst = bytes.data() + p * PAGE_SIZE;
      if (k == 0) {
        for (std::size_t i = 0; i < PAGE_SIZE; i += 8) {
          const std::uint64_t r = rng();
          std::memcpy(dst + i, &r, 8);
        }
      } else if (rng() % 3 != 0) {  // a page of the shared pool, or zeros
        std::memcpy(dst, pool.data() + (rng() % (pool.size() / PAGE_SIZE)) * PAGE_SIZE, PAGE_SIZE);
      }
    }
    const std::string path = (dir / ("in" + std::to_string(k) + ".bin")).string();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size() - rng() % 100));
    files.push_back(path);
    file_of_root[to_hex(map_raw_file(path).hash_tree_root())] = path;
  }

  // One run to completion on an empty store sets the time scale of the kills.
  const Outcome full = [&] {
    std::vector<std::string> args = {"store", "put"};
    args.insert(args.end(), files.begin(), files.end());
    args.insert(args.end(), {"--db", db});
    return run_and_kill(args, std::chrono::microseconds(-1));
  }();
  ASSERT_EQ(full.reported.size(), files.size());
  const auto scale = std::chrono::microseconds(static_cast<std::int64_t>(full.seconds * 1.2e6));

  const int rounds = static_cast<int>(
      std::strtol(std::getenv("DATACAP_CRASH_ROUNDS") ? std::getenv("DATACAP_CRASH_ROUNDS") : "16",
                  nullptr, 10));
  std::set<std::string> saved(full.reported.begin(), full.reported.end());
  int killed_midway = 0;
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const bool fresh = round % 2 == 0;
    if (fresh) {  // real writes, not just deduplicated ones
      fs::remove_all(db);
      saved.clear();
    }
    std::vector<std::string> args;
    const bool gc = !fresh && round % 4 == 3 && !saved.empty();
    if (gc) {  // keep a random half of what was saved
      args = {"store", "gc", "--db", db, "--keep"};
      std::vector<std::string> keep;
      for (const auto& r : saved) {
        if (keep.empty() || rng() % 2 == 0) keep.push_back(r);
      }
      args.insert(args.end(), keep.begin(), keep.end());
    } else {
      args = {"store", "put"};
      std::vector<std::string> order = files;
      std::shuffle(order.begin(), order.end(), rng);
      args.insert(args.end(), order.begin(), order.end());
      args.insert(args.end(), {"--db", db});
    }
    const auto delay = std::chrono::microseconds(
        static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(scale.count() + 1)));
    const Outcome o = run_and_kill(args, delay);
    if (!gc) {
      saved.insert(o.reported.begin(), o.reported.end());
      if (o.killed && o.reported.size() < files.size()) ++killed_midway;
    }
    // Reopen and check every cap ever reported saved in this store (a killed gc may or may not
    // have removed the ones it was not told to keep: those that remain must still be whole).
    const std::unique_ptr<PageStore> store = open_lmdb_store(db);
    for (const std::string& root : saved) {
      if (!store->has_cap(hash_from_hex(root))) {
        EXPECT_TRUE(gc) << "cap " << root << " reported saved is gone";
        continue;
      }
      const DataCap cap = store->load_cap(hash_from_hex(root));
      ASSERT_EQ(to_hex(cap.hash_tree_root()), root);
      const std::vector<std::uint8_t> expected = read_file(file_of_root.at(root));
      std::vector<std::uint8_t> got(expected.size());
      cap.copy_into(0, got);
      ASSERT_EQ(got, expected) << root;
    }
    if (gc) {  // forget what this gc may have removed
      for (auto it = saved.begin(); it != saved.end();) {
        it = store->has_cap(hash_from_hex(*it)) ? std::next(it) : saved.erase(it);
      }
    }
  }
  std::cerr << "[ crash    ] " << rounds << " rounds, " << killed_midway
            << " puts killed mid-way; an uninterrupted put of every file took " << full.seconds
            << " s\n";
  EXPECT_GT(killed_midway, 0) << "no kill landed in the middle of a save: the test did not test";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace datacap::testing
#endif
