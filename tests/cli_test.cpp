// The datacap command through its real binary: vectors with both digests, standard input,
// sparse files, and errors (one line on stderr, non-zero exit).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "datacap/datacap.hpp"
#include "support/cli_run.hpp"
#include "support/vectors.hpp"

#ifdef DATACAP_CLI_PATH
namespace datacap::testing {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

TEST(Cli, RootOfEveryVectorWithBothDigests) {
  for (const auto& row : read_manifest()) {
    SCOPED_TRACE(row.file);
    const std::string file = vectors_dir() + "/" + row.file;
    const CliRun sha = run("root '" + file + "' --size " + std::to_string(row.size_arg));
    EXPECT_EQ(sha.status, 0) << sha.err;
    EXPECT_EQ(first_line(sha.out), row.sha256_root);
    EXPECT_EQ(sha.err, "");
    const CliRun blake =
        run("root '" + file + "' --size " + std::to_string(row.size_arg) + " --digest blake2b256");
    EXPECT_EQ(first_line(blake.out), row.blake2b256_root);
  }
}

TEST(Cli, RootReadsStandardInput) {
  for (const auto& row : read_manifest()) {
    SCOPED_TRACE(row.file);
    const CliRun r = run("root - --size " + std::to_string(row.size_arg) + " < '" + vectors_dir() +
                         "/" + row.file + "'");
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(first_line(r.out), row.sha256_root);
  }
}

// /proc files say they hold 0 bytes whatever they hold: `root` read nothing of them and printed
// the empty file's root (CLI review of 2026-11-30). They are read to their end, like a pipe.
TEST(Cli, AFileThatSaysItIsEmptyIsReadToItsEnd) {
  const std::string file = "/proc/version";  // fixed while the machine runs
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0 || st.st_size != 0) GTEST_SKIP() << file << " is not procfs";
  const CliRun direct = run("root " + file);
  const CliRun piped = run("root - < " + file);
  ASSERT_EQ(direct.status, 0) << direct.err;
  ASSERT_EQ(piped.status, 0) << piped.err;
  EXPECT_EQ(first_line(direct.out), first_line(piped.out));
  const CliRun empty = run("root /dev/null");
  EXPECT_NE(first_line(direct.out), first_line(empty.out));
  // proof and diff read regular files only, and a /proc file may never end: refused.
  const CliRun proof = run("proof " + file + " --page 0");
  EXPECT_EQ(proof.status, 1) << proof.err;
  EXPECT_NE(proof.err.find("/proc"), std::string::npos) << proof.err;
}

