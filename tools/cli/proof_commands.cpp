// datacap proof FILE --page I [--size BYTES]   JSON proof of one page against the cap root
// datacap verify-proof PROOF.json              exit 0 iff the proof holds for its root
// datacap diff A B                             differing page indices, one per line
//
// FILE, A and B are raw files or snapshot archives (recognized by their magic). Either is read
// once into private memory (never mapped), so a file changed or truncated meanwhile can neither
// fault the command nor change bytes after they were hashed. Archives are verified in full.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.hpp"
#include "cli/process.hpp"
#include "datacap/datacap.hpp"

namespace datacap::cli {
namespace {

constexpr std::size_t MAX_PROOF_FILE = std::size_t{1} << 20;  // a proof is at most ~3 KiB

struct Input {
  DataCap cap;
  bool archive = false;
  Digest digest = Digest::sha256;  // the archive's, for an archive
  bool has_missing = false;
};

Input open_input(const std::string& path, std::uint64_t size, std::uint64_t max_memory) {
  Input in;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw IoError(path, std::string("cannot open: ") + std::strerror(errno));
  // A raw file or archive is a regular file: a device or FIFO could be endless (/dev/zero) or
  // block forever (a FIFO nobody writes). So could a file of /proc, which says it holds 0
  // bytes (/proc/kmsg blocks, /proc/self/pagemap is hundreds of GiB): refused too (`root`
  // reads one to its end, as it reads a pipe).
  if (!S_ISREG(st.st_mode)) throw IoError(path, "not a regular file");
  if (st.st_size == 0) {
    struct statfs fs {};
    constexpr long PROC_SUPER_MAGIC = 0x9fa0;
    if (::statfs(path.c_str(), &fs) == 0 && static_cast<long>(fs.f_type) == PROC_SUPER_MAGIC)
      throw IoError(path, "a file of /proc, whose length the kernel does not give: not read");
  }
  if (is_archive_file(path)) {
    OpenedArchive a = open_archive_copy(path, max_memory);
    in.cap = a.cap.flush();
    in.archive = true;
    in.digest = a.info.digest;
    in.has_missing = a.info.flushed_missing_pages != 0;
    if (size > in.cap.content_len()) {
      throw InvalidArgument("--size cannot grow " + path + ", an archived cap of " +
                            std::to_string(in.cap.content_len()) + " bytes");
    }
    return in;
  }
  in.cap = read_raw_file(path, size, max_memory);
  return in;
}

nlohmann::ordered_json proof_json(const Hash32& root, Digest digest, const PageProof& proof) {
  const std::uint64_t page_count = proof.content_len / PAGE_SIZE;
  nlohmann::ordered_json branch = nlohmann::ordered_json::array();
  for (const Hash32& h : proof.branch) branch.push_back(to_hex(h));
  return nlohmann::ordered_json{
      {"root", to_hex(root)},           {"digest", to_string(digest)},
      {"size", proof.content_len},      {"depth", pages_depth(page_count)},
      {"page_index", proof.page_index}, {"gindex", page_gindex(page_count, proof.page_index)},
      {"leaf", to_hex(proof.leaf)},     {"branch", std::move(branch)}};
}

// A malformed proof is a usage error (exit 2) naming the field; a well-formed proof that does
// not hold is "invalid" (exit 1).
[[noreturn]] void bad_field(const std::string& path, const std::string& name,
                            const std::string& why) {
  throw InvalidArgument(path + ": field \"" + name + "\": " + why);
}

const nlohmann::json& field(const nlohmann::json& j, const char* name, const std::string& path) {
  const auto it = j.find(name);
  if (it == j.end()) bad_field(path, name, "missing");
  return *it;
}

// JSON numbers that are whole and non-negative and fit 64 bits: nlohmann parses those (and only
// those) as unsigned; -1, 5.9, 1e30 and 2^64 are signed or floating.
std::uint64_t u64_field(const nlohmann::json& j, const char* name, const std::string& path) {
  const nlohmann::json& v = field(j, name, path);
  if (!v.is_number_unsigned())
    bad_field(path, name, "not a whole number from 0 to 2^64 - 1: " + v.dump());
  return v.get<std::uint64_t>();
}

Hash32 hash_field(const nlohmann::json& v, const std::string& name, const std::string& path) {
  if (!v.is_string()) bad_field(path, name, "not a string of 64 hex characters");
  std::string_view hex = v.get_ref<const std::string&>();
  if (hex.size() == 66 && hex[0] == '0' && (hex[1] == 'x' || hex[1] == 'X')) hex.remove_prefix(2);
  try {
    return hash_from_hex(hex);
  } catch (const InvalidArgument&) {
    bad_field(path, name, "not 64 hex characters: " + v.dump());
  }
}

// The whole proof file, read with a bound: a proof is small, and `verify-proof /dev/zero` must
// end with an error, not grow without limit.
std::string read_proof_text(const std::string& path) {
  const bool is_stdin = path == "-";
  // O_NONBLOCK for the open only: a FIFO nobody writes must not block it (its reads then end at
  // once), while reads from a FIFO that has a writer still wait for the data.
  const int fd = is_stdin ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw IoError(path, std::string("cannot open: ") + std::strerror(errno));
  if (!is_stdin) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = std::strerror(errno);
      if (!is_stdin) ::close(fd);
      throw IoError(path, "read failed: " + why);
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > MAX_PROOF_FILE) {
      if (!is_stdin) ::close(fd);
      throw DecodeError(path, MAX_PROOF_FILE,
                        "larger than 1 MiB: not a proof (a proof is a few KiB)");
    }
  }
  if (!is_stdin) ::close(fd);
  return text;
}

}  // namespace

