// datacap store put FILE... --db DIR [--size BYTES]   prints each file's cap root once it is saved
// datacap store get ROOT --db DIR -o FILE              writes the saved cap's bytes (full size)
// datacap store ls --db DIR                            one line per saved cap: root size pages
// datacap store gc --db DIR --keep ROOT...             keeps those caps, drops everything else
// datacap store verify --db DIR                        checks records and pages; exit 1 if damaged
//
// put and get stream, whatever the file's size: put holds at most two batches of
// PageStore::SAVE_BATCH_PAGES pages (128 MiB each), get one of PageStore::EXPORT_BATCH_PAGES
// (16 MiB), and both the page table (36 bytes per non-zero page).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/output_file.hpp"
#include "cli/process.hpp"
#include "cli/progress.hpp"
#include "datacap/datacap.hpp"

namespace datacap::cli {
namespace {

// The cap size `datacap root FILE --size S` uses: max(len, S) rounded up to a page, ≥ 1 page.
std::uint64_t cap_size(std::uint64_t len, std::uint64_t size, const std::string& path) {
  const std::uint64_t wanted = std::max(len, size);
  const std::uint64_t pages =
      std::max<std::uint64_t>(1, wanted / PAGE_SIZE + (wanted % PAGE_SIZE != 0 ? 1 : 0));
  if (pages > MAX_PAGE_COUNT) {
    throw OutOfRange(path + ": size " + std::to_string(wanted) + " is beyond 2^32 pages");
  }
  return pages * PAGE_SIZE;
}

// Every input is streamed and each page copied once into a page of our own, which is hashed
// and stored: the bytes stored are exactly the bytes hashed, even if the file is rewritten
// meanwhile (a mapped file read twice, once to hash and once to store, could store a page under
// a root its bytes do not have, and the store keeps a page per root for good).
Hash32 put_file(PageStore& store, const std::string& path, std::uint64_t size) {
  PageStore::CapWriter writer(store);
  Progress progress("store put", input_size_hint(path));
  std::uint64_t next_page = 0;
  FilePageSink sink;
  sink.on_pages = [&](std::span<const std::uint8_t> bytes) {
    for (std::size_t at = 0; at < bytes.size(); at += PAGE_SIZE) {
      const auto page = bytes.subspan(at, std::min<std::size_t>(PAGE_SIZE, bytes.size() - at));
      writer.add_page(next_page++, PageRef::copy_of(page));
    }
  };
  sink.on_zero_pages = [&](std::uint64_t n) { next_page += n; };
  sink.on_progress = [&](std::uint64_t done, std::uint64_t) { progress.update(done); };
  const std::uint64_t len = stream_file_pages(path, sink);
  progress.finish();
  return writer.finish(cap_size(len, size, path));
}

// Commands that only read open the store read-only: they work on a store the user may only
// read, and cannot change it by accident. A memory fault inside LMDB (a store damaged where LMDB
// cannot see it) is reported by the fault handler naming the store.
// A cap root given on the command line; anything but 64 hex characters is a usage error.
Hash32 root_argument(const std::string& hex, const std::string& what) {
  try {
    return hash_from_hex(hex);
  } catch (const InvalidArgument&) {
    throw InvalidArgument(what + ": '" + hex + "' is not a cap root (64 hex characters)");
  }
}

enum class Access { read, write, create };
std::unique_ptr<PageStore> open_store(const std::string& db, Access access) {
  set_fault_context("store " + db);
  const bool read_only = access == Access::read;
  LmdbOptions options;
  options.create = access == Access::create;
  options.read_only = read_only;
  return open_lmdb_store(db, options);
}

const char* kind_name(StoreProblem::Kind kind) {
  switch (kind) {
    case StoreProblem::Kind::bad_page:
      return "bad page";
    case StoreProblem::Kind::bad_cap:
      return "bad cap";
    case StoreProblem::Kind::damaged_refs:
      return "cap with bad pages";
    case StoreProblem::Kind::bad_tree:
      return "damaged LMDB structure";
  }
  return "problem";
}

}  // namespace

void add_store_commands(CLI::App& app) {
  CLI::App* store =
      app.add_subcommand("store", "A content-addressed page store (LMDB) of saved caps");
  store->require_subcommand(1);
  {
    struct Options {
      std::vector<std::string> files;
      std::string db;
      std::uint64_t size = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd =
        store->add_subcommand("put", "Save each FILE as a cap; print its root when it is saved");
    cmd->add_option("FILE", o->files, "input files; '-' reads standard input")->required();
    cmd->add_option("--db", o->db, "store directory (created if absent)")->required();
    add_u64_option(
        *cmd, "--size", o->size,
        "cap size in bytes: the larger of this and each file's length, rounded up to a page");
    cmd->callback([o] {
      check_size_option(o->size);
      const std::unique_ptr<PageStore> s = open_store(o->db, Access::create);
      // LMDB asserts (aborts) when a write descends into a damaged tree page: walk them first.
      s->check_structure();
      for (const std::string& file : o->files) {
        const Hash32 root = put_file(*s, file, o->size);
        // Printed only after the record is committed: a printed root is a saved cap. A root
        // that could not be printed is an error at once, naming it (the cap is saved).
        std::printf("%s\n", to_hex(root).c_str());
        try {
          check_stdout();
        } catch (const IoError& e) {
          throw IoError("<stdout>", file + " was saved as cap " + to_hex(root) +
                                        " but its root could not be printed: " + e.what());
        }
      }
    });
  }
  {
    struct Options {
      std::string root, db, out;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd =
        store->add_subcommand("get", "Write the cap saved under ROOT to FILE (its full size)");
    cmd->add_option("ROOT", o->root, "cap root, 64 hex characters")->required();
    cmd->add_option("--db", o->db, "store directory")->required();
    cmd->add_option("-o,--output", o->out, "file to write")->required();
    cmd->callback([o] {
      const std::vector<std::string> store_files = {o->db + "/data.mdb", o->db + "/lock.mdb",
                                                    o->db + "/datacap.lock"};
      OutputFile::check_path(o->out, store_files);
      const Hash32 root = root_argument(o->root, "ROOT");
      const std::unique_ptr<PageStore> s = open_store(o->db, Access::read);
      s->check_structure();  // LMDB then follows only checked pointers
      const SavedCap info = s->saved_cap(root);
      OutputFile out(o->out, store_files);
      Progress progress("store get", info.content_len);
      s->export_cap(root, [&](std::uint64_t page_index, const PageSlot& slot) {
        if (slot.is_missing()) {
          throw MissingPage(o->db + ": cap " + to_hex(root), static_cast<std::uint32_t>(page_index),
                            slot.missing_hash());
        }
        out.write_at(page_index * PAGE_SIZE, slot.page().data(), PAGE_SIZE);
        progress.update(page_index * PAGE_SIZE);
      });
      progress.finish();
      out.finish(info.content_len);
    });
  }
  {
    auto db = std::make_shared<std::string>();
    CLI::App* cmd =
        store->add_subcommand("ls", "List saved caps: root, size in bytes, non-empty pages");
    cmd->add_option("--db", *db, "store directory")->required();
    cmd->callback([db] {
      const std::unique_ptr<PageStore> s = open_store(*db, Access::read);
      for (const SavedCap& c : s->list_caps()) {
        std::printf("%s %llu %llu\n", to_hex(c.root).c_str(),
                    static_cast<unsigned long long>(c.content_len),
                    static_cast<unsigned long long>(c.page_entries));
      }
      check_stdout();  // the count goes to stderr only when the list went out whole
      std::fprintf(stderr, "%llu pages stored\n", static_cast<unsigned long long>(s->page_count()));
    });
  }
  {
    auto db = std::make_shared<std::string>();
    CLI::App* cmd = store->add_subcommand("verify",
                                          "Check every cap record and page of a store against its "
                                          "key; exit 0 only if none is damaged");
    cmd->add_option("--db", *db, "store directory")->required();
    cmd->callback([db] {
      const std::unique_ptr<PageStore> s = open_store(*db, Access::read);
      const StoreVerifyReport r = s->verify();
      for (const StoreProblem& p : r.problems)
        std::printf("%s: %s\n", kind_name(p.kind), p.message.c_str());
      if (r.problem_count > r.problems.size()) {
        std::printf("... and %llu more problems\n",
                    static_cast<unsigned long long>(r.problem_count - r.problems.size()));
      }
      std::printf(
          "%llu caps, %llu pages: %llu bad caps, %llu bad pages, %llu references to bad pages, "
          "%llu damaged LMDB structures; %llu references to pages not stored (in %llu caps; "
          "Missing "
          "pages or lost ones)\n",
          static_cast<unsigned long long>(r.caps), static_cast<unsigned long long>(r.pages),
          static_cast<unsigned long long>(r.bad_caps), static_cast<unsigned long long>(r.bad_pages),
          static_cast<unsigned long long>(r.damaged_page_refs),
          static_cast<unsigned long long>(r.bad_trees),
          static_cast<unsigned long long>(r.absent_page_refs),
          static_cast<unsigned long long>(r.caps_with_absent_pages));
      if (r.damaged()) {
        check_stdout();
        throw ValidationFailure(*db + ": the store is damaged (" + std::to_string(r.problem_count) +
                                " problems listed above)");
      }
    });
  }
  {
    struct Options {
      std::string db;
      std::vector<std::string> keep;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = store->add_subcommand(
        "gc", "Keep the named caps and their pages; remove every other cap and page");
    cmd->add_option("--db", o->db, "store directory")->required();
    cmd->add_option("--keep", o->keep,
                    "cap roots to keep (at least one; every other cap is removed)")
        ->required();
    cmd->callback([o] {
      std::vector<Hash32> keep;
      for (const std::string& hex : o->keep) keep.push_back(root_argument(hex, "--keep"));
      const std::unique_ptr<PageStore> s = open_store(o->db, Access::write);
      const GcReport r = s->gc(keep);
      std::printf("kept %llu caps, %llu pages; removed %llu caps, %llu pages\n",
                  static_cast<unsigned long long>(r.caps_kept),
                  static_cast<unsigned long long>(r.pages_kept),
                  static_cast<unsigned long long>(r.caps_removed),
                  static_cast<unsigned long long>(r.pages_removed));
    });
  }
}

}  // namespace datacap::cli
