// The datacap command through its real binary: vectors with both digests, standard input,
// sparse files, and errors (one line on stderr, non-zero exit).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "datacap/datacap.hpp"
#include "support/vectors.hpp"

#ifdef DATACAP_CLI_PATH
namespace datacap::testing {
namespace {

struct CliRun {
  int status;
  std::string out;
  std::string err;
};

// Runs a shell command line; captures stdout and stderr (stderr through a temp file).
CliRun run(const std::string& args) {
  const std::string err_path = ::testing::TempDir() + "datacap_cli_err_" + std::to_string(::getpid()) + ".txt";
  const std::string cmd = std::string(DATACAP_CLI_PATH) + " " + args + " 2>" + err_path;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  std::array<char, 4096> buf{};
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  std::ifstream err_file(err_path);
  std::string err((std::istreambuf_iterator<char>(err_file)), {});
  return CliRun{WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out, err};
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

TEST(Cli, RootOfEveryVectorWithBothDigests) {
  for (const auto& row : read_manifest()) {
    SCOPED_TRACE(row.file);
    const std::string file = vectors_dir() + "/" + row.file;
    const CliRun sha = run("root '" + file + "' --size " + std::to_string(row.size_arg));
    EXPECT_EQ(sha.status, 0) << sha.err;
    EXPECT_EQ(first_line(sha.out), row.sha256_root);
    EXPECT_EQ(sha.err, "");
    const CliRun blake = run("root '" + file + "' --size " + std::to_string(row.size_arg) + " --digest blake2b256");
    EXPECT_EQ(first_line(blake.out), row.blake2b256_root);
  }
}

TEST(Cli, RootReadsStandardInput) {
  for (const auto& row : read_manifest()) {
    SCOPED_TRACE(row.file);
    const CliRun r = run("root - --size " + std::to_string(row.size_arg) + " < '" + vectors_dir() + "/" + row.file + "'");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(first_line(r.out), row.sha256_root);
  }
}

TEST(Cli, RootOfASparseFileSkipsHolesAndMatchesTheLibrary) {
  const std::string path = ::testing::TempDir() + "datacap_sparse_" + std::to_string(::getpid()) + ".bin";
  const std::uint64_t size = (std::uint64_t{1} << 30) + 12345;  // 1 GiB + a partial page
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.seekp(5 * PAGE_SIZE + 7);
    f.write("middle", 6);
    f.seekp(static_cast<std::streamoff>(size - 3));
    f.write("end", 3);
  }
  const CliRun r = run("root '" + path + "'");
  EXPECT_EQ(r.status, 0) << r.err;
  std::vector<std::uint8_t> p5(PAGE_SIZE, 0), last(size % PAGE_SIZE, 0);
  std::memcpy(p5.data() + 7, "middle", 6);
  std::memcpy(last.data() + last.size() - 3, "end", 3);
  const std::vector<SparsePage> pages = {{5, p5}, {static_cast<std::uint32_t>(size / PAGE_SIZE), last}};
  EXPECT_EQ(first_line(r.out), to_hex(DataCap::from_sparse_pages(size, pages).hash_tree_root()));
  std::remove(path.c_str());
}

TEST(Cli, ErrorsAreOneLineAndNonZero) {
  struct Case {
    std::string args;
    int status;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"root /nonexistent/file", 1, "/nonexistent/file: cannot open"},
      {"root /", 1, "is a directory"},
      {"root " + vectors_dir() + "/v02_hello.bin --digest md5", 2, "--digest"},
      {"root " + vectors_dir() + "/v02_hello.bin --size lots", 2, "--size"},
      {"root " + vectors_dir() + "/v02_hello.bin --size 17592186044417", 2, "exceeds 2^32 pages"},
      {"root", 2, "FILE"},
      {"frobnicate", 2, "frobnicate"},
      {"", 2, "subcommand is required"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.args);
    const CliRun r = run(c.args);
    EXPECT_EQ(r.status, c.status) << r.err;
    EXPECT_EQ(r.out, "");
    ASSERT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line: " << r.err;
    EXPECT_EQ(r.err.rfind("datacap: error: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
  }
}

TEST(Cli, DemoRunsAndReportsIsolation) {
  const CliRun r = run("demo --copies 20");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("distinct roots   20 of 20"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("isolation        held"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("roots from scratch  match"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace datacap::testing
#endif