TEST(Cli, RootOfASparseFileSkipsHolesAndMatchesTheLibrary) {
  const std::string path =
      ::testing::TempDir() + "datacap_sparse_" + std::to_string(::getpid()) + ".bin";
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
  const std::vector<SparsePage> pages = {{5, p5},
                                         {static_cast<std::uint32_t>(size / PAGE_SIZE), last}};
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
      {"root " + vectors_dir() + "/v02_hello.bin --size 17592186044417", 2,
       "--size 17592186044417 is beyond 2^32 pages"},
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

TEST(Cli, PackUnpackRoundTripsEveryVectorWithTheSameRoot) {
  const std::string dir = ::testing::TempDir();
  const std::string archive = dir + "datacap_cli_" + std::to_string(::getpid()) + ".dcar";
  const std::string out = archive + ".out";
  for (const auto& row : read_manifest()) {
    SCOPED_TRACE(row.file);
    const std::string file = vectors_dir() + "/" + row.file;
    const CliRun pack =
        run("pack '" + file + "' -o '" + archive + "' --size " + std::to_string(row.size_arg));
    ASSERT_EQ(pack.status, 0) << pack.err;
    EXPECT_NE(pack.out.find("\"root\": \"" + row.sha256_root + "\""), std::string::npos)
        << pack.out;
    EXPECT_EQ(first_line(run("root --archive '" + archive + "'").out), row.sha256_root);
    // An archive's root is under its own digest; another --digest contradicts it (exit 2).
    const CliRun contradicted = run("root --archive '" + archive + "' --digest blake2b256");
    EXPECT_EQ(contradicted.status, 2) << contradicted.out;
    EXPECT_NE(contradicted.err.find(archive), std::string::npos) << contradicted.err;
    const std::string blake = archive + ".b2";
    ASSERT_EQ(run("pack '" + file + "' -o '" + blake + "' --digest blake2b256 --size " +
                  std::to_string(row.size_arg))
                  .status,
              0);
    EXPECT_EQ(first_line(run("root --archive '" + blake + "'").out), row.blake2b256_root);
    EXPECT_EQ(first_line(run("root --archive '" + blake + "' --digest blake2b256").out),
              row.blake2b256_root);
    EXPECT_EQ(run("root --archive '" + blake + "' --digest sha256").status, 2);
    std::remove(blake.c_str());
    const CliRun info = run("info '" + archive + "'");
    EXPECT_EQ(info.status, 0) << info.err;
    for (const char* key :
         {"\"root\"", "\"size\"", "\"page_count\"", "\"stored_pages\"", "\"unique_pages\""}) {
      EXPECT_NE(info.out.find(key), std::string::npos) << key;
    }
    EXPECT_EQ(run("verify '" + archive + "'").status, 0);
    const CliRun unpack = run("unpack '" + archive + "' -o '" + out + "'");
    ASSERT_EQ(unpack.status, 0) << unpack.err;
    // The unpacked file is the full-size content: its root is the vector's root.
    EXPECT_EQ(first_line(run("root '" + out + "'").out), row.sha256_root);
    // Sizes always; bytes for the small vectors (the 4 GiB ones are checked by their root above).
    EXPECT_EQ(
        std::filesystem::file_size(out),
        std::max<std::uint64_t>(
            std::max<std::uint64_t>(row.size_arg, std::filesystem::file_size(file)) + PAGE_SIZE - 1,
            PAGE_SIZE) /
            PAGE_SIZE * PAGE_SIZE);
    if (row.size_arg > (std::uint64_t{64} << 20)) continue;
    const auto original = read_file(file);
    auto unpacked = read_file(out);
    ASSERT_GE(unpacked.size(), original.size());
    EXPECT_TRUE(std::equal(original.begin(), original.end(), unpacked.begin()));
    EXPECT_TRUE(std::all_of(unpacked.begin() + static_cast<std::ptrdiff_t>(original.size()),
                            unpacked.end(), [](std::uint8_t b) { return b == 0; }));
  }
  std::remove(out.c_str());
  std::remove(archive.c_str());
}

TEST(Cli, PackUnpackRoundTripsRandomFiles) {
  const std::string base = ::testing::TempDir() + "datacap_cli_rand_" + std::to_string(::getpid());
  std::mt19937_64 rng(44);
  for (std::size_t len :
       {std::size_t{1}, std::size_t{4095}, std::size_t{300000}, std::size_t{2} << 20}) {
    std::vector<std::uint8_t> bytes(len);
    for (std::size_t i = 0; i < len; ++i)
      bytes[i] = (i / PAGE_SIZE) % 3 == 1 ? 0 : static_cast<std::uint8_t>(rng());
    {
      std::ofstream f(base, std::ios::binary | std::ios::trunc);
      f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(len));
    }
    ASSERT_EQ(run("pack '" + base + "' -o '" + base + ".dcar'").status, 0);
    ASSERT_EQ(run("unpack '" + base + ".dcar' -o '" + base + ".out'").status, 0);
    auto out = read_file(base + ".out");
    ASSERT_EQ(out.size(), (len + PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE);
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), out.begin())) << len;
    EXPECT_EQ(first_line(run("root '" + base + "'").out),
              first_line(run("root --archive '" + base + ".dcar'").out));
  }
  for (const char* suffix : {"", ".dcar", ".out"}) std::remove((base + suffix).c_str());
}

TEST(Cli, DamagedArchivesFailWithOneLineAndExitOne) {
  const std::string archive =
      ::testing::TempDir() + "datacap_cli_bad_" + std::to_string(::getpid()) + ".dcar";
  ASSERT_EQ(run("pack '" + vectors_dir() + "/v07_five_pages.bin' -o '" + archive + "'").status, 0);
  auto bytes = read_file(archive);
  for (std::size_t at : {std::size_t{3}, std::size_t{20}, std::size_t{5000}, bytes.size() - 3}) {
    auto damaged = bytes;
    damaged[at] ^= 0x40;
    {
      std::ofstream f(archive, std::ios::binary | std::ios::trunc);
      f.write(reinterpret_cast<const char*>(damaged.data()),
              static_cast<std::streamsize>(damaged.size()));
    }
    for (const char* command : {"verify", "unpack -o /dev/null", "root --archive"}) {
      const std::string cmd = std::string(command).find(' ') == std::string::npos
                                  ? std::string(command) + " '" + archive + "'"
                                  : std::string("unpack '") + archive + "' -o " +
                                        ::testing::TempDir() + "never_written";
      const CliRun r = run(cmd);
      EXPECT_EQ(r.status, 1) << cmd << " at " << at << ": " << r.err;
      EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << r.err;
      EXPECT_NE(r.err.find("Archive."), std::string::npos) << r.err;
    }
  }
  std::remove(archive.c_str());
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
