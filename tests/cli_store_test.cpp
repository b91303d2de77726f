// The store, proof, verify-proof and diff commands through the real binary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "datacap/datacap.hpp"
#include "support/cli_run.hpp"
#include "support/seed.hpp"
#include "support/vectors.hpp"

#ifdef DATACAP_CLI_PATH
namespace datacap::testing {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "datacap_cli_store_" + std::to_string(::getpid()) + "_" + name;
}

void write_file(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::vector<std::uint8_t> random_bytes(std::mt19937_64& rng, std::size_t n) {
  std::vector<std::uint8_t> b(n);
  for (auto& x : b) x = static_cast<std::uint8_t>(rng());
  return b;
}

TEST(CliStore, PutGetLsGcRoundTrip) {
  std::mt19937_64 rng(env_seed(101));
  const std::string db = temp_path("db");
  fs::remove_all(db);
  // Every vector (with its size), and a random file.
  std::vector<std::string> roots;
  for (const auto& row : read_manifest()) {
    const CliRun put = run("store put '" + vectors_dir() + "/" + row.file + "' --size " +
                           std::to_string(row.size_arg) + " --db '" + db + "'");
    ASSERT_EQ(put.status, 0) << put.err;
    EXPECT_EQ(put.out, row.sha256_root + "\n") << row.file;
    roots.push_back(row.sha256_root);
  }
  const std::string file = temp_path("random.bin");
  const auto content = random_bytes(rng, 3 * PAGE_SIZE + 100);
  write_file(file, content);
  const CliRun put = run("store put '" + file + "' - --db '" + db + "' < '" + file + "'");
  ASSERT_EQ(put.status, 0) << put.err;
  const auto put_lines = lines(put.out);
  ASSERT_EQ(put_lines.size(), 2u);
  EXPECT_EQ(put_lines[0], put_lines[1]) << "a file and the same bytes on stdin";
  EXPECT_EQ(put_lines[0], to_hex(DataCap::from_bytes(content).hash_tree_root()));

  const CliRun ls = run("store ls --db '" + db + "'");
  ASSERT_EQ(ls.status, 0) << ls.err;
  const std::set<std::string> distinct(roots.begin(), roots.end());  // v01 and v03 share a root
  EXPECT_EQ(lines(ls.out).size(), distinct.size() + 1) << ls.out;
  EXPECT_NE(ls.out.find(put_lines[0] + " 16384 4\n"), std::string::npos) << ls.out;

  const std::string out = temp_path("out.bin");
  const CliRun get = run("store get " + put_lines[0] + " --db '" + db + "' -o '" + out + "'");
  ASSERT_EQ(get.status, 0) << get.err;
  auto expected = content;
  expected.resize(4 * PAGE_SIZE, 0);
  EXPECT_EQ(read_file(out), expected);
  // The 4 GiB sparse vector comes back sparse and whole.
  const CliRun big = run("store get " + roots[7] + " --db '" + db + "' -o '" + out + "'");
  ASSERT_EQ(big.status, 0) << big.err;
  EXPECT_EQ(fs::file_size(out), read_manifest()[7].size_arg);

  // gc keeps what it is told to and nothing else.
  const CliRun gc = run("store gc --db '" + db + "' --keep " + put_lines[0] + " " + roots[4]);
  ASSERT_EQ(gc.status, 0) << gc.err;
  EXPECT_EQ(gc.out.rfind("kept 2 caps", 0), 0u) << gc.out;
  EXPECT_EQ(lines(run("store ls --db '" + db + "'").out).size(), 2u);
  const CliRun gone = run("store get " + roots[1] + " --db '" + db + "' -o '" + out + "'");
  EXPECT_EQ(gone.status, 1);
  EXPECT_NE(gone.err.find("no cap " + roots[1]), std::string::npos) << gone.err;
  EXPECT_EQ(fs::file_size(out), read_manifest()[7].size_arg) << "a failed get replaced the output";

  // Errors: one line, typed exit codes.
  const CliRun bad_hex = run("store get 1234 --db '" + db + "' -o '" + out + "'");
  EXPECT_EQ(bad_hex.status, 2) << bad_hex.err;
  const CliRun no_db = run("store ls --db '" + temp_path("absent") + "'");
  EXPECT_EQ(no_db.status, 1);
  EXPECT_NE(no_db.err.find("no such store directory"), std::string::npos) << no_db.err;
  const CliRun unknown_keep = run("store gc --db '" + db + "' --keep " + roots[1]);
  EXPECT_EQ(unknown_keep.status, 1);
  EXPECT_EQ(lines(run("store ls --db '" + db + "'").out).size(), 2u) << "a failed gc removed caps";
  const CliRun no_keep = run("store gc --db '" + db + "'");
  EXPECT_EQ(no_keep.status, 2);
  // gc on a directory that holds no store: an error, and nothing created there.
  const std::string not_a_store = temp_path("not_a_store");
  fs::create_directories(not_a_store);
  const CliRun gc_elsewhere = run("store gc --db '" + not_a_store + "' --keep " + roots.front());
  EXPECT_EQ(gc_elsewhere.status, 1) << gc_elsewhere.err;
  EXPECT_TRUE(fs::is_empty(not_a_store));
  fs::remove_all(not_a_store);
  const CliRun missing_file = run("store put '" + temp_path("nope") + "' --db '" + db + "'");
  EXPECT_EQ(missing_file.status, 1);
  for (const CliRun* r : {&gone, &bad_hex, &no_db, &unknown_keep, &no_keep, &missing_file}) {
    EXPECT_EQ(lines(r->err).size(), 1u) << r->err;
  }
  fs::remove_all(db);
  fs::remove(file);
  fs::remove(out);
}

// --db lmdb:DIR is the plain directory; --cache DIR puts an LMDB tier in front and fills it on
// reads; a cache that is the --db store itself, and a --db that looks like another kind of URL,
// are refused (the first used to hang gc on its own lock file).
TEST(CliStore, DbUrlsAndTheCacheTier) {
  std::mt19937_64 rng(env_seed(102));
  const std::string db = temp_path("url_db");
  const std::string cache = temp_path("url_cache");
  fs::remove_all(db);
  fs::remove_all(cache);
  const std::string file = temp_path("url.bin");
  const auto content = random_bytes(rng, 5 * PAGE_SIZE);
  write_file(file, content);
  const CliRun put = run("store put '" + file + "' --db 'lmdb:" + db + "'");
  ASSERT_EQ(put.status, 0) << put.err;
  const std::string root = lines(put.out).at(0);
  EXPECT_EQ(run("store ls --db '" + db + "'").out.rfind(root, 0), 0u);

  const std::string out = temp_path("url_out.bin");
  const CliRun get =
      run("store get " + root + " --db '" + db + "' --cache '" + cache + "' -o '" + out + "'");
  ASSERT_EQ(get.status, 0) << get.err;
  EXPECT_EQ(read_file(out), content);
  // The read filled the cache: its pages are there now (`store verify` of the cache alone
  // counts them).
  const CliRun cached = run("store verify --db '" + cache + "'");
  EXPECT_EQ(cached.status, 0) << cached.err;
  EXPECT_NE(cached.out.find(" 5 pages"), std::string::npos) << cached.out;
  const CliRun gc = run("store gc --db '" + db + "' --cache '" + cache + "' --keep " + root);
  EXPECT_EQ(gc.status, 0) << gc.err;

  const CliRun same = run("store gc --db '" + db + "' --cache '" + db + "/' --keep " + root);
  EXPECT_EQ(same.status, 2) << same.err;
  EXPECT_NE(same.err.find("is the --db store itself"), std::string::npos) << same.err;
  const CliRun scheme = run("store ls --db rediss://127.0.0.1:1");
  EXPECT_EQ(scheme.status, 2) << scheme.err;
  EXPECT_FALSE(fs::exists("rediss:"));
  const CliRun refused = run("store ls --db redis://127.0.0.1:1");
  EXPECT_EQ(refused.status, 1) << refused.err;
  EXPECT_NE(refused.err.find("127.0.0.1:1"), std::string::npos) << refused.err;
  fs::remove_all(db);
  fs::remove_all(cache);
  fs::remove(file);
  fs::remove(out);
}

// A cap of size 0 (the library can save one) has no raw-file form: an empty file reads back as
// a cap of one page, under another root. `store get` wrote that empty file and exited 0.
TEST(CliStore, GetOfTheEmptyCapIsAnErrorWithNoOutput) {
  const std::string db = temp_path("empty_db");
  fs::remove_all(db);
  Hash32 empty_root;
  {
    const std::unique_ptr<PageStore> store = open_lmdb_store(db);
    empty_root = store->save_cap(DataCap());
  }
  const std::string out = temp_path("empty_out.bin");
  fs::remove(out);
  const CliRun get = run("store get " + to_hex(empty_root) + " --db '" + db + "' -o '" + out + "'");
  EXPECT_EQ(get.status, 1) << get.err;
  EXPECT_NE(get.err.find("size 0"), std::string::npos) << get.err;
  EXPECT_EQ(lines(get.err).size(), 1u) << get.err;
  EXPECT_FALSE(fs::exists(out));
  // It is listed, as a cap of 0 bytes and no pages.
  EXPECT_EQ(run("store ls --db '" + db + "'").out, to_hex(empty_root) + " 0 0\n");
  fs::remove_all(db);
}

TEST(CliProof, ProofsOfVectorsVerifyAndTamperedOnesDoNot) {
  const std::string proof_path = temp_path("proof.json");
  for (const auto& row : read_manifest()) {
    SCOPED_TRACE(row.file);
    const std::string file = vectors_dir() + "/" + row.file;
    const std::uint64_t len = std::max<std::uint64_t>(row.size_arg, fs::file_size(file));
    const std::uint64_t page_count = std::max<std::uint64_t>(1, (len + PAGE_SIZE - 1) / PAGE_SIZE);
    for (const std::uint64_t page : {std::uint64_t{0}, page_count - 1}) {
      const CliRun proof = run("proof '" + file + "' --page " + std::to_string(page) + " --size " +
                               std::to_string(row.size_arg));
      ASSERT_EQ(proof.status, 0) << proof.err;
      const std::string prefix =
          "{\"root\":\"" + row.sha256_root +
          "\",\"digest\":\"sha256\",\"size\":" + std::to_string(page_count * PAGE_SIZE) +
          ",\"depth\":" + std::to_string(pages_depth(page_count)) +
          ",\"page_index\":" + std::to_string(page) +
          ",\"gindex\":" + std::to_string(page_gindex(page_count, page)) + ",\"leaf\":\"";
      EXPECT_EQ(proof.out.rfind(prefix, 0), 0u) << proof.out;
      std::ofstream(proof_path) << proof.out;
      const CliRun ok = run("verify-proof '" + proof_path + "'");
      EXPECT_EQ(ok.status, 0) << ok.out << ok.err;
      const CliRun trusted = run("verify-proof '" + proof_path + "' --root " + row.sha256_root);
      EXPECT_EQ(trusted.status, 0) << trusted.out << trusted.err;
      const CliRun other = run("verify-proof '" + proof_path + "' --root " + std::string(64, 'a'));
      EXPECT_EQ(other.status, 1) << other.out;
      // Flip one hex digit of the last branch entry (the size root).
      std::string tampered = proof.out;
      const std::size_t at = tampered.rfind("\"]");
      tampered[at - 1] = tampered[at - 1] == '0' ? '1' : '0';
      std::ofstream(proof_path) << tampered;
      const CliRun bad = run("verify-proof '" + proof_path + "'");
      EXPECT_EQ(bad.status, 1) << bad.out;
      EXPECT_EQ(bad.out.rfind("invalid: ", 0), 0u) << bad.out;
    }
  }
  // Malformed inputs are errors, not crashes: not a JSON object is exit 1, a malformed field
  // exit 2 naming the field.
  for (const std::string text : {"", "{", "[]"}) {
    std::ofstream(proof_path) << text;
    const CliRun r = run("verify-proof '" + proof_path + "'");
    EXPECT_EQ(r.status, 1) << text << ": " << r.err;
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
  }
  for (const std::string text : {"{\"root\": 5}", "{\"root\":\"zz\"}"}) {
    std::ofstream(proof_path) << text;
    const CliRun r = run("verify-proof '" + proof_path + "'");
    EXPECT_EQ(r.status, 2) << text << ": " << r.err;
    EXPECT_EQ(lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find("\"root\""), std::string::npos) << r.err;
  }
  const CliRun past = run("proof '" + vectors_dir() + "/v05_three_pages.bin' --page 3");
  EXPECT_EQ(past.status, 2) << past.err;  // OutOfRange is a usage error
  fs::remove(proof_path);
}

TEST(CliDiff, ListsDifferingPagesOfRawFilesAndArchives) {
  std::mt19937_64 rng(env_seed(103));
  const auto base = random_bytes(rng, 300 * PAGE_SIZE);
  auto changed = base;
  const std::vector<std::uint64_t> pages = {0, 63, 64, 200, 299};
  for (const std::uint64_t p : pages) changed[p * PAGE_SIZE + rng() % PAGE_SIZE] ^= 0x5A;
  const std::string a = temp_path("a.bin"), b = temp_path("b.bin"), arc = temp_path("b.dcap");
  write_file(a, base);
  write_file(b, changed);
  std::string expected;
  for (const std::uint64_t p : pages) expected += std::to_string(p) + "\n";
  // Exit status as cmp and diff: 0 equal, 1 different, 2 trouble.
  const CliRun raw = run("diff '" + a + "' '" + b + "'");
  ASSERT_EQ(raw.status, 1) << raw.err;
  EXPECT_EQ(raw.err, "");
  EXPECT_EQ(raw.out, expected);
  ASSERT_EQ(run("pack '" + b + "' -o '" + arc + "'").status, 0);
  EXPECT_EQ(run("diff '" + a + "' '" + arc + "'").out, expected);
  const CliRun same = run("diff '" + arc + "' '" + b + "'");
  EXPECT_EQ(same.out, "");
  EXPECT_EQ(same.status, 0) << same.err;
  // Sizes that differ come first; the extra pages of the longer one differ from Empty.
  auto longer = base;
  longer.resize(302 * PAGE_SIZE, 0);
  longer[301 * PAGE_SIZE] = 1;
  write_file(b, longer);
  EXPECT_EQ(run("diff '" + a + "' '" + b + "'").out, "size " + std::to_string(300 * PAGE_SIZE) +
                                                         " " + std::to_string(302 * PAGE_SIZE) +
                                                         "\n301\n");
  const CliRun missing = run("diff '" + a + "' '" + temp_path("nope") + "'");
  EXPECT_EQ(missing.status, 2);
  EXPECT_NE(missing.err.find(temp_path("nope")), std::string::npos) << missing.err;
  for (const auto& f : {a, b, arc}) fs::remove(f);
}

}  // namespace
}  // namespace datacap::testing
#endif
