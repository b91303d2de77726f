// datacap root FILE [--size BYTES] [--digest sha256|blake2b256]
// datacap root --archive ARCHIVE
//
// Prints the cap root of from_bytes_sized(FILE, BYTES) as 64 lowercase hex characters on the
// first line of standard output. Streams the input: memory stays bounded whatever its size.
#include <cstdio>
#include <string>

#include "cli/commands.hpp"
#include "cli/process.hpp"
#include "cli/progress.hpp"
#include "datacap/archive.hpp"
#include "datacap/error.hpp"
#include "datacap/hash.hpp"
#include "datacap/merkle.hpp"

namespace datacap::cli {

Digest archive_digest_or_refuse(const ArchiveInfo& info, const CLI::Option* digest_option,
                                const std::string& digest, const std::string& path) {
  if (digest_option->count() > 0 && parse_digest(digest) != info.digest) {
    throw InvalidArgument("--digest " + digest + " contradicts " + path +
                          ", an archive of digest " + to_string(info.digest) +
                          " (its root and page hashes are " + to_string(info.digest) + ")");
  }
  return info.digest;
}

void add_root_command(CLI::App& app) {
  struct Options {
    std::string path;
    std::uint64_t size = 0;
    std::string digest = "sha256";
    bool archive = false;
    std::uint64_t max_memory = 0;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "root", "Print the cap root of FILE (from_bytes_sized(FILE, --size)) as 64 hex characters");
  cmd->add_option("FILE", opts->path, "input file; '-' reads standard input")->required();
  add_u64_option(
      *cmd, "--size", opts->size,
      "cap size in bytes: the larger of this and the input's length, rounded up to a page");
  CLI::Option* digest = cmd->add_option("--digest", opts->digest,
                                        "sha256 (default) or blake2b256 (archives: their own)")
                            ->check(CLI::IsMember({"sha256", "blake2b256"}));
  cmd->add_flag(
      "--archive", opts->archive,
      "FILE is a snapshot archive: print the root of its (flushed) cap after verifying it");
  add_u64_option(*cmd, "--max-memory", opts->max_memory,
                 "archives: memory allowed for the tables (default 64 MiB + 64 × the file's size)");
  cmd->callback([opts, digest] {
    check_size_option(opts->size);
    if (opts->archive) {
      const ArchiveReader reader = open_archive_reader(opts->path, opts->max_memory);
      (void)archive_digest_or_refuse(reader.info(), digest, opts->digest, opts->path);
      if (opts->size > reader.info().content_len) {
        throw InvalidArgument("--size cannot grow " + opts->path + ", an archived cap of " +
                              std::to_string(reader.info().content_len) + " bytes");
      }
      reader.verify();
      std::printf("%s\n", to_hex(reader.info().root).c_str());
      return;
    }
    CapRootBuilder builder(parse_digest(opts->digest));
    Progress progress("root", input_size_hint(opts->path));
    FilePageSink sink;
    sink.on_pages = [&](std::span<const std::uint8_t> pages) { builder.append_pages(pages); };
    sink.on_zero_pages = [&](std::uint64_t n) { builder.append_zero_pages(n); };
    sink.on_progress = [&](std::uint64_t done, std::uint64_t) { progress.update(done); };
    const std::uint64_t len = stream_file_pages(opts->path, sink);
    progress.finish();
    const Hash32 root = builder.finish(std::max(len, opts->size));
    std::printf("%s\n", to_hex(root).c_str());
  });
}

}  // namespace datacap::cli
