// datacap pack IN -o OUT [--size BYTES]      file → archive (streamed: any size, bounded memory)
// datacap unpack ARCHIVE -o OUT              archive → the effective bytes, full size
// datacap info ARCHIVE                       JSON: root, size, page_count, stored_pages, …
// datacap verify ARCHIVE                     exit 0 only when structure and every hash check out
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.hpp"
#include "cli/file_source.hpp"
#include "cli/output_file.hpp"
#include "cli/progress.hpp"
#include "datacap/datacap.hpp"

namespace datacap::cli {
namespace {

void print_info_json(const ArchiveInfo& info, bool verified) {
  std::printf(
      "{\"root\": \"%s\", \"digest\": \"%s\", \"size\": %llu, \"page_count\": %llu, "
      "\"stored_pages\": %llu, \"unique_pages\": %llu, \"missing_pages\": %llu, "
      "\"dirty_pages\": %llu, \"file_size\": %llu, \"verified\": %s}\n",
      to_hex(info.root).c_str(), to_string(info.digest), static_cast<unsigned long long>(info.content_len),
      static_cast<unsigned long long>(info.page_count), static_cast<unsigned long long>(info.stored_pages),
      static_cast<unsigned long long>(info.unique_pages), static_cast<unsigned long long>(info.missing_pages),
      static_cast<unsigned long long>(info.dirty_pages), static_cast<unsigned long long>(info.file_size),
      verified ? "true" : "false");
}

// Writes the effective bytes of `cap` to `path`, full size; Empty pages become holes.
void write_effective_bytes(const DataCap& cap, const std::string& path) {
  OutputFile out(path);
  Progress progress("unpack", cap.content_len());
  std::vector<std::uint32_t> pages;
  cap.backing().for_each_stored([&](std::uint32_t i, const PageSlot&) { pages.push_back(i); });
  cap.for_each_dirty([&](std::uint32_t i, const PageSlot&) { pages.push_back(i); });
  std::sort(pages.begin(), pages.end());
  pages.erase(std::unique(pages.begin(), pages.end()), pages.end());
  for (std::uint32_t i : pages) {
    const PageResolution r = cap.page_at(std::uint64_t{i} * PAGE_SIZE);
    if (r.kind == PageResolution::Kind::missing) throw MissingPage("unpack", i, r.missing_hash);
    if (r.kind == PageResolution::Kind::zero) continue;
    out.write_at(std::uint64_t{i} * PAGE_SIZE, r.data, PAGE_SIZE);
    progress.update(std::uint64_t{i} * PAGE_SIZE);
  }
  out.finish(cap.content_len());
}

}  // namespace

void add_archive_commands(CLI::App& app) {
  {
    struct Options {
      std::string in, out, digest = "sha256";
      std::uint64_t size = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand("pack", "Write FILE as a snapshot archive (streamed; any size)");
    cmd->add_option("IN", o->in, "input file; '-' reads standard input")->required();
    cmd->add_option("-o,--output", o->out, "archive to write")->required();
    cmd->add_option("--size", o->size, "logical size in bytes (at least the input's length)");
    cmd->add_option("--digest", o->digest, "sha256 (default) or blake2b256")->check(CLI::IsMember({"sha256", "blake2b256"}));
    cmd->callback([o] {
      ArchiveWriter writer(o->out, parse_digest(o->digest));
      Progress progress("pack", input_size_hint(o->in));
      PageStreamCallbacks cb;
      cb.on_pages = [&](std::span<const std::uint8_t> pages) { writer.append_pages(pages); };
      cb.on_zero_pages = [&](std::uint64_t n) { writer.append_zero_pages(n); };
      cb.on_progress = [&](std::uint64_t done, std::uint64_t) { progress.update(done); };
      const std::uint64_t len = stream_pages(o->in, cb);
      progress.finish();
      const ArchiveInfo info = writer.finish(std::max(len, o->size));
      print_info_json(info, true);
    });
  }
  {
    struct Options {
      std::string archive, out;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand("unpack", "Write an archive's effective bytes (full size) to OUT");
    cmd->add_option("ARCHIVE", o->archive)->required();
    cmd->add_option("-o,--output", o->out, "file to write")->required();
    cmd->callback([o] { write_effective_bytes(open_archive(o->archive, ArchiveVerify::full).cap, o->out); });
  }
  {
    auto path = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("info", "Describe an archive as JSON (structure checked; content not hashed)");
    cmd->add_option("ARCHIVE", *path)->required();
    cmd->callback([path] { print_info_json(open_archive(*path, ArchiveVerify::structure).info, false); });
  }
  {
    auto path = std::make_shared<std::string>();
    CLI::App* cmd = app.add_subcommand("verify", "Check an archive's structure and every hash; exit 0 only if all hold");
    cmd->add_option("ARCHIVE", *path)->required();
    cmd->callback([path] {
      const ArchiveInfo info = verify_archive(*path);
      std::printf("ok %s\n", to_hex(info.root).c_str());
    });
  }
}

}  // namespace datacap::cli
