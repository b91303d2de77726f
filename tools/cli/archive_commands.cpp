// datacap pack IN -o OUT [--size BYTES]      file → archive (streamed: any size, bounded memory)
// datacap unpack ARCHIVE -o OUT              archive → the effective bytes, full size
// datacap info ARCHIVE                       JSON: root, size, page counts, …
// datacap verify ARCHIVE                     exit 0 only when structure and every hash check out
//
// Archives are read through ArchiveReader: never mapped, never turned into a tree, each byte
// checked against its hash right before it is used.
#include <unistd.h>

#include <cstdio>
#include <string>

#include "cli/commands.hpp"
#include "cli/output_file.hpp"
#include "cli/process.hpp"
#include "cli/progress.hpp"
#include "datacap/datacap.hpp"

namespace datacap::cli {
namespace {

void print_info_json(const ArchiveInfo& info, bool verified) {
  std::printf(
      "{\"root\": \"%s\", \"digest\": \"%s\", \"size\": %llu, \"page_count\": %llu, "
      "\"stored_pages\": %llu, \"unique_pages\": %llu, \"missing_pages\": %llu, "
      "\"dirty_pages\": %llu, \"flushed_loaded_pages\": %llu, \"flushed_missing_pages\": %llu, "
      "\"file_size\": %llu, \"verified\": %s}\n",
      to_hex(info.root).c_str(), to_string(info.digest),
      static_cast<unsigned long long>(info.content_len),
      static_cast<unsigned long long>(info.page_count),
      static_cast<unsigned long long>(info.stored_pages),
      static_cast<unsigned long long>(info.unique_pages),
      static_cast<unsigned long long>(info.missing_pages),
      static_cast<unsigned long long>(info.dirty_pages),
      static_cast<unsigned long long>(info.flushed_loaded_pages),
      static_cast<unsigned long long>(info.flushed_missing_pages),
      static_cast<unsigned long long>(info.file_size), verified ? "true" : "false");
}

void add_max_memory(CLI::App& cmd, std::uint64_t& value) {
  add_u64_option(cmd, "--max-memory", value,
                 "memory allowed for the archive's tables (default 64 MiB + 64 × its size)");
}

}  // namespace

void add_archive_commands(CLI::App& app) {
  {
    struct Options {
      std::string in, out, digest = "sha256";
      std::uint64_t size = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd =
        app.add_subcommand("pack", "Write FILE as a snapshot archive (streamed; any size)");
    cmd->add_option("IN", o->in, "input file; '-' reads standard input")->required();
    cmd->add_option("-o,--output", o->out,
                    "archive to write (a regular file: written beside it and renamed into place)")
        ->required();
    add_u64_option(
        *cmd, "--size", o->size,
        "cap size in bytes: the larger of this and the input's length, rounded up to a page");
    cmd->add_option("--digest", o->digest, "sha256 (default) or blake2b256")
        ->check(CLI::IsMember({"sha256", "blake2b256"}));
    cmd->callback([o] {
      OutputFile::check_path(o->out, {o->in});
      check_size_option(o->size);
      ArchiveWriter writer(o->out, parse_digest(o->digest));
      set_pending_temp(writer.temp_path());
      Progress progress("pack", input_size_hint(o->in));
      FilePageSink sink;
      sink.on_pages = [&](std::span<const std::uint8_t> pages) { writer.append_pages(pages); };
      sink.on_zero_pages = [&](std::uint64_t n) { writer.append_zero_pages(n); };
      sink.on_progress = [&](std::uint64_t done, std::uint64_t) { progress.update(done); };
      const std::uint64_t len = stream_file_pages(o->in, sink);
      progress.finish();
      const ArchiveInfo info = writer.finish(std::max(len, o->size));
      set_pending_temp("");
      // The archive is in place (renamed when complete) before its info is printed; info that
      // cannot be printed is an error saying so, as `store put` says a cap was saved.
      print_info_json(info, true);
      try {
        check_stdout();
      } catch (const IoError& e) {
        throw IoError("<stdout>", o->out + " was written (root " + to_hex(info.root) +
                                      ") but its info could not be printed: " + e.what());
      }
    });
  }
  {
    struct Options {
      std::string archive, out;
      std::uint64_t max_memory = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand(
        "unpack", "Verify an archive, then write its effective bytes (full size) to OUT");
    cmd->add_option("ARCHIVE", o->archive)->required();
    cmd->add_option("-o,--output", o->out, "file to write")->required();
    add_max_memory(*cmd, o->max_memory);
    cmd->callback([o] {
      OutputFile::check_path(o->out, {o->archive});
      const ArchiveReader reader = open_archive_reader(o->archive, o->max_memory);
      const ArchiveInfo& info = reader.info();
      if (info.flushed_missing_pages != 0) {
        reader.for_each_page(
            [](std::uint64_t, const std::uint8_t*) {});  // throws MissingPage naming the first
      }
      reader.verify();
      OutputFile out(o->out, {o->archive});
      Progress progress("unpack", info.content_len);
      // Each page is read and checked against its (verified) hash again right before it is
      // written: the bytes written are the bytes checked, whatever happens to the file.
      reader.for_each_page([&](std::uint64_t index, const std::uint8_t* page) {
        out.write_at(index * PAGE_SIZE, page, PAGE_SIZE);
        progress.update(index * PAGE_SIZE);
      });
      progress.finish();
      out.finish(info.content_len);
    });
  }
  {
    struct Options {
      std::string path;
      std::uint64_t max_memory = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand(
        "info", "Describe an archive as JSON (structure checked; content not hashed)");
    cmd->add_option("ARCHIVE", o->path)->required();
    add_max_memory(*cmd, o->max_memory);
    cmd->callback(
        [o] { print_info_json(open_archive_reader(o->path, o->max_memory).info(), false); });
  }
  {
    struct Options {
      std::string path;
      std::uint64_t max_memory = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = app.add_subcommand(
        "verify", "Check an archive's structure and every hash; exit 0 only if all hold");
    cmd->add_option("ARCHIVE", o->path)->required();
    add_max_memory(*cmd, o->max_memory);
    cmd->callback([o] {
      const ArchiveReader reader = open_archive_reader(o->path, o->max_memory);
      reader.verify();
      std::printf("ok %s\n", to_hex(reader.info().root).c_str());
    });
  }
}

}  // namespace datacap::cli