void add_proof_commands(CLI::App& app) {
  {
    struct Options {
      std::string path, digest = "sha256";
      std::uint64_t page = 0, size = 0, max_memory = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand(
        "proof", "Print a JSON merkle proof of one page of FILE against its cap root");
    cmd->add_option("FILE", o->path, "raw file or snapshot archive")->required();
    add_u64_option(*cmd, "--page", o->page, "page index")->required();
    add_u64_option(*cmd, "--size", o->size,
                   "raw files: cap size in bytes, the larger of this and the file's length");
    CLI::Option* digest =
        cmd->add_option("--digest", o->digest,
                        "raw files: sha256 (default) or blake2b256; archives: their own")
            ->check(CLI::IsMember({"sha256", "blake2b256"}));
    add_u64_option(*cmd, "--max-memory", o->max_memory,
                   "memory allowed (default 64 MiB + 64 × the file's size)");
    cmd->callback([o, digest] {
      check_size_option(o->size);
      const Input in = open_input(o->path, o->size, o->max_memory);
      Digest d = parse_digest(o->digest);
      if (in.archive) {
        ArchiveInfo info;
        info.digest = in.digest;
        d = archive_digest_or_refuse(info, digest, o->digest, o->path);
      }
      if (o->page >= in.cap.page_count()) {
        throw InvalidArgument("--page " + std::to_string(o->page) + " is past the last page of " +
                              o->path + " (" + std::to_string(in.cap.page_count()) + " pages)");
      }
      const PageProof proof = prove_page(in.cap, o->page, d);
      std::printf("%s\n", proof_json(in.cap.hash_tree_root(d), d, proof).dump().c_str());
    });
  }
  {
    auto path = std::make_shared<std::string>();
    auto trusted = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("verify-proof",
                                       "Check a JSON page proof; exit 0 iff it holds for its root");
    cmd->add_option("PROOF", *path,
                    "proof file as printed by 'datacap proof'; '-' reads standard input")
        ->required();
    CLI::Option* root_option = cmd->add_option(
        "--root", *trusted, "the cap root you trust (default: the proof's own \"root\")");
    cmd->callback([path, trusted, root_option] {
      Hash32 trusted_root{};
      const bool has_trusted = root_option->count() > 0;
      if (has_trusted) {
        try {
          trusted_root = hash_from_hex(*trusted);
        } catch (const InvalidArgument&) {
          throw InvalidArgument("--root: '" + *trusted + "' is not 64 hex characters");
        }
      }
      const std::string name = *path == "-" ? std::string("<stdin>") : *path;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(read_proof_text(*path));
      } catch (const nlohmann::json::parse_error& e) {
        throw DecodeError(name, e.byte, std::string("not JSON: ") + e.what());
      }
      if (!j.is_object()) throw DecodeError(name, 0, "not a JSON object");
      PageProof proof;
      Digest digest = Digest::sha256;  // proofs written before the field existed are SHA-256
      if (j.contains("digest")) {
        const nlohmann::json& d = j["digest"];
        if (!d.is_string() || (d != "sha256" && d != "blake2b256"))
          bad_field(name, "digest", "not \"sha256\" or \"blake2b256\": " + d.dump());
        digest = parse_digest(d.get<std::string>());
      }
      const Hash32 root = hash_field(field(j, "root", name), "root", name);
      proof.content_len = u64_field(j, "size", name);
      proof.page_index = u64_field(j, "page_index", name);
      proof.leaf = hash_field(field(j, "leaf", name), "leaf", name);
      const nlohmann::json& branch = field(j, "branch", name);
      if (!branch.is_array()) bad_field(name, "branch", "not an array");
      if (branch.size() > 64)
        bad_field(name, "branch",
                  std::to_string(branch.size()) + " hashes (a proof has at most 34)");
      for (std::size_t k = 0; k < branch.size(); ++k) {
        proof.branch.push_back(hash_field(branch[k], "branch[" + std::to_string(k) + "]", name));
      }
      const std::uint64_t depth = u64_field(j, "depth", name);
      const std::uint64_t gindex = u64_field(j, "gindex", name);
      // The depth and gindex are implied by size and page_index; a proof that states others is
      // inconsistent, whatever its hashes.
      std::string why;
      const bool sized = proof.content_len % PAGE_SIZE == 0 &&
                         proof.content_len / PAGE_SIZE <= MAX_PAGE_COUNT && proof.content_len > 0;
      if (has_trusted && trusted_root != root) {
        why = "the proof is for root " + to_hex(root) + ", not " + *trusted;
      } else if (!sized) {
        why = "size " + std::to_string(proof.content_len) +
              " is not a whole number of pages (1 to 2^32)";
      } else if (proof.page_index >= proof.content_len / PAGE_SIZE) {
        why = "page_index " + std::to_string(proof.page_index) + " is past the last page";
      } else if (depth != pages_depth(proof.content_len / PAGE_SIZE)) {
        why = "depth " + std::to_string(depth) + " is not the depth of a " +
              std::to_string(proof.content_len) + "-byte cap";
      } else if (gindex != page_gindex(proof.content_len / PAGE_SIZE, proof.page_index)) {
        why = "gindex " + std::to_string(gindex) + " is not page " +
              std::to_string(proof.page_index) + "'s";
      } else if (!verify_page_proof(proof, root, digest)) {
        why = "the branch does not fold to the root";
      }
      if (!why.empty()) {
        std::printf("invalid: %s\n", why.c_str());
        check_stdout();
        throw ValidationFailure(name + ": proof is invalid: " + why);
      }
      std::printf("valid: page %llu of %s (%s)\n",
                  static_cast<unsigned long long>(proof.page_index), to_hex(root).c_str(),
                  to_string(digest));
    });
  }
  {
    struct Options {
      std::string a, b;
      std::uint64_t max_memory = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand("diff",
                                       "Print the page indices at which two caps differ, one per "
                                       "line (a size line first if sizes differ); "
                                       "exit 0 when equal, 1 when different, 2 on error");
    cmd->add_option("A", o->a, "raw file or snapshot archive")->required();
    cmd->add_option("B", o->b, "raw file or snapshot archive")->required();
    add_u64_option(*cmd, "--max-memory", o->max_memory,
                   "memory allowed per input (default 64 MiB + 64 × its size)");
    cmd->preparse_callback([](std::size_t) { set_runtime_error_exit(EXIT_USAGE_ERROR); });
    cmd->callback([o] {
      const Input a = open_input(o->a, 0, o->max_memory);
      const Input b = open_input(o->b, 0, o->max_memory);
      // Loaded pages compare by content under any digest; Missing pages only by their hashes,
      // which are meaningful under their archive's digest alone.
      Digest digest = a.archive ? a.digest : b.archive ? b.digest : Digest::sha256;
      if (a.archive && b.archive && a.digest != b.digest) {
        if (a.has_missing || b.has_missing) {
          throw InvalidArgument("cannot compare " + o->a + " (" + to_string(a.digest) + ") with " +
                                o->b + " (" + to_string(b.digest) +
                                "): Missing pages are known only by hashes of different digests");
        }
        digest = Digest::sha256;
      }
      bool differ = false;
      if (a.cap.content_len() != b.cap.content_len()) {
        differ = true;
        std::printf("size %llu %llu\n", static_cast<unsigned long long>(a.cap.content_len()),
                    static_cast<unsigned long long>(b.cap.content_len()));
      }
      std::string out;
      for (const std::uint64_t p : diff_pages(a.cap, b.cap, digest)) {
        differ = true;
        out += std::to_string(p);
        out += '\n';
        if (out.size() > (1 << 16)) {
          std::fputs(out.c_str(), stdout);
          out.clear();
        }
      }
      std::fputs(out.c_str(), stdout);
      if (differ) throw Difference();
    });
  }
}

}  // namespace datacap::cli
