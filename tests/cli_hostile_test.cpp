// Regression tests for issue 11, through the real binary on real files: each defect the
// adversarial review found, reproduced the way it was found (sparse files, a FIFO, a device
// node, /dev/full, symlinks, a concurrent rewriter or truncater, crafted archives), and the
// promise that replaces it checked.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "datacap/datacap.hpp"
#include "support/cli_run.hpp"

#ifdef DATACAP_CLI_PATH
namespace datacap::testing {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "datacap_hostile_" + std::to_string(::getpid()) + "_" + name;
}

void write_file(const std::string& path, const Bytes& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

Bytes random_bytes(std::mt19937_64& rng, std::size_t n) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng() | 1);
  return b;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::size_t line_count(const std::string& s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '\n'));
}

// Runs the CLI with argv (no shell), stdin from /dev/null, stdout to `out_path`; returns the
// exit status (128 + signal when killed) and the child's peak resident memory in bytes.
struct Measured {
  int status;
  std::uint64_t max_rss;
  std::string err;
};
Measured run_measured(const std::vector<std::string>& args,
                      const std::string& out_path = "/dev/null") {
  const std::string err_path = temp_path("measured.err");
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::alarm(120);  // a hang ends as SIGALRM
    std::vector<char*> argv;
    std::string cli = DATACAP_CLI_PATH;
    argv.push_back(cli.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  ::wait4(pid, &status, 0, &usage);
  Measured m{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
             static_cast<std::uint64_t>(usage.ru_maxrss) * 1024, ""};
  m.err = std::string(std::istreambuf_iterator<char>(std::ifstream(err_path).rdbuf()), {});
  fs::remove(err_path);
  return m;
}

// An output to throw bytes away in: as root, a null device node of the test's own, so that a
// CLI that wrongly renamed over its -o could never replace the machine's /dev/null; otherwise
// /dev/null itself (a rename over it is then refused by permissions).
const std::string& discard_output() {
  static const std::string path = [] {
    const std::string node = temp_path("discard.node");
    ::unlink(node.c_str());
    return ::mknod(node.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0 ? node
                                                                     : std::string("/dev/null");
  }();
  return path;
}

// ---- 1. hang on files that end in a hole -----------------------------------------------------

TEST(CliHostile, FilesEndingInAHoleWithAPartialPageFinish) {
  const std::string path = temp_path("hole.bin"), dense = temp_path("dense.bin"),
                    arc = temp_path("hole.dcar");
  struct Case {
    std::int64_t data_at;  // -1: no data
    std::uint64_t len;
  };
  for (const Case c : {Case{-1, 5000}, Case{0, 10000}, Case{-1, (std::uint64_t{4} << 30) + 1},
                       Case{12345, 40000}}) {
    SCOPED_TRACE(c.len);
    fs::remove(path);
    { std::ofstream f(path); }
    if (c.data_at >= 0) {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(c.data_at);
      f.put('a');
    }
    fs::resize_file(path, c.len);
    const CliRun root = run("root '" + path + "'");
    ASSERT_EQ(root.status, 0) << root.err;
    const CliRun pack = run("pack '" + path + "' -o '" + arc + "'");
    ASSERT_EQ(pack.status, 0) << pack.err;
    EXPECT_EQ(first_line(run("root --archive '" + arc + "'").out), first_line(root.out));
    if (c.len < (std::uint64_t{1} << 20)) {
      Bytes bytes(c.len, 0);
      if (c.data_at >= 0) bytes[static_cast<std::size_t>(c.data_at)] = 'a';
      write_file(dense, bytes);
      EXPECT_EQ(first_line(run("root '" + dense + "'").out), first_line(root.out));
    }
  }
  for (const auto& f : {path, dense, arc}) fs::remove(f);
}

// ---- 2, 3, 6. inputs rewritten or truncated while they are read ------------------------------

// Rewrites random pages of `path` in place (same size) until stopped.
class Rewriter {
 public:
  Rewriter(std::string path, std::uint64_t first_byte, std::uint64_t len, bool truncate)
      : path_(std::move(path)), first_(first_byte), len_(len), truncate_(truncate), thread_([this] {
          loop();
        }) {}
  ~Rewriter() {
    stop_ = true;
    thread_.join();
  }

 private:
  void loop() {
    std::mt19937_64 rng(99);
    const Bytes original = read_file(path_);
    const int fd = ::open(path_.c_str(), O_WRONLY);
    while (!stop_) {
      if (truncate_) {
        // Shorter, then whole again: readers see the file shrink under them.
        if (::ftruncate(fd, static_cast<off_t>(rng() % original.size())) != 0) break;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        if (::pwrite(fd, original.data(), original.size(), 0) < 0) break;
      } else {
        Bytes page(PAGE_SIZE);
        for (auto& b : page) b = static_cast<std::uint8_t>(rng());
        const std::uint64_t at = first_ + (rng() % (len_ / PAGE_SIZE)) * PAGE_SIZE;
        if (::pwrite(fd, page.data(), PAGE_SIZE, static_cast<off_t>(at)) < 0) break;
      }
    }
    if (::pwrite(fd, original.data(), original.size(), 0) < 0 ||
        ::ftruncate(fd, static_cast<off_t>(original.size())) != 0) {
      ADD_FAILURE() << "could not restore " << path_;
    }
    ::close(fd);
  }
  std::string path_;
  std::uint64_t first_, len_;
  bool truncate_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(CliHostile, StorePutStoresExactlyTheBytesItHashedWhileTheFileIsRewritten) {
  std::mt19937_64 rng(21);
  const std::string file = temp_path("put.bin"), db = temp_path("put.db");
  write_file(file, random_bytes(rng, 16u << 20));
  std::vector<std::string> roots;
  {
    const Rewriter rewriter(file, 0, 16u << 20, false);
    for (int k = 0; k < 6; ++k) {
      const CliRun r = run("store put '" + file + "' --db '" + db + "'");
      ASSERT_EQ(r.status, 0) << r.err;
      roots.push_back(first_line(r.out));
    }
  }
  // Every printed root loads, every page checked against the root it is stored under.
  const std::unique_ptr<PageStore> store = open_lmdb_store(db);
  for (const std::string& hex : roots) {
    SCOPED_TRACE(hex);
    EXPECT_NO_THROW((void)store->load_cap(hash_from_hex(hex)));
    EXPECT_EQ(run("store get " + hex + " --db '" + db + "' -o '" + discard_output() + "'").status,
              0);
  }
  fs::remove(file);
  fs::remove_all(db);
}

TEST(CliHostile, UnpackWritesOnlyBytesItCheckedWhileTheArchiveIsRewritten) {
  std::mt19937_64 rng(22);
  const std::string raw = temp_path("unpack.bin"), arc = temp_path("unpack.dcar"),
                    out = temp_path("unpack.out");
  const Bytes content = random_bytes(rng, 8u << 20);
  write_file(raw, content);
  ASSERT_EQ(run("pack '" + raw + "' -o '" + arc + "'").status, 0);
  const std::string root = first_line(run("root '" + raw + "'").out);
  int failed = 0;
  {
    const Rewriter rewriter(arc, PAGE_SIZE, content.size(), false);  // payloads only
    for (int k = 0; k < 6; ++k) {
      fs::remove(out);
      const CliRun r = run("unpack '" + arc + "' -o '" + out + "'");
      ASSERT_LT(r.status, 2) << r.err;
      if (r.status == 0) {
        EXPECT_EQ(first_line(run("root '" + out + "'").out), root);  // never unchecked bytes
      } else {
        ++failed;
        EXPECT_NE(r.err.find(arc), std::string::npos) << r.err;
        EXPECT_FALSE(fs::exists(out));
      }
    }
  }
  EXPECT_GT(failed, 0) << "the rewriter never hit: the test proved nothing";
  for (const auto& f : {raw, arc, out}) fs::remove(f);
}

TEST(CliHostile, AnInputTruncatedWhileReadIsAnErrorNamingItNeverASignal) {
  std::mt19937_64 rng(23);
  const std::string raw = temp_path("trunc.bin"), arc = temp_path("trunc.dcar"),
                    other = temp_path("other.bin");
  const std::string db = temp_path("trunc.db"), out = temp_path("trunc.out");
  write_file(raw, random_bytes(rng, 8u << 20));
  write_file(other, random_bytes(rng, 8u << 20));
  ASSERT_EQ(run("pack '" + raw + "' -o '" + arc + "'").status, 0);
  const std::vector<std::pair<std::string, std::string>> commands = {
      {raw, "proof '" + raw + "' --page 100"},
      {raw, "diff '" + raw + "' '" + other + "'"},
      {raw, "store put '" + raw + "' --db '" + db + "'"},
      {raw, "root '" + raw + "'"},
      {raw, "pack '" + raw + "' -o '" + out + "'"},
      {arc, "verify '" + arc + "'"},
      {arc, "unpack '" + arc + "' -o '" + out + "'"},
      {arc, "root --archive '" + arc + "'"},
      {arc, "proof '" + arc + "' --page 7"},
      {arc, "info '" + arc + "'"},
  };
  for (const auto& [victim, command] : commands) {
    SCOPED_TRACE(command);
    const Rewriter truncater(victim, 0, 0, true);
    for (int k = 0; k < 4; ++k) {
      const CliRun r = run(command);
      EXPECT_LT(r.status, 3) << "killed by signal " << r.status - 128 << ": " << r.err;
      if (r.status != 0 && !(command.rfind("diff", 0) == 0 && r.status == 1 && r.err.empty())) {
        EXPECT_EQ(line_count(r.err), 1u) << r.err;
        EXPECT_NE(r.err.find(victim), std::string::npos) << r.err;
      }
    }
  }
  for (const auto& f : {raw, arc, other, out}) fs::remove(f);
  fs::remove_all(db);
}

// ---- 4. outputs that are not regular files -----------------------------------------------------

TEST(CliHostile, OutputsThatAreNotRegularFilesAreWrittenInPlaceNeverReplaced) {
  std::mt19937_64 rng(24);
  const std::string raw = temp_path("out.bin"), arc = temp_path("out.dcar"),
                    db = temp_path("out.db");
  const Bytes content = random_bytes(rng, 300 * PAGE_SIZE);
  write_file(raw, content);
  ASSERT_EQ(run("pack '" + raw + "' -o '" + arc + "'").status, 0);
  const std::string root = first_line(run("store put '" + raw + "' --db '" + db + "'").out);

  // Device nodes stay devices (a rename over one would replace it with a regular file). As root
  // the test makes nodes of its own (the null and full devices' numbers) so that a regression
  // cannot replace the machine's /dev/null; elsewhere a rename over /dev/null is refused anyway.
  const std::string null_node = temp_path("null.node"), full_node = temp_path("full.node");
  const bool own_nodes = ::mknod(null_node.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0 &&
                         ::mknod(full_node.c_str(), S_IFCHR | 0666, makedev(1, 7)) == 0;
  const std::string null_dev = own_nodes ? null_node : "/dev/null";
  const std::string full_dev = own_nodes ? full_node : "/dev/full";
  const auto is_device = [](const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISCHR(st.st_mode);
  };
  for (const std::string& cmd :
       {"unpack '" + arc + "' -o '" + null_dev + "'",
        "store get " + root + " --db '" + db + "' -o '" + null_dev + "'"}) {
    const CliRun r = run(cmd);
    EXPECT_EQ(r.status, 0) << cmd << ": " << r.err;
    EXPECT_TRUE(is_device(null_dev)) << cmd;
  }
  // pack writes at offsets: a device is refused, and left alone.
  const CliRun pack_dev = run("pack '" + raw + "' -o '" + null_dev + "'");
  EXPECT_EQ(pack_dev.status, 1);
  EXPECT_NE(pack_dev.err.find("not a regular file"), std::string::npos) << pack_dev.err;
  EXPECT_TRUE(is_device(null_dev));

  // A FIFO: written in order, the whole content, and still a FIFO.
  const std::string fifo = temp_path("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  for (const std::string& cmd : {"unpack '" + arc + "' -o '" + fifo + "'",
                                 "store get " + root + " --db '" + db + "' -o '" + fifo + "'"}) {
    Bytes got;
    std::thread reader([&] { got = read_file(fifo); });
    const CliRun r = run(cmd);
    reader.join();
    EXPECT_EQ(r.status, 0) << cmd << ": " << r.err;
    EXPECT_EQ(got, content) << cmd;
    struct stat st {};
    ASSERT_EQ(::lstat(fifo.c_str(), &st), 0);
    EXPECT_TRUE(S_ISFIFO(st.st_mode));
  }
  fs::remove(fifo);

  // /dev/stdout on a pipe: a link to "pipe:[N]", which no path resolves; written through (it
  // was refused: "cannot resolve the symbolic link").
  const std::string piped = temp_path("piped.bin");
  for (const std::string& out : {std::string("/dev/stdout"), std::string("/proc/self/fd/1")}) {
    fs::remove(piped);
    (void)run("unpack '" + arc + "' -o " + out + " | cat > '" + piped + "'");
    EXPECT_EQ(read_file(piped), content) << out;
  }
  fs::remove(piped);

  // A symlink is followed: its target gets the content, the link stays a link.
  const std::string target = temp_path("target.bin"), link = temp_path("link.bin");
  write_file(target, {1, 2, 3});
  fs::create_symlink(target, link);
  EXPECT_EQ(run("unpack '" + arc + "' -o '" + link + "'").status, 0);
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(read_file(target), content);
  EXPECT_EQ(run("pack '" + raw + "' -o '" + link + "'").status, 0);
  EXPECT_TRUE(fs::is_symlink(link));
  EXPECT_EQ(first_line(run("root --archive '" + target + "'").out),
            first_line(run("root '" + raw + "'").out));

  // A full device: the write error is reported, exit 1.
  const CliRun full = run("unpack '" + arc + "' -o '" + full_dev + "'");
  EXPECT_EQ(full.status, 1);
  EXPECT_NE(full.err.find("No space left"), std::string::npos) << full.err;
  EXPECT_TRUE(is_device(full_dev));
  // An all-zero cap too: its zero pages are written to a device, not skipped (they were on a
  // seekable character device, so nothing was written and the full device "succeeded").
  const std::string zeros = temp_path("zeros.bin"), zeros_arc = temp_path("zeros.dcar"),
                    zeros_db = temp_path("zeros.db");
  write_file(zeros, Bytes(5000, 0));
  ASSERT_EQ(run("pack '" + zeros + "' -o '" + zeros_arc + "'").status, 0);
  const std::string zeros_root =
      first_line(run("store put '" + zeros + "' --db '" + zeros_db + "'").out);
  for (const std::string& cmd :
       {"unpack '" + zeros_arc + "' -o '" + full_dev + "'",
        "store get " + zeros_root + " --db '" + zeros_db + "' -o '" + full_dev + "'"}) {
    const CliRun r = run(cmd);
    EXPECT_EQ(r.status, 1) << cmd;
    EXPECT_NE(r.err.find("No space left"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_TRUE(is_device(full_dev));
  }
  EXPECT_EQ(run("unpack '" + zeros_arc + "' -o '" + null_dev + "'").status, 0);
  for (const auto& f : {zeros, zeros_arc}) fs::remove(f);
  fs::remove_all(zeros_db);
  if (own_nodes) {
    fs::remove(null_node);
    fs::remove(full_node);
  }
  // An empty path fails before any work; the store's own files are refused.
  EXPECT_EQ(run("unpack '" + arc + "' -o ''").status, 2);
  EXPECT_EQ(run("store get " + root + " --db '" + db + "' -o ''").status, 2);
  const Bytes data_mdb = read_file(db + "/data.mdb");
  const CliRun own = run("store get " + root + " --db '" + db + "' -o '" + db + "/data.mdb'");
  EXPECT_EQ(own.status, 2) << own.err;
  EXPECT_EQ(read_file(db + "/data.mdb"), data_mdb);
  // No temporary file of this test's outputs is left (other tests may be writing theirs).
  for (const auto& entry : fs::directory_iterator(::testing::TempDir())) {
    const std::string name = entry.path().string();
    if (name.rfind(temp_path(""), 0) == 0) {
      EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
    }
  }
  for (const auto& f : {raw, arc, target, link}) fs::remove(f);
  fs::remove_all(db);
}

TEST(CliHostile, TemporaryNamesDanglingLinksModesAndInputsAsOutputs) {
  std::mt19937_64 rng(28);
  const std::string raw = temp_path("modes.bin"), arc = temp_path("modes.dcar");
  const Bytes content = random_bytes(rng, 10 * PAGE_SIZE);
  write_file(raw, content);
  ASSERT_EQ(run("pack '" + raw + "' -o '" + arc + "'").status, 0);
  // Something planted under the temporary name is neither followed nor reused.
  const std::string out = temp_path("planted.out"), victim = temp_path("victim");
  write_file(victim, {'v'});
  const std::string planted = "sh -c 'ln -s \"" + victim + "\" \"" + out + ".tmp-$$\"; exec " +
                              DATACAP_CLI_PATH + " unpack \"" + arc + "\" -o \"" + out + "\"' 2>&1";
  EXPECT_EQ(std::system(planted.c_str()), 0);
  EXPECT_EQ(read_file(victim), Bytes{'v'});
  EXPECT_FALSE(fs::is_symlink(out));
  EXPECT_EQ(read_file(out), content);
  for (const auto& entry : fs::directory_iterator(::testing::TempDir())) {
    if (entry.path().string().rfind(out + ".tmp-", 0) == 0)
      fs::remove(entry.path());  // the planted link
  }
  // A dangling symlink is refused and stays a link.
  const std::string dangling = temp_path("dangling");
  fs::create_symlink(temp_path("nowhere"), dangling);
  EXPECT_EQ(run("unpack '" + arc + "' -o '" + dangling + "'").status, 1);
  EXPECT_EQ(run("pack '" + raw + "' -o '" + dangling + "'").status, 1);
  EXPECT_TRUE(fs::is_symlink(dangling));
  EXPECT_FALSE(fs::exists(temp_path("nowhere")));
  // A replaced file keeps its permissions.
  const std::string secret = temp_path("secret");
  write_file(secret, {1});
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  ASSERT_EQ(run("unpack '" + arc + "' -o '" + secret + "'").status, 0);
  EXPECT_EQ(fs::status(secret).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  // An output that is the input is refused before any work.
  EXPECT_EQ(run("pack '" + raw + "' -o '" + raw + "'").status, 2);
  EXPECT_EQ(read_file(raw), content);
  EXPECT_EQ(run("unpack '" + arc + "' -o '" + arc + "'").status, 2);
  for (const auto& f : {raw, arc, out, victim, dangling, secret}) fs::remove(f);
}

TEST(CliHostile, DevicesAndFifosAsInputsNeverHang) {
  const std::string fifo = temp_path("input.fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  // Nobody writes the FIFO: commands that need a regular file refuse it at once.
  for (const std::string& cmd : std::vector<std::string>{
           "info '" + fifo + "'", "verify '" + fifo + "'", "root --archive '" + fifo + "'",
           "unpack '" + fifo + "' -o '" + temp_path("never") + "'", "proof '" + fifo + "' --page 0",
           "diff '" + fifo + "' '" + fifo + "'", "verify-proof '" + fifo + "'",
           "proof /dev/zero --page 0", "diff /dev/zero /dev/zero"}) {
    SCOPED_TRACE(cmd);
    // Under `timeout`: a hang is exit 137 here, not a stuck test.
    const std::string full =
        "timeout -s KILL 20 " + std::string(DATACAP_CLI_PATH) + " " + cmd + " 2>/dev/null";
    const int status = std::system(full.c_str());
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_TRUE(WEXITSTATUS(status) == 1 || WEXITSTATUS(status) == 2) << WEXITSTATUS(status);
  }
  fs::remove(fifo);
}

TEST(CliHostile, SignalsRemoveTheTemporaryFile) {
  const std::string out = temp_path("signal.dcar");
  for (const int sig : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(sig);
    // An endless input keeps pack busy until the signal.
    const std::string cmd =
        "exec " + std::string(DATACAP_CLI_PATH) + " pack - -o '" + out + "' < /dev/urandom";
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const std::string tmp = out + ".tmp-" + std::to_string(pid);
    for (int k = 0; k < 200 && !fs::exists(tmp); ++k)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(fs::exists(tmp));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ::kill(pid, sig);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == sig) << status;
    EXPECT_FALSE(fs::exists(tmp));
    EXPECT_FALSE(fs::exists(out));
  }
}

// ---- 5. standard output that cannot be written --------------------------------------------------

TEST(CliHostile, StandardOutputErrorsAreReportedByEveryCommand) {
  std::mt19937_64 rng(25);
  const std::string raw = temp_path("stdout.bin"), arc = temp_path("stdout.dcar"),
                    db = temp_path("stdout.db");
  const std::string proof = temp_path("stdout.json");
  write_file(raw, random_bytes(rng, 20 * PAGE_SIZE));
  ASSERT_EQ(run("pack '" + raw + "' -o '" + arc + "'").status, 0);
  ASSERT_EQ(run("store put '" + raw + "' --db '" + db + "'").status, 0);
  ASSERT_EQ(run("proof '" + raw + "' --page 3 > '" + proof + "'").status, 0);
  const std::vector<std::string> commands = {"root '" + raw + "'",
                                             "root --archive '" + arc + "'",
                                             "info '" + arc + "'",
                                             "verify '" + arc + "'",
                                             "proof '" + raw + "' --page 1",
                                             "diff '" + raw + "' '" + proof + "'",
                                             "store ls --db '" + db + "'",
                                             "verify-proof '" + proof + "'",
                                             "pack '" + raw + "' -o '" + arc + "'"};
  for (const std::string& cmd : commands) {
    for (const std::string redirect : {" > /dev/full", " >&-"}) {
      SCOPED_TRACE(cmd + redirect);
      const CliRun r = run(cmd + redirect);
      EXPECT_EQ(r.status, cmd.rfind("diff", 0) == 0 ? 2 : 1) << r.err;
      EXPECT_EQ(r.err.find("datacap: error:"), r.err.rfind("datacap: error:")) << r.err;
      EXPECT_NE(r.err.find("standard output"), std::string::npos) << r.err;
    }
  }
  // store put: the cap is saved; the error names the root that could not be printed.
  write_file(raw, random_bytes(rng, 3 * PAGE_SIZE));
  const CliRun put = run("store put '" + raw + "' --db '" + db + "' > /dev/full");
  EXPECT_EQ(put.status, 1);
  const std::string root = first_line(run("root '" + raw + "'").out);
  EXPECT_NE(put.err.find(root), std::string::npos) << put.err;
  // pack: the archive is in place; the error says so.
  const CliRun pack = run("pack '" + raw + "' -o '" + arc + "' > /dev/full");
  EXPECT_EQ(pack.status, 1);
  EXPECT_NE(pack.err.find("was written"), std::string::npos) << pack.err;
  // -o /dev/stdout with standard output closed: an error (it reopened the /dev/null that held
  // the closed stream's slot, and the output vanished).
  const CliRun closed_out = run("unpack '" + arc + "' -o /dev/stdout >&-");
  EXPECT_EQ(closed_out.status, 1) << closed_out.err;
  // A closed standard input is an error, not an empty input (it was read as /dev/null).
  for (const std::string& cmd : std::vector<std::string>{"root -", "store put - --db '" + db + "'",
                                                         "pack - -o '" + arc + "'"}) {
    SCOPED_TRACE(cmd);
    const CliRun closed = run(cmd + " <&-");
    EXPECT_EQ(closed.status, 1) << closed.err;
    EXPECT_NE(closed.err.find("<stdin>"), std::string::npos) << closed.err;
  }
  for (const auto& f : {raw, arc, proof}) fs::remove(f);
  fs::remove_all(db);
}

// ---- 7. memory bounded by the input's size ------------------------------------------------------

// An archive of `entries` copies of one payload, `stride` pages apart: 8 bytes an entry.
std::string crafted_sparse_archive(std::uint64_t entries, std::uint64_t stride,
                                   const std::string& path) {
  const std::uint64_t page_count = entries * stride;
  Bytes payload(PAGE_SIZE, 7);
  const Hash32 payload_root = page_root(Digest::sha256, payload);
  CapRootBuilder root(Digest::sha256);
  for (std::uint64_t k = 0; k < entries; ++k) {
    root.append_page_root(payload_root);
    root.append_zero_pages(stride - 1);
  }
  const Hash32 cap_root = root.finish(page_count * PAGE_SIZE);
  Bytes file(PAGE_SIZE + PAGE_SIZE + 32 + 8 * entries, 0);
  auto put64 = [&](std::size_t at, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
      file[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  std::memcpy(file.data(), "DCAPARC\0", 8);
  file[8] = 1;  // version
  put64(16, page_count * PAGE_SIZE);
  put64(24, PAGE_SIZE);      // payload_offset
  put64(32, 1);              // payload_count
  put64(40, entries);        // backing_count
  put64(64, 2 * PAGE_SIZE);  // tables_offset
  std::memcpy(file.data() + 72, cap_root.data(), 32);
  const Hash32 check =
      digest_bytes(Digest::sha256, std::span<const std::uint8_t>(file.data(), 104));
  std::memcpy(file.data() + 104, check.data(), 32);
  std::memcpy(file.data() + PAGE_SIZE, payload.data(), PAGE_SIZE);
  std::memcpy(file.data() + 2 * PAGE_SIZE, payload_root.data(), 32);
  for (std::uint64_t k = 0; k < entries; ++k) {
    const std::size_t at = 2 * PAGE_SIZE + 32 + 8 * k;
    const auto index = static_cast<std::uint32_t>(k * stride);
    std::memcpy(file.data() + at, &index, 4);  // ref 0: the payload
  }
  write_file(path, file);
  return to_hex(cap_root);
}

// Sanitizer builds inflate resident memory (shadow memory, quarantine): bounds are checked in
// the plain build only.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool MEMORY_IS_MEASURABLE = false;
#else
constexpr bool MEMORY_IS_MEASURABLE = true;
#endif

// An archive whose overlay is `entries` explicit zero pages (8 bytes each, no payload): a
// flushed cap of zeros, so its root is the zero cap's.
std::string crafted_zero_overlay_archive(std::uint64_t entries, const std::string& path) {
  const std::uint64_t page_count = entries;
  Bytes file(PAGE_SIZE + 8 * entries, 0);
  auto put64 = [&](std::size_t at, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
      file[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  const Hash32 cap_root = DataCap::zeroed(page_count * PAGE_SIZE).hash_tree_root();
  std::memcpy(file.data(), "DCAPARC\0", 8);
  file[8] = 1;   // version
  file[13] = 1;  // dirty
  put64(16, page_count * PAGE_SIZE);
  put64(24, PAGE_SIZE);  // payload_offset
  put64(48, entries);    // overlay_count
  put64(64, PAGE_SIZE);  // tables_offset
  std::memcpy(file.data() + 72, cap_root.data(), 32);
  const Hash32 check =
      digest_bytes(Digest::sha256, std::span<const std::uint8_t>(file.data(), 104));
  std::memcpy(file.data() + 104, check.data(), 32);
  for (std::uint64_t k = 0; k < entries; ++k) {
    const auto index = static_cast<std::uint32_t>(k);
    const std::uint32_t zero_ref = 0xffffffffu;
    std::memcpy(file.data() + PAGE_SIZE + 8 * k, &index, 4);
    std::memcpy(file.data() + PAGE_SIZE + 8 * k + 4, &zero_ref, 4);
  }
  write_file(path, file);
  return to_hex(cap_root);
}

TEST(CliHostile, SparseArchivesStayWithinSixtyFourTimesTheirSize) {
  const std::string arc = temp_path("sparse.dcar"), proof = temp_path("sparse.json");
  const std::string root = crafted_sparse_archive(std::uint64_t{1} << 16, 4096, arc);
  const std::uint64_t bound = (std::uint64_t{64} << 20) + 64 * fs::file_size(arc);
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"info", arc},
                                             {"verify", arc},
                                             {"root", "--archive", arc},
                                             {"unpack", arc, "-o", discard_output()}}) {
    SCOPED_TRACE(args[0]);
    const Measured m = run_measured(args);
    EXPECT_EQ(m.status, 0) << m.err;
    if (MEMORY_IS_MEASURABLE) {
      EXPECT_LE(m.max_rss, bound);
    }
  }
  // proof and diff need the tree: refused up front with the limit named, or within the bound.
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"proof", arc, "--page", "4096"}, {"diff", arc, arc}}) {
    SCOPED_TRACE(args[0]);
    const Measured m = run_measured(args);
    if (MEMORY_IS_MEASURABLE) {
      EXPECT_LE(m.max_rss, bound);
    }
    if (m.status != 0) {
      EXPECT_NE(m.err.find("--max-memory"), std::string::npos) << m.err;
      EXPECT_NE(m.err.find(arc), std::string::npos) << m.err;
    }
  }
  // Raised, it works, and the proof verifies against the crafted root.
  const Measured raised =
      run_measured({"proof", arc, "--page", "4096", "--max-memory", "4000000000"}, proof);
  ASSERT_EQ(raised.status, 0) << raised.err;
  EXPECT_EQ(run("verify-proof '" + proof + "' --root " + root).status, 0);
  // Explicit zero pages of an overlay: 8 bytes of file each, and no 4 KiB page each in memory.
  const std::string zeros = temp_path("zeros.dcar");
  const std::string zeros_root = crafted_zero_overlay_archive(std::uint64_t{1} << 17, zeros);
  const std::uint64_t zeros_bound = (std::uint64_t{64} << 20) + 64 * fs::file_size(zeros);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"proof", zeros, "--page", "5"}, {"diff", zeros, zeros}, {"root", "--archive", zeros}}) {
    SCOPED_TRACE(args[0]);
    const Measured m = run_measured(args);
    if (MEMORY_IS_MEASURABLE) {
      EXPECT_LE(m.max_rss, zeros_bound);
    }
    EXPECT_TRUE(m.status == 0 || m.err.find("--max-memory") != std::string::npos) << m.err;
  }
  EXPECT_EQ(first_line(run("root --archive '" + zeros + "'").out), zeros_root);
  fs::remove(zeros);
  // verify-proof reads a bounded amount.
  const Measured zero = run_measured({"verify-proof", "/dev/zero"});
  EXPECT_EQ(zero.status, 1) << zero.err;
  if (MEMORY_IS_MEASURABLE) {
    EXPECT_LE(zero.max_rss, std::uint64_t{64} << 20);
  }
  fs::remove(arc);
  fs::remove(proof);
}

// ---- 8. damaged stores --------------------------------------------------------------------------

TEST(CliHostile, DamagedStoresAreCleanErrorsAndStoreVerifyFindsDamage) {
  std::mt19937_64 rng(27);
  const std::string raw = temp_path("store.bin"), db = temp_path("damaged.db"),
                    copy = temp_path("copy.db");
  Bytes content = random_bytes(rng, 64 * PAGE_SIZE);
  const Bytes marker = {'M', 'A', 'R', 'K', 'E', 'R', '-', 'P', 'A', 'G', 'E', '-', '4', '2'};
  std::copy(marker.begin(), marker.end(), content.begin() + 42 * PAGE_SIZE);
  write_file(raw, content);
  const CliRun put = run("store put '" + raw + "' --db '" + db + "'");
  ASSERT_EQ(put.status, 0) << put.err;
  const std::string root = first_line(put.out);
  ASSERT_EQ(run("store verify --db '" + db + "'").status, 0);
  const std::uint64_t full = fs::file_size(db + "/data.mdb");
  // Truncated: every command is a clean error naming the store's file, never SIGBUS.
  for (const std::uint64_t size : {std::uint64_t{8192}, full / 2, full - 4096}) {
    SCOPED_TRACE(size);
    fs::remove_all(copy);
    fs::copy(db, copy);
    fs::resize_file(copy + "/data.mdb", size);
    for (const std::string& cmd :
         {"store ls --db '" + copy + "'", "store verify --db '" + copy + "'",
          "store get " + root + " --db '" + copy + "' -o '" + discard_output() + "'",
          "store gc --db '" + copy + "' --keep " + root}) {
      const CliRun r = run(cmd);
      EXPECT_EQ(r.status, 1) << cmd << ": " << r.err;
      EXPECT_NE(r.err.find(copy), std::string::npos) << cmd << ": " << r.err;
    }
  }
  // A page's bytes changed in place: verify names it; get refuses the cap (never wrong bytes).
  fs::remove_all(copy);
  fs::copy(db, copy);
  Bytes data = read_file(copy + "/data.mdb");
  const auto at = std::search(data.begin(), data.end(), marker.begin(), marker.end());
  ASSERT_NE(at, data.end());
  *at ^= 0x20;
  write_file(copy + "/data.mdb", data);
  const CliRun verify = run("store verify --db '" + copy + "'");
  EXPECT_EQ(verify.status, 1) << verify.out;
  EXPECT_NE(verify.out.find("bad page"), std::string::npos) << verify.out;
  const std::string page42 = to_hex(page_root(
      Digest::sha256, std::span<const std::uint8_t>(content).subspan(42 * PAGE_SIZE, PAGE_SIZE)));
  EXPECT_NE(verify.out.find(page42), std::string::npos) << verify.out;
  const CliRun get =
      run("store get " + root + " --db '" + copy + "' -o '" + temp_path("got.bin") + "'");
  EXPECT_EQ(get.status, 1) << get.err;
  EXPECT_FALSE(fs::exists(temp_path("got.bin")));
  // A store the user may only read: reading commands open it read-only.
  // (Only as root, and only where user nobody can reach the binary and the temp directory.)
  const std::string nobody_can_run = "/usr/sbin/runuser -u nobody -- test -x '" +
                                     std::string(DATACAP_CLI_PATH) + "' -a -x '" +
                                     ::testing::TempDir() + "' 2>/dev/null";
  if (::geteuid() == 0 && ::access("/usr/sbin/runuser", X_OK) == 0 &&
      std::system(nobody_can_run.c_str()) == 0) {
    fs::permissions(db, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                            fs::perms::group_exec | fs::perms::others_read |
                            fs::perms::others_exec);
    for (const auto& f : {db + "/data.mdb", db + "/lock.mdb"}) {
      fs::permissions(f, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    }
    const std::string as_nobody = "/usr/sbin/runuser -u nobody -- ";
    const std::string cmd = as_nobody + DATACAP_CLI_PATH + " store ls --db '" + db + "' 2>&1";
    FILE* pipe = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
    EXPECT_EQ(::pclose(pipe), 0) << out;
    EXPECT_NE(out.find(root), std::string::npos) << out;
    fs::permissions(db, fs::perms::owner_all);
  }
  fs::remove(raw);
  fs::remove_all(db);
  fs::remove_all(copy);
}

// ---- 9. one digest end to end
// --------------------------------------------------------------------

// LMDB 0.9 on 64-bit hosts: the newer of the two meta pages, and the free list's root page.
std::uint64_t free_list_root(const Bytes& data) {
  const auto u64 = [&](std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = v << 8 | data[at + static_cast<std::size_t>(i)];
    return v;
  };
  // Each meta page: 16-byte page header, magic, version, address, map size, then MDB_db[2]
  // (free list first: root at +40 of the db), last page, transaction id.
  const std::size_t meta = u64(PAGE_SIZE + 16 + 144) > u64(16 + 144) ? PAGE_SIZE : 0;
  return u64(meta + 16 + 24 + 40);
}

TEST(CliHostile, PutIntoAStoreWithADamagedFreeListIsACleanError) {
  std::mt19937_64 rng(28);
  const std::string db = temp_path("freelist.db");
  std::vector<std::string> roots;
  for (int i = 0; i < 5; ++i) {
    const std::string raw = temp_path("free" + std::to_string(i) + ".bin");
    write_file(raw, random_bytes(rng, 32 * PAGE_SIZE));
    if (i == 4) break;  // the last one is put after the damage
    const CliRun put = run("store put '" + raw + "' --db '" + db + "'");
    ASSERT_EQ(put.status, 0) << put.err;
    roots.push_back(first_line(put.out));
  }
  for (int i = 0; i < 2; ++i) {  // frees pages: the free list gets a tree
    ASSERT_EQ(run("store gc --db '" + db + "' --keep " + roots[0]).status, 0);
  }
  Bytes data = read_file(db + "/data.mdb");
  const std::uint64_t root = free_list_root(data);
  ASSERT_LE(root * PAGE_SIZE + PAGE_SIZE, data.size()) << "no free list to damage";
  // The root page's node offsets all point past the page's end.
  const std::size_t page = static_cast<std::size_t>(root) * PAGE_SIZE;
  const std::size_t lower = data[page + 12] | std::size_t{data[page + 13]} << 8;
  ASSERT_GT(lower, 16u);
  for (std::size_t at = page + 16; at + 1 < page + lower; at += 2) {
    data[at] = 0xf0;
    data[at + 1] = 0xff;
  }
  write_file(db + "/data.mdb", data);
  const CliRun put = run("store put '" + temp_path("free4.bin") + "' --db '" + db + "'");
  EXPECT_EQ(put.status, 1) << put.err;
  EXPECT_EQ(put.err.find("memory fault"), std::string::npos) << put.err;
  EXPECT_NE(put.err.find(db), std::string::npos) << put.err;
  EXPECT_EQ(run("store verify --db '" + db + "'").status, 1);
  fs::remove_all(db);
}

TEST(CliHostile, OverTheMemoryLimitDiffIsAnErrorNotADifference) {
  std::mt19937_64 rng(29);
  const std::string a = temp_path("limit_a.bin"), b = temp_path("limit_b.bin");
  const Bytes bytes = random_bytes(rng, 16 * PAGE_SIZE);
  write_file(a, bytes);
  write_file(b, bytes);
  EXPECT_EQ(run("diff '" + a + "' '" + b + "'").status, 0);
  const CliRun over = run("diff --max-memory 4096 '" + a + "' '" + b + "'");
  EXPECT_EQ(over.status, 2) << over.err;  // 1 would say "different"
  EXPECT_NE(over.err.find("--max-memory"), std::string::npos) << over.err;
  const CliRun proof = run("proof '" + a + "' --page 0 --max-memory 4096");
  EXPECT_EQ(proof.status, 1) << proof.err;  // elsewhere a runtime failure, not a usage error
}

TEST(CliHostile, OutputWriteErrorsNameTheOutputTheUserGave) {
  std::mt19937_64 rng(30);
  const std::string raw = temp_path("big.bin"), arc = temp_path("big.dcar"),
                    out = temp_path("big.out");
  write_file(raw, random_bytes(rng, 64 * PAGE_SIZE));
  ASSERT_EQ(run("pack '" + raw + "' -o '" + arc + "'").status, 0);
  // A file-size limit of 8 blocks of 1 KiB: the write fails with EFBIG.
  const std::string cmd = "/bin/sh -c \"trap '' XFSZ; ulimit -f 8; exec " +
                          std::string(DATACAP_CLI_PATH) + " unpack '" + arc + "' -o '" + out +
                          "'\" 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string err;
  std::array<char, 512> buf{};
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) err.append(buf.data(), n);
  const int status = ::pclose(pipe);
  EXPECT_EQ(WEXITSTATUS(status), 1) << err;
  EXPECT_EQ(err.rfind("datacap: error: " + out + ": ", 0), 0u) << err;
  EXPECT_FALSE(fs::exists(out));
  for (const auto& entry : fs::directory_iterator(fs::path(out).parent_path())) {
    EXPECT_EQ(entry.path().string().find(out + ".tmp-"), std::string::npos) << entry.path();
  }
}

TEST(CliHostile, EveryCommandUsesTheArchivesDigest) {
  std::mt19937_64 rng(26);
  const Bytes content = random_bytes(rng, 40 * PAGE_SIZE);
  DataCap cap = DataCap::from_bytes(content);
  std::vector<std::uint64_t> cold = {3, 17};
  cap.elide_pages(cold);  // Missing pages: their hashes are under the archive's digest
  const std::string b2 = temp_path("b2.dcar"), sha = temp_path("sha.dcar"),
                    proof = temp_path("b2.json");
  write_archive(cap, b2, Digest::blake2b256);
  write_archive(cap, sha, Digest::sha256);
  const std::string b2_root = to_hex(cap.flush().hash_tree_root(Digest::blake2b256));
  EXPECT_EQ(first_line(run("root --archive '" + b2 + "'").out), b2_root);
  EXPECT_EQ(run("root --archive '" + b2 + "' --digest sha256").status, 2);
  const CliRun p = run("proof '" + b2 + "' --page 5 > '" + proof + "'");
  ASSERT_EQ(p.status, 0) << p.err;
  const std::string json = read_file(proof).empty()
                               ? ""
                               : std::string(reinterpret_cast<const char*>(read_file(proof).data()),
                                             read_file(proof).size());
  EXPECT_NE(json.find("\"digest\":\"blake2b256\""), std::string::npos) << json;
  EXPECT_NE(json.find(b2_root), std::string::npos) << json;
  EXPECT_EQ(run("verify-proof '" + proof + "'").status, 0);
  EXPECT_EQ(run("proof '" + b2 + "' --page 5 --digest sha256").status, 2);
  // Missing hashes of different digests cannot be compared.
  const CliRun d = run("diff '" + b2 + "' '" + sha + "'");
  EXPECT_EQ(d.status, 2) << d.out;
  EXPECT_EQ(run("diff '" + b2 + "' '" + b2 + "'").status, 0);
  for (const auto& f : {b2, sha, proof}) fs::remove(f);
}

// ---- 10. numbers
// ---------------------------------------------------------------------------------

TEST(CliHostile, NumbersAreWholeAndInRangeOrAUsageError) {
  const std::string raw = temp_path("num.bin"), proof = temp_path("num.json");
  write_file(raw, Bytes(3 * PAGE_SIZE, 9));
  for (const std::string bad :
       {"-1", "18446744073709551616", "1e3", "12abc", "", "0x10", "+5", "1.5"}) {
    SCOPED_TRACE(bad);
    for (const std::string& cmd :
         {"root '" + raw + "' --size '" + bad + "'", "proof '" + raw + "' --page '" + bad + "'"}) {
      const CliRun r = run(cmd);
      EXPECT_EQ(r.status, 2) << cmd << ": " << r.out;
      EXPECT_EQ(line_count(r.err), 1u) << r.err;
    }
  }
  EXPECT_EQ(run("root '" + raw + "' --size 18446744073709551615").status, 2);  // beyond 2^32 pages
  ASSERT_EQ(run("proof '" + raw + "' --page 1 > '" + proof + "'").status, 0);
  const Bytes good_bytes = read_file(proof);
  const std::string good(good_bytes.begin(), good_bytes.end());
  for (const char* field : {"size", "page_index", "depth", "gindex"}) {
    const std::string key = std::string("\"") + field + "\":";
    const std::size_t at = good.find(key) + key.size();
    const std::size_t end = good.find_first_of(",}", at);
    const std::string value = good.substr(at, end - at);
    for (const std::string& bad :
         std::vector<std::string>{value + ".7", "-" + value, "1e30", "18446744073709551616",
                                  "\"" + value + "\"", "null"}) {
      SCOPED_TRACE(std::string(field) + "=" + bad);
      std::ofstream(proof, std::ios::trunc) << good.substr(0, at) + bad + good.substr(end);
      const CliRun r = run("verify-proof '" + proof + "'");
      EXPECT_EQ(r.status, 2) << r.out;
      EXPECT_NE(r.err.find(std::string("\"") + field + "\""), std::string::npos) << r.err;
      EXPECT_EQ(r.out.find("valid"), std::string::npos) << r.out;
    }
  }
  fs::remove(raw);
  fs::remove(proof);
}

TEST(CliHostile, ShortArchivesAndOtherErrorsNameTheirFile) {
  const std::string arc = temp_path("short.dcar");
  for (const std::size_t size : {0, 7, 100, 4095}) {
    write_file(arc, Bytes(size, 'D'));
    for (const std::string& cmd :
         {"info '" + arc + "'", "verify '" + arc + "'", "root --archive '" + arc + "'"}) {
      const CliRun r = run(cmd);
      EXPECT_EQ(r.status, 1) << cmd;
      EXPECT_NE(r.err.find(arc), std::string::npos) << cmd << ": " << r.err;
    }
  }
  fs::remove(arc);
}

}  // namespace
}  // namespace datacap::testing
#endif
