// datacap store put FILE... --db URL [--size BYTES]   prints each file's cap root once it is saved
// datacap store get ROOT --db URL -o FILE              writes the saved cap's bytes (full size)
// datacap store ls --db URL                            one line per saved cap: root size pages
// datacap store gc --db URL --keep ROOT...             keeps those caps, drops everything else
// datacap store verify --db URL                        checks records and pages; exit 1 if damaged
//
// URL: a directory or lmdb:DIR (the embedded LMDB store), or
// redis://[user[:password]@]host:port[,host:port...] (a Redis server or cluster). Every command
// also takes --cache DIR: an LMDB store used as a local tier in front of the --db store.
//
// put and get stream, whatever the file's size: put holds at most two batches of
// PageStore::SAVE_BATCH_PAGES pages (128 MiB each), get two of PageStore::EXPORT_BATCH_PAGES
// (16 MiB each: one checked while the next is fetched), and both the page table (36 bytes per
// non-zero page).
#include <fcntl.h>
#include <sys/stat.h>
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

// A cap root given on the command line; anything but 64 hex characters is a usage error.
Hash32 root_argument(const std::string& hex, const std::string& what) {
  try {
    return hash_from_hex(hex);
  } catch (const InvalidArgument&) {
    throw InvalidArgument(what + ": '" + hex + "' is not a cap root (64 hex characters)");
  }
}

// Where --db and --cache point.
struct StoreLocation {
  std::string db;     // as given
  std::string cache;  // empty: no local tier
};

bool is_redis_url(const std::string& db) { return db.rfind("redis://", 0) == 0; }

// The LMDB directory a --db names (a plain path or lmdb:PATH); empty for a Redis URL. Anything
// else that starts like a URL ("rediss://", "redis:/h") is refused rather than taken for a
// directory name and created.
std::string lmdb_directory(const std::string& db) {
  if (is_redis_url(db)) return {};
  if (db.rfind("lmdb:", 0) == 0) return db.substr(5);
  const std::size_t colon = db.find(':');
  const std::size_t slash = db.find('/');
  if (colon != std::string::npos && colon > 0 && (slash == std::string::npos || colon < slash)) {
    throw InvalidArgument("--db: '" + db.substr(0, colon + 1) +
                          "' is not a store kind (a directory, lmdb:DIR or redis://HOST:PORT; "
                          "write ./" +
                          db + " for a directory whose name has a colon)");
  }
  return db;
}

// The URL without its password, for messages and the fault handler. The password ends at the
// last '@' (it may hold '@' itself, as the URL parser allows).
std::string shown_url(const std::string& db) {
  if (!is_redis_url(db)) return db;
  const std::size_t at = db.rfind('@');
  const std::size_t colon = db.find(':', 8);
  if (at == std::string::npos || colon == std::string::npos || colon > at) return db;
  return db.substr(0, colon) + ":***" + db.substr(at);
}

// Files of the LMDB stores involved, which `get -o` must never overwrite.
std::vector<std::string> store_files(const StoreLocation& where) {
  std::vector<std::string> files;
  for (const std::string& dir : {lmdb_directory(where.db), where.cache}) {
    if (dir.empty()) continue;
    for (const char* name : {"/data.mdb", "/lock.mdb", "/datacap.lock"})
      files.push_back(dir + name);
  }
  return files;
}

// Commands that only read open an LMDB --db read-only: they work on a store the user may only
// read, and cannot change it by accident (a Redis store has no such mode; the --cache tier is
// written by reads, so always opened for writing). A memory fault inside LMDB (a store damaged
// where LMDB cannot see it) is reported by the fault handler naming the stores.
enum class Access { read, write, create };
std::unique_ptr<PageStore> open_store(const StoreLocation& where, Access access) {
  set_fault_context("store " + shown_url(where.db) +
                    (where.cache.empty() ? "" : " (cache " + where.cache + ")"));
  std::unique_ptr<PageStore> store;
  if (is_redis_url(where.db)) {
    store = open_redis_store(where.db);
  } else {
    const std::string dir = lmdb_directory(where.db);
    if (dir.empty()) throw InvalidArgument("--db: '" + where.db + "' names no store");
    LmdbOptions options;
    options.create = access == Access::create;
    options.read_only = access == Access::read;
    store = open_lmdb_store(dir, options);
  }
  if (where.cache.empty()) return store;
  // The local tier is written by reads too (it keeps what they fetch), so it is always opened
  // for writing, and created when absent.
  // One LMDB environment opened twice in a process breaks LMDB's locks, and gc would wait on
  // its own lock file: the cache must be another directory than --db (checked before it is
  // opened; a cache that does not exist yet cannot be it).
  const std::string dir = lmdb_directory(where.db);
  struct stat db_stat {};
  struct stat cache_stat {};
  if (!dir.empty() && ::stat(dir.c_str(), &db_stat) == 0 &&
      ::stat(where.cache.c_str(), &cache_stat) == 0 && db_stat.st_dev == cache_stat.st_dev &&
      db_stat.st_ino == cache_stat.st_ino) {
    throw InvalidArgument("--cache: '" + where.cache + "' is the --db store itself");
  }
  return make_tiered_store(open_lmdb_store(where.cache), std::move(store));
}

