// Archives (one cap per file, pages mapped without copying), raw files, and page stores (LMDB
// on disk, or in memory) with saved caps, gc and hydration. Every call here runs without the
// GIL once its arguments are converted.
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "datacap/archive.hpp"
#include "datacap/error.hpp"
#include "datacap/store.hpp"

namespace datacap_py {

namespace {

// The Python store objects: PageStore, and its subclasses LmdbStore and MemoryStore. A shared
// pointer, so that close() while another thread is inside a call (without the GIL) only drops
// this object's reference: the store is closed when the last call using it returns.
struct Store {
  std::shared_ptr<datacap::PageStore> store;
  std::string name;  // kept for messages after close()

  // REQUIRES: the GIL is held. Raises InvalidArgument once closed.
  [[nodiscard]] std::shared_ptr<datacap::PageStore> get() const {
    if (!store) throw datacap::InvalidArgument(name + ": the store is closed");
    return store;
  }
};
struct LmdbStore : Store {};
struct MemoryStore : Store {};

datacap::ArchiveVerify verify_of(const std::string& name) {
  if (name == "full") return datacap::ArchiveVerify::full;
  if (name == "structure") return datacap::ArchiveVerify::structure;
  throw datacap::InvalidArgument("open_archive: verify must be 'full' or 'structure', not '" +
                                 name + "'");
}

datacap::FileAccess access_of(const std::string& name) {
  if (name == "map") return datacap::FileAccess::map;
  if (name == "copy") return datacap::FileAccess::copy;
  throw datacap::InvalidArgument("open_archive: access must be 'map' or 'copy', not '" + name +
                                 "'");
}

const char* problem_kind(datacap::StoreProblem::Kind kind) {
  switch (kind) {
    case datacap::StoreProblem::Kind::bad_page:
      return "bad_page";
    case datacap::StoreProblem::Kind::bad_cap:
      return "bad_cap";
    case datacap::StoreProblem::Kind::damaged_refs:
      return "damaged_refs";
    case datacap::StoreProblem::Kind::bad_tree:
      return "bad_tree";
  }
  return "?";
}

datacap::HydrateReport hydrate_cap(Cap& cap, const Store& store,
                                   const std::optional<std::vector<std::uint64_t>>& indices) {
  const auto s = store.get();
  return mutate(cap, /*heavy=*/true, [&](datacap::DataCap& c) {
    return indices ? datacap::hydrate(c, *s, *indices) : datacap::hydrate(c, *s);
  });
}

const char* const HYDRATE_DOC =
    "Resolves the cap's Missing pages (all, or those in page_indices; others are ignored)\n"
    "from the store in one batch: every fetched page is checked against its hash first (a\n"
    "wrong page raises IntegrityError and nothing changes). Pages the store lacks stay\n"
    "Missing (counted in the report). Keeps the SHA-256 root. O(pages fetched · (PAGE_SIZE\n"
    "hash + L·64)), without the GIL.";

void register_archive(py::module_& m) {
  using datacap::ArchiveInfo;
  py::class_<ArchiveInfo>(m, "ArchiveInfo",
                          "What an archive holds: counts from its header and tables, and the\n"
                          "recorded root of the flushed cap.")
      .def_property_readonly(
          "digest", [](const ArchiveInfo& i) { return std::string(datacap::to_string(i.digest)); },
          "'sha256' or 'blake2b256': the digest of the recorded hashes and root.")
      .def_readonly("content_len", &ArchiveInfo::content_len)
      .def_readonly("page_count", &ArchiveInfo::page_count)
      .def_readonly("stored_pages", &ArchiveInfo::stored_pages,
                    "Loaded table entries (backing and overlay counted separately).")
      .def_readonly("unique_pages", &ArchiveInfo::unique_pages,
                    "Page payloads in the file (after deduplication).")
      .def_readonly("missing_pages", &ArchiveInfo::missing_pages)
      .def_readonly("dirty_pages", &ArchiveInfo::dirty_pages, "Overlay entries.")
      .def_readonly("flushed_loaded_pages", &ArchiveInfo::flushed_loaded_pages)
      .def_readonly("flushed_missing_pages", &ArchiveInfo::flushed_missing_pages)
      .def_readonly("file_size", &ArchiveInfo::file_size)
      .def_readonly("root", &ArchiveInfo::root, "The recorded root of the flushed cap.")
      .def("__repr__", [](const ArchiveInfo& i) {
        return "<datacap.ArchiveInfo content_len=" + std::to_string(i.content_len) +
               " unique_pages=" + std::to_string(i.unique_pages) +
               " root=" + datacap::to_hex(i.root) + ">";
      });

  m.def(
      "write_archive",
      [](const Cap& cap, const std::filesystem::path& path, const std::string& digest) {
        const auto d = digest_of(digest);
        const datacap::DataCap snap = cap.snapshot();
        py::gil_scoped_release release;
        return datacap::write_archive(snap, path.string(), d);
      },
      py::arg("cap"), py::arg("path"), py::arg("digest") = "sha256",
      "write_archive(cap, path, digest='sha256') -> ArchiveInfo\n\n"
      "Writes the cap (clean or dirty; zero pages elided, identical pages once, Missing pages\n"
      "as hashes) through a temporary file renamed into place: `path` is never half-written.\n"
      "O(stored pages), without the GIL. Raises IoError (also for a path that is a directory,\n"
      "FIFO or device), InvalidArgument for an empty path.");
  m.def(
      "open_archive",
      [](const std::filesystem::path& path, const std::string& verify, const std::string& access,
         std::uint64_t max_memory) {
        const datacap::ArchiveOpenOptions options{verify_of(verify), access_of(access), max_memory};
        datacap::DataCap cap = [&] {
          py::gil_scoped_release release;
          return datacap::open_archive(path.string(), options).cap;
        }();
        return std::make_unique<Cap>(std::move(cap));
      },
      py::arg("path"), py::kw_only(), py::arg("verify") = "full", py::arg("access") = "map",
      py::arg("max_memory") = 0,
      "open_archive(path, *, verify='full', access='map', max_memory=0) -> DataCap\n\n"
      "Opens an archive (untrusted input: the whole structure is checked first) as a cap.\n"
      "verify='full' hashes every page and the cap now (O(stored bytes)); 'structure' checks\n"
      "the layout only and each page when first hashed (a mismatch then raises DecodeError\n"
      "from e.g. hash_tree_root()). access='map' serves pages from a read-only mapping of the\n"
      "file, without copying (do not rewrite or truncate the file while the cap is in use);\n"
      "'copy' reads it once into private memory. max_memory (bytes, 0 = no limit) refuses an\n"
      "archive whose cap would need more. Without the GIL. Raises DecodeError, IoError,\n"
      "MemoryLimitExceeded, InvalidArgument (unknown verify/access).");
  m.def(
      "archive_info",
      [](const std::filesystem::path& path, std::uint64_t max_memory) {
        py::gil_scoped_release release;
        return datacap::ArchiveReader(path.string(), max_memory).info();
      },
      py::arg("path"), py::arg("max_memory") = 0,
      "archive_info(path, max_memory=0) -> ArchiveInfo\n\n"
      "An archive's header and table counts, its structure checked, no page read (the\n"
      "recorded root is not checked: see verify_archive). O(entries), without the GIL. Raises\n"
      "DecodeError, IoError, MemoryLimitExceeded.");
  m.def(
      "verify_archive",
      [](const std::filesystem::path& path) {
        py::gil_scoped_release release;
        return datacap::verify_archive(path.string());
      },
      py::arg("path"),
      "verify_archive(path) -> ArchiveInfo\n\n"
      "Checks everything: the structure, every payload against its recorded hash and the\n"
      "recorded root; builds no cap (memory: the tables plus 1 MiB). O(stored bytes), without\n"
      "the GIL. Raises DecodeError at the first problem, IoError.");
  m.def(
      "is_archive_file",
      [](const std::filesystem::path& path) { return datacap::is_archive_file(path.string()); },
      py::arg("path"),
      "is_archive_file(path) -> bool\n\n"
      "True when `path` is a regular file beginning with the archive magic (a sniff, not a\n"
      "check). Raises IoError when it cannot be opened.");
  m.def(
      "read_raw_file",
      [](const std::filesystem::path& path, std::uint64_t size, std::uint64_t max_memory) {
        datacap::DataCap cap = [&] {
          py::gil_scoped_release release;
          return datacap::read_raw_file(path.string(), size, max_memory);
        }();
        return std::make_unique<Cap>(std::move(cap));
      },
      py::arg("path"), py::arg("size") = 0, py::arg("max_memory") = 0,
      "read_raw_file(path, size=0, max_memory=0) -> DataCap\n\n"
      "A clean cap of a file's bytes, as from_bytes(file bytes, size) would build it, read once\n"
      "into pages of its own (holes and zero pages Empty). O(file bytes), without the GIL.\n"
      "Raises IoError, OutOfRange (over 2^32 pages), MemoryLimitExceeded.");
}

void register_store(py::module_& m) {
  using datacap::GcReport;
  using datacap::HydrateReport;
  using datacap::SavedCap;
  using datacap::StoreProblem;
  using datacap::StoreVerifyReport;

  py::class_<SavedCap>(m, "SavedCap", "What a store knows of one saved cap.")
      .def_readonly("root", &SavedCap::root, "The SHA-256 cap root (the key).")
      .def_readonly("content_len", &SavedCap::content_len)
      .def_readonly("page_entries", &SavedCap::page_entries, "Non-Empty pages in its table.")
      .def("__repr__", [](const SavedCap& s) {
        return "<datacap.SavedCap root=" + datacap::to_hex(s.root) +
               " content_len=" + std::to_string(s.content_len) +
               " page_entries=" + std::to_string(s.page_entries) + ">";
      });
  py::class_<GcReport>(m, "GcReport", "What PageStore.gc kept and removed.")
      .def_readonly("caps_kept", &GcReport::caps_kept)
      .def_readonly("caps_removed", &GcReport::caps_removed)
      .def_readonly("pages_kept", &GcReport::pages_kept)
      .def_readonly("pages_removed", &GcReport::pages_removed)
      .def("__repr__", [](const GcReport& r) {
        return "<datacap.GcReport caps_kept=" + std::to_string(r.caps_kept) +
               " caps_removed=" + std::to_string(r.caps_removed) +
               " pages_kept=" + std::to_string(r.pages_kept) +
               " pages_removed=" + std::to_string(r.pages_removed) + ">";
      });
  py::class_<HydrateReport>(m, "HydrateReport", "What hydrate resolved.")
      .def_readonly("hydrated", &HydrateReport::hydrated, "Missing pages now Loaded.")
      .def_readonly("still_missing", &HydrateReport::still_missing,
                    "Missing pages the store does not hold.")
      .def("__repr__", [](const HydrateReport& r) {
        return "<datacap.HydrateReport hydrated=" + std::to_string(r.hydrated) +
               " still_missing=" + std::to_string(r.still_missing) + ">";
      });
  py::class_<StoreProblem>(m, "StoreProblem", "One damage PageStore.verify() found.")
      .def_property_readonly(
          "kind", [](const StoreProblem& p) { return std::string(problem_kind(p.kind)); },
          "'bad_page', 'bad_cap', 'damaged_refs' or 'bad_tree'.")
      .def_readonly("root", &StoreProblem::root, "The page or cap root (zeros when none).")
      .def_readonly("message", &StoreProblem::message)
      .def("__repr__", [](const StoreProblem& p) {
        return "<datacap.StoreProblem " + std::string(problem_kind(p.kind)) + ": " + p.message +
               ">";
      });
  py::class_<StoreVerifyReport>(m, "StoreVerifyReport", "What PageStore.verify() read and found.")
      .def_readonly("caps", &StoreVerifyReport::caps)
      .def_readonly("pages", &StoreVerifyReport::pages)
      .def_readonly("bad_caps", &StoreVerifyReport::bad_caps)
      .def_readonly("bad_pages", &StoreVerifyReport::bad_pages)
      .def_readonly("damaged_page_refs", &StoreVerifyReport::damaged_page_refs)
      .def_readonly("absent_page_refs", &StoreVerifyReport::absent_page_refs)
      .def_readonly("caps_with_absent_pages", &StoreVerifyReport::caps_with_absent_pages)
      .def_readonly("bad_trees", &StoreVerifyReport::bad_trees)
      .def_readonly("problem_count", &StoreVerifyReport::problem_count)
      .def_readonly("problems", &StoreVerifyReport::problems, "The first 100 problems.")
      .def_property_readonly("damaged", &StoreVerifyReport::damaged)
      .def("__repr__", [](const StoreVerifyReport& r) {
        return "<datacap.StoreVerifyReport caps=" + std::to_string(r.caps) +
               " pages=" + std::to_string(r.pages) +
               " problems=" + std::to_string(r.problem_count) + ">";
      });

  py::class_<Store> s(m, "PageStore",
                      "A content-addressed page store: pages keyed by their SHA-256 page root\n"
                      "(identical pages stored once across every cap), and saved caps keyed by\n"
                      "their SHA-256 cap root. Bytes read back are checked against the root\n"
                      "they were fetched by (IntegrityError). Open one with LmdbStore(path) or\n"
                      "MemoryStore(). Every method may be called from any thread; they run\n"
                      "without the GIL. close() (or a with block) releases the store; methods\n"
                      "then raise InvalidArgument. Hashes are 32 bytes or 64 hex characters.");
  s.def(
      "put",
      [](const Store& self, const ReadBuffer& data) {
        const auto store = self.get();
        const datacap::PageRef page = datacap::PageRef::copy_of(data.bytes());
        py::gil_scoped_release release;
        return store->put(page);
      },
      py::arg("data"),
      "put(data) -> bytes\n\n"
      "Stores one page (`data` zero-padded to PAGE_SIZE) once per distinct content; returns\n"
      "its page root. Raises OutOfRange (over a page), InvalidArgument (read-only), IoError.");
  s.def(
      "get",
      [](const Store& self, const datacap::Hash32& root) -> py::object {
        const auto store = self.get();
        const datacap::PageRef page = [&] {
          py::gil_scoped_release release;
          return store->get(root);
        }();
        if (!page) return py::none();
        return py::bytes(reinterpret_cast<const char*>(page.data()), datacap::PAGE_SIZE);
      },
      py::arg("root"),
      "get(root) -> bytes | None\n\n"
      "The PAGE_SIZE bytes stored under a page root, as stored (not re-hashed), or None.");
  s.def(
      "has",
      [](const Store& self, const datacap::Hash32& root) {
        const auto store = self.get();
        py::gil_scoped_release release;
        return store->has(root);
      },
      py::arg("root"), "has(root) -> bool\n\nWhether a page is stored under this page root.");
  s.def(
      "page_count",
      [](const Store& self) {
        const auto store = self.get();
        py::gil_scoped_release release;
        return store->page_count();
      },
      "page_count() -> int\n\nPages stored (distinct contents).");
  s.def(
      "save_cap",
      [](const Store& self, const Cap& cap) {
        const auto store = self.get();
        const datacap::DataCap snap = cap.snapshot();
        py::gil_scoped_release release;
        return store->save_cap(snap);
      },
      py::arg("cap"),
      "save_cap(cap) -> bytes\n\n"
      "Saves a clean cap (its Loaded pages, then its record) and returns its SHA-256 cap root.\n"
      "Saving a cap already saved writes nothing. O(stored pages). Raises DirtyCap, IoError,\n"
      "InvalidArgument (read-only store).");
  s.def(
      "load_cap",
      [](const Store& self, const datacap::Hash32& root) {
        const auto store = self.get();
        datacap::DataCap cap = [&] {
          py::gil_scoped_release release;
          return store->load_cap(root);
        }();
        return std::make_unique<Cap>(std::move(cap));
      },
      py::arg("root"),
      "load_cap(root) -> DataCap\n\n"
      "The cap saved under `root`, every page checked against its recorded root and the whole\n"
      "against `root`; pages the store lacks come back Missing. O(stored pages). Raises\n"
      "NotFound, IntegrityError, DecodeError (a damaged record), IoError.");
  s.def(
      "has_cap",
      [](const Store& self, const datacap::Hash32& root) {
        const auto store = self.get();
        py::gil_scoped_release release;
        return store->has_cap(root);
      },
      py::arg("root"), "has_cap(root) -> bool\n\nWhether a cap is saved under this cap root.");
  s.def(
      "saved_cap",
      [](const Store& self, const datacap::Hash32& root) {
        const auto store = self.get();
        py::gil_scoped_release release;
        return store->saved_cap(root);
      },
      py::arg("root"),
      "saved_cap(root) -> SavedCap\n\nThe size of a saved cap. Raises NotFound, DecodeError.");
  s.def(
      "list_caps",
      [](const Store& self) {
        const auto store = self.get();
        py::gil_scoped_release release;
        return store->list_caps();
      },
      "list_caps() -> list[SavedCap]\n\nEvery saved cap, ordered by root. Raises DecodeError.");
  s.def(
      "gc",
      [](const Store& self, const std::vector<datacap::Hash32>& keep) {
        const auto store = self.get();
        py::gil_scoped_release release;
        return store->gc(keep);
      },
      py::arg("keep"),
      "gc(keep) -> GcReport\n\n"
      "Keeps the caps whose roots are in `keep` and every page they reference; removes every\n"
      "other cap and page. Waits for saves in progress. Raises NotFound (nothing removed) for a\n"
      "root that is not a saved cap, InvalidArgument (read-only), DecodeError (damaged store).");
  s.def(
      "verify",
      [](const Store& self) {
        const auto store = self.get();
        py::gil_scoped_release release;
        return store->verify();
      },
      "verify() -> StoreVerifyReport\n\n"
      "Checks everything the store holds and reports damage instead of raising it. LMDB store:\n"
      "one read of the whole file. Raises only when the store cannot be read (IoError,\n"
      "DecodeError).");
  s.def(
      "check_structure",
      [](const Store& self) {
        const auto store = self.get();
        py::gil_scoped_release release;
        store->check_structure();
      },
      "check_structure() -> None\n\n"
      "LMDB store: walks every B-tree page so that later lookups follow only checked pointers\n"
      "(damage becomes DecodeError, not a crash). About 1/60 of the store read.");
  s.def(
      "hydrate",
      [](const Store& self, Cap& cap, std::optional<std::vector<std::uint64_t>> page_indices) {
        return hydrate_cap(cap, self, page_indices);
      },
      py::arg("cap"), py::arg("page_indices") = py::none(),
      (std::string("hydrate(cap, page_indices=None) -> HydrateReport\n\n") + HYDRATE_DOC).c_str());
  s.def_property_readonly(
      "name", [](const Store& self) { return self.name; },
      "What error messages call this store: the LMDB directory, or 'memory store'.");
  s.def_property_readonly(
      "is_read_only", [](const Store& self) { return self.get()->is_read_only(); },
      "Whether the store was opened read-only (writes raise InvalidArgument).");
  s.def_property_readonly(
      "closed", [](const Store& self) { return !self.store; }, "Whether close() was called.");
  s.def(
      "close", [](Store& self) { self.store.reset(); },
      "close() -> None\n\n"
      "Releases the store (LMDB: closes the environment once no call is using it). Idempotent.");
  s.def(
      "__enter__", [](py::object self) { return self; },
      "__enter__() -> PageStore\n\nThe store itself, closed at the end of the with block.");
  s.def(
      "__exit__", [](Store& self, py::args) { self.store.reset(); },
      "Closes the store at the end of a with block.");
  s.def("__repr__", [](const Store& self) {
    return "<datacap.PageStore '" + self.name + "'" + (self.store ? "" : " closed") + ">";
  });

  py::class_<LmdbStore, Store>(
      m, "LmdbStore",
      "A persistent page store in an LMDB environment in directory `path` (data.mdb, lock.mdb,\n"
      "datacap.lock); any number of processes may open it. A cap whose save_cap returned\n"
      "survives a crash. See PageStore for the methods.")
      .def(py::init([](const std::filesystem::path& path, std::uint64_t map_size, bool create,
                       bool read_only) {
             datacap::LmdbOptions options;
             options.map_size = map_size;
             options.create = create;
             options.read_only = read_only;
             auto self = std::make_unique<LmdbStore>();
             {
               py::gil_scoped_release release;
               self->store = datacap::open_lmdb_store(path.string(), options);
             }
             self->name = self->store->name();
             return self;
           }),
           py::arg("path"), py::kw_only(), py::arg("map_size") = datacap::LmdbOptions{}.map_size,
           py::arg("create") = true, py::arg("read_only") = false,
           "LmdbStore(path, *, map_size=2**40, create=True, read_only=False)\n\n"
           "Opens (or, with create and not read_only, creates) the store in directory `path`;\n"
           "create=False opens an existing store only. map_size is the\n"
           "largest size the database may grow to (address space, not disk). The file is\n"
           "checked before LMDB maps it. Raises IoError, DecodeError (a damaged or foreign\n"
           "data.mdb).");
  py::class_<MemoryStore, Store>(
      m, "MemoryStore",
      "A page store in memory, gone with the object; pages are shared by\n"
      "reference with the caps that put them. See PageStore.")
      .def(py::init([] {
             auto self = std::make_unique<MemoryStore>();
             self->store = datacap::make_memory_store();
             self->name = self->store->name();
             return self;
           }),
           "MemoryStore()\n\nA new, empty store in memory.");

  m.def(
      "hydrate",
      [](Cap& cap, const Store& store, std::optional<std::vector<std::uint64_t>> page_indices) {
        return hydrate_cap(cap, store, page_indices);
      },
      py::arg("cap"), py::arg("store"), py::arg("page_indices") = py::none(),
      (std::string("hydrate(cap, store, page_indices=None) -> HydrateReport\n\n") + HYDRATE_DOC)
          .c_str());
}

}  // namespace

void register_storage(py::module_& m) {
  register_archive(m);
  register_store(m);
}

}  // namespace datacap_py
