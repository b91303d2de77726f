// datacap root FILE [--size BYTES] [--digest sha256|blake2b256]
//
// Prints the cap root of from_bytes_sized(FILE, BYTES) as 64 lowercase hex characters on the
// first line of standard output. Streams the input: memory stays bounded whatever its size.
#include <cstdio>
#include <string>

#include "cli/commands.hpp"
#include "cli/file_source.hpp"
#include "cli/progress.hpp"
#include "datacap/archive.hpp"
#include "datacap/error.hpp"
#include "datacap/hash.hpp"

namespace datacap::cli {

void add_root_command(CLI::App& app) {
  struct Options {
    std::string path;
    std::uint64_t size = 0;
    std::string digest = "sha256";
    bool archive = false;
  };
  auto opts = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "root", "Print the cap root of FILE (from_bytes_sized(FILE, --size)) as 64 hex characters");
  cmd->add_option("FILE", opts->path, "input file; '-' reads standard input")->required();
  cmd->add_option("--size", opts->size,
                  "logical size in bytes (at least the file's length; rounded up to a page)");
  cmd->add_option("--digest", opts->digest, "sha256 (default) or blake2b256")
      ->check(CLI::IsMember({"sha256", "blake2b256"}));
  cmd->add_flag("--archive", opts->archive,
                "FILE is a snapshot archive: print the root of its (flushed) cap after verifying it");
  cmd->callback([opts] {
    if (opts->archive) {
      const OpenedArchive a = open_archive(opts->path, ArchiveVerify::full);
      std::uint64_t size = a.cap.content_len();
      if (opts->size > size) {
        throw InvalidArgument("root --archive: --size cannot grow an archived cap (" + std::to_string(size) + " bytes)");
      }
      std::printf("%s\n", to_hex(a.cap.flush().hash_tree_root(parse_digest(opts->digest))).c_str());
      return;
    }
    CapRootBuilder builder(parse_digest(opts->digest));
    Progress progress("root", input_size_hint(opts->path));
    PageStreamCallbacks callbacks;
    callbacks.on_pages = [&](std::span<const std::uint8_t> pages) { builder.append_pages(pages); };
    callbacks.on_zero_pages = [&](std::uint64_t n) { builder.append_zero_pages(n); };
    callbacks.on_progress = [&](std::uint64_t done, std::uint64_t) { progress.update(done); };
    const std::uint64_t len = stream_pages(opts->path, callbacks);
    progress.finish();
    const Hash32 root = builder.finish(std::max(len, opts->size));
    std::printf("%s\n", to_hex(root).c_str());
  });
}

}  // namespace datacap::cli