void add_location_options(CLI::App& cmd, StoreLocation& where, const char* db_help) {
  cmd.add_option("--db", where.db, db_help)->required();
  cmd.add_option("--cache", where.cache,
                 "LMDB directory used as a local tier in front of --db (created if absent)");
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
  CLI::App* store = app.add_subcommand(
      "store", "A content-addressed page store of saved caps (LMDB, Redis, or both tiered)");
  store->require_subcommand(1);
  {
    struct Options {
      std::vector<std::string> files;
      StoreLocation where;
      std::uint64_t size = 0;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd =
        store->add_subcommand("put", "Save each FILE as a cap; print its root when it is saved");
    cmd->add_option("FILE", o->files, "input files; '-' reads standard input")->required();
    add_location_options(
        *cmd, o->where,
        "store: a directory (created if absent), lmdb:DIR or redis://HOST:PORT,...");
    add_u64_option(
        *cmd, "--size", o->size,
        "cap size in bytes: the larger of this and each file's length, rounded up to a page");
    cmd->callback([o] {
      check_size_option(o->size);
      const std::unique_ptr<PageStore> s = open_store(o->where, Access::create);
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
      std::string root, out;
      StoreLocation where;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd =
        store->add_subcommand("get", "Write the cap saved under ROOT to FILE (its full size)");
    cmd->add_option("ROOT", o->root, "cap root, 64 hex characters")->required();
    add_location_options(*cmd, o->where, "store: a directory, lmdb:DIR or redis://HOST:PORT,...");
    cmd->add_option("-o,--output", o->out, "file to write")->required();
    cmd->callback([o] {
      const std::vector<std::string> files = store_files(o->where);
      OutputFile::check_path(o->out, files);
      const Hash32 root = root_argument(o->root, "ROOT");
      const std::unique_ptr<PageStore> s = open_store(o->where, Access::read);
      s->check_structure();  // LMDB then follows only checked pointers
      const SavedCap info = s->saved_cap(root);
      if (info.content_len == 0) {
        // A raw file's cap has at least one page (from_bytes_sized): an empty file would read
        // back as another cap, under another root.
        throw IoError(o->out, "cap " + to_hex(root) +
                                  " has size 0 (the empty cap), which no raw file holds: a "
                                  "file's cap is at least one page");
      }
      OutputFile out(o->out, files);
      Progress progress("store get", info.content_len);
      s->export_cap(root, [&](std::uint64_t page_index, const PageSlot& slot) {
        if (slot.is_missing()) {
          throw MissingPage(s->name() + ": cap " + to_hex(root),
                            static_cast<std::uint32_t>(page_index), slot.missing_hash());
        }
        out.write_at(page_index * PAGE_SIZE, slot.page().data(), PAGE_SIZE);
        progress.update(page_index * PAGE_SIZE);
      });
      progress.finish();
      out.finish(info.content_len);
    });
  }
  {
    auto where = std::make_shared<StoreLocation>();
    CLI::App* cmd =
        store->add_subcommand("ls", "List saved caps: root, size in bytes, non-empty pages");
    add_location_options(*cmd, *where, "store: a directory, lmdb:DIR or redis://HOST:PORT,...");
    cmd->callback([where] {
      const std::unique_ptr<PageStore> s = open_store(*where, Access::read);
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
    auto where = std::make_shared<StoreLocation>();
    CLI::App* cmd = store->add_subcommand("verify",
                                          "Check every cap record and page of a store against its "
                                          "key; exit 0 only if none is damaged");
    add_location_options(*cmd, *where, "store: a directory, lmdb:DIR or redis://HOST:PORT,...");
    cmd->callback([where] {
      const std::unique_ptr<PageStore> s = open_store(*where, Access::read);
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
        throw ValidationFailure(s->name() + ": the store is damaged (" +
                                std::to_string(r.problem_count) + " problems listed above)");
      }
    });
  }
  {
    struct Options {
      StoreLocation where;
      std::vector<std::string> keep;
    };
    auto o = std::make_shared<Options>();
    CLI::App* cmd = store->add_subcommand(
        "gc", "Keep the named caps and their pages; remove every other cap and page");
    add_location_options(*cmd, o->where, "store: a directory, lmdb:DIR or redis://HOST:PORT,...");
    cmd->add_option("--keep", o->keep,
                    "cap roots to keep (at least one; every other cap is removed)")
        ->required();
    cmd->callback([o] {
      std::vector<Hash32> keep;
      for (const std::string& hex : o->keep) keep.push_back(root_argument(hex, "--keep"));
      const std::unique_ptr<PageStore> s = open_store(o->where, Access::write);
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
