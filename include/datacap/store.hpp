// A content-addressed page store, saved caps, and hydration of Missing pages from a store.
//
// Pages are keyed by their SHA-256 page root (SPEC §4), so identical pages are stored once
// across every cap. A clean cap is saved as a record keyed by its SHA-256 cap root: its size
// and page table (page index → page root for every non-Empty page); its Loaded pages are
// stored, its Missing pages are recorded by hash (their bytes may or may not be in the store).
// Garbage collection keeps the named caps and the pages they reference and drops the rest.
//
// PageStore is the interface. The library opens two stores through factories that return it:
// make_memory_store() (pages shared by reference, nothing copied) and open_lmdb_store()
// (persistent, embedded, on LMDB; the default for tools). Anyone may write another (a Redis
// store, say): derive from PageStore and implement its do_* hooks, whose contract is written
// in the class under "Writing a store".
//
// Trust: bytes read back from a store are checked before use — load_cap and hydrate compare
// every page with the root it was fetched by (IntegrityError, nothing changed); get() returns
// the bytes as stored. Errors about a store's contents name the store (name(): the LMDB
// store's directory) and, where there is one, the cap root or page root.
//
// Damage (LMDB store): LMDB has no checksums and follows the page numbers in data.mdb, which it
// maps. Opening checks the file against LMDB's meta pages with pread first (a truncated file or
// a damaged meta page is a DecodeError naming the file, not a SIGBUS); list_caps and gc check
// the structure of the trees they walk whole before LMDB does (DecodeError, nothing changed);
// check_structure() does so for every tree before lookups; verify() reads everything without
// LMDB's map and reports damage. Lookups and saves not preceded by check_structure() trust LMDB
// and can still crash inside it on damaged B-tree pages: docs/format.md §3, "What LMDB cannot
// detect".
//
// Crash safety (LMDB store): save_cap commits pages in batches first and the cap record last,
// each in an LMDB transaction, so a cap whose save returned survives a crash of the process
// (and, as LMDB syncs each commit, of the machine); a crash mid-save leaves only unreferenced
// pages, which gc drops.
//
// Thread-safety: every public member of a PageStore may be called from any number of threads
// at once (both library stores; a store written elsewhere must allow it, see "Writing a
// store"). gc waits for saves in progress (in this process and, for the LMDB store, in others)
// and saves wait for a gc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "datacap/cap.hpp"
#include "datacap/export.hpp"
#include "datacap/hash.hpp"
#include "datacap/page.hpp"

namespace datacap {

namespace detail {
struct StoreAccess;
}

// What a store knows of one saved cap.
struct SavedCap {
  Hash32 root{};                   // SHA-256 cap root
  std::uint64_t content_len = 0;   // size in bytes
  std::uint64_t page_entries = 0;  // non-Empty pages in its page table
};

struct GcReport {
  std::uint64_t caps_kept = 0;
  std::uint64_t caps_removed = 0;
  std::uint64_t pages_kept = 0;
  std::uint64_t pages_removed = 0;
};

struct HydrateReport {
  std::uint64_t hydrated = 0;       // Missing pages now Loaded
  std::uint64_t still_missing = 0;  // Missing pages the store does not hold
};

// One damage PageStore::verify() found.
struct StoreProblem {
  enum class Kind {
    bad_page,      // a page's bytes do not give its key, or (LMDB) its entry breaks the split rule
    bad_cap,       // a record that does not decode, or whose page table does not give its key
    damaged_refs,  // a sound record whose page table names bad pages (the cap cannot load)
    bad_tree,      // the store's own structure is damaged (LMDB: a B-tree page, the free list,
                   // a meta record): reading or writing the store may crash or spread the damage
  };
  Kind kind = Kind::bad_page;
  Hash32 root{};        // the page root (bad_page) or cap root; zero when there is none
  std::string message;  // one line: the store's name, the root, what is wrong
};

// What PageStore::verify() read and found: counts of everything, and the first problems.
struct StoreVerifyReport {
  static constexpr std::size_t MAX_PROBLEMS = 100;
  std::uint64_t caps = 0;   // cap records read
  std::uint64_t pages = 0;  // page entries read (or counted, by the default verify)
  std::uint64_t bad_caps = 0;
  std::uint64_t bad_pages = 0;
  std::uint64_t damaged_page_refs = 0;  // entries of sound records naming a bad page
  // Entries naming a page the store does not hold. Not counted as damage: a cap saved with
  // Missing pages records them by hash only, and a record does not say which entries were
  // Missing when it was saved, so a lost page and a page never stored look the same.
  std::uint64_t absent_page_refs = 0;
  std::uint64_t caps_with_absent_pages = 0;
  std::uint64_t bad_trees = 0;      // damages of the store's own structure found
  std::uint64_t problem_count = 0;  // problems found; `problems` holds the first MAX_PROBLEMS
  std::vector<StoreProblem> problems;

  [[nodiscard]] bool damaged() const noexcept { return problem_count != 0; }
  // Counts a problem and lists it while fewer than MAX_PROBLEMS are listed (the counter of its
  // kind — bad_caps, bad_pages, ... — is the caller's to raise). For implementations of verify.
  void add_problem(StoreProblem::Kind kind, const Hash32& root, std::string message) {
    ++problem_count;
    if (problems.size() < MAX_PROBLEMS) problems.push_back({kind, root, std::move(message)});
  }
};

// The interface of every page store, and the store-independent work built on it.
//
// Callers use the public members. Apart from the accessors name() and is_read_only(), they are
// not virtual: the base class does the work common to all stores — argument checks, SHA-256
// page roots (hashed on every core, cached in the pages), cap records, batching, the lock
// between saves and gc, and checking every page read back for load_cap, export_cap and hydrate
// against its root — and reaches the storage only through the protected do_* hooks. Those
// hooks are the whole of what a store implements: see "Writing a store" below the public API.
//
// Open the library's stores with make_memory_store() or open_lmdb_store(); the object is owned
// by the unique_ptr they return. Not copyable.
//
// Thread-safety: every public member may be called from any number of threads at once.
class DATACAP_API PageStore {
 public:
  // Pages a save hands to the store per transaction: 32768 pages of PAGE_SIZE, 128 MiB. A save
  // holds at most two batches (one being hashed, the previous one being written).
  static constexpr std::size_t SAVE_BATCH_PAGES = 32768;
  // Pages export_cap and load_cap fetch per read: 4096 pages, 16 MiB.
  static constexpr std::size_t EXPORT_BATCH_PAGES = 4096;

  virtual ~PageStore();
  PageStore(const PageStore&) = delete;
  PageStore& operator=(const PageStore&) = delete;

  // ---- pages -----------------------------------------------------------------------------
  // Stores the page (once per distinct content) and returns its page root. Throws
  // InvalidArgument for a null page or a read-only store, IoError when the store cannot write.
  Hash32 put(const PageRef& page);
  // As put() for many pages in one transaction: roots[k] receives pages[k]'s root. Throws
  // InvalidArgument when the spans' sizes differ. O(pages · PAGE_SIZE) hashing + the writes.
  void put_many(std::span<const PageRef> pages, std::span<Hash32> roots);
  // The page stored under `root`, or a null PageRef. Bytes as stored (not re-hashed).
  [[nodiscard]] PageRef get(const Hash32& root) const;
  // out[k] = get(roots[k]) in one read transaction. Throws InvalidArgument on size mismatch.
  void get_many(std::span<const Hash32> roots, std::span<PageRef> out) const;
  [[nodiscard]] bool has(const Hash32& root) const;
  // has(roots[k]) for every k, in one read transaction.
  [[nodiscard]] std::vector<bool> has_many(std::span<const Hash32> roots) const;
  // Pages stored (distinct contents).
  [[nodiscard]] std::uint64_t page_count() const;

  // ---- caps ------------------------------------------------------------------------------
  // Saves a clean cap: stores its Loaded pages, then its record; returns its SHA-256 cap root.
  // Saving a cap already saved writes nothing. Throws DirtyCap, IoError; InvalidArgument on a
  // read-only store.
  Hash32 save_cap(const DataCap& cap);
  // The cap saved under `cap_root`, its pages Loaded from the store (Missing where the store
  // lacks a recorded page), every page checked against its recorded root and the whole against
  // cap_root. Throws NotFound, IntegrityError, DecodeError (a damaged record), IoError.
  [[nodiscard]] DataCap load_cap(const Hash32& cap_root) const;
  [[nodiscard]] bool has_cap(const Hash32& cap_root) const;
  // Every saved cap, ordered by root. Throws DecodeError naming the store and the cap for a
  // damaged record (LMDB store: also for a damaged caps tree, checked first).
  [[nodiscard]] std::vector<SavedCap> list_caps() const;
  // Keeps the caps in `keep` and every page they reference; removes every other cap and page.
  // Throws NotFound (nothing removed) when a root in `keep` is not a saved cap; InvalidArgument
  // on a read-only store; LMDB store: DecodeError (nothing removed) when LMDB's free list or
  // caps or pages tree is damaged — it walks their branch and leaf pages with pread first,
  // O(those pages) more reads.
  GcReport gc(std::span<const Hash32> keep);

  // ---- streaming ------------------------------------------------------------------------
  // Calls fn(page_index, slot) for every non-Empty page of the cap saved under `cap_root`, in
  // ascending order, holding at most three batches (EXPORT_BATCH_PAGES each) of pages at a time
  // (the next two are fetched on other threads while this one is checked). Before any call the
  // cap root is recomputed from the record's page roots and compared with cap_root (a damaged
  // record is a DecodeError with fn never called); Loaded pages are checked against their
  // recorded roots before their batch reaches fn; pages the store lacks come as Missing.
  // Throws as load_cap — possibly after some calls to fn (a page damaged or lost in the store),
  // so a caller writing output must discard it on error.
  void export_cap(const Hash32& cap_root,
                  const std::function<void(std::uint64_t, const PageSlot&)>& fn) const;
  // The size of the cap saved under cap_root. Throws NotFound, DecodeError.
  [[nodiscard]] SavedCap saved_cap(const Hash32& cap_root) const;

  // Saves a cap given page by page in ascending order, holding at most two batches of
  // SAVE_BATCH_PAGES pages (128 MiB each: one being hashed, one being written) and the page
  // table (36 bytes per non-Empty page) in memory: for inputs larger than memory. Pages are
  // committed batch by batch; the cap exists once finish() returns. Constructing one on a
  // read-only store throws InvalidArgument.
  class DATACAP_API CapWriter {
   public:
    explicit CapWriter(PageStore& store);
    ~CapWriter();
    CapWriter(const CapWriter&) = delete;
    CapWriter& operator=(const CapWriter&) = delete;
    // Page `page_index` holds `page` (an all-zero page is recorded as Empty). Throws
    // OutOfRange for an index >= 2^32, InvalidArgument when the index is not above the previous
    // one, the page is null or the writer has finished.
    void add_page(std::uint64_t page_index, const PageRef& page);
    // Page `page_index` is Missing(hash). Same errors.
    void add_missing(std::uint64_t page_index, const Hash32& hash);
    // Stores what is left, commits the record of a cap of `content_len` bytes and returns its
    // root. Throws OutOfRange when content_len is not a page multiple, exceeds 2^32 pages or
    // does not cover the pages added; InvalidArgument when called twice.
    Hash32 finish(std::uint64_t content_len);

   private:
    struct State;
    std::unique_ptr<State> state_;
  };

  // ---- checking and naming -----------------------------------------------------------------
  // Checks everything the store holds and reports damage instead of throwing it: every cap
  // record (decoded, its root recomputed from its page table, the pages it names looked up)
  // and, where the store can read them, every page (its root recomputed) and the store's own
  // structure. Memory store: records checked, pages counted (they are the caps' own immutable
  // pages). LMDB store: open_lmdb_store() says what it reads. Throws only when the store cannot
  // be read at all (IoError; LMDB: DecodeError for a data.mdb that fails the open-time checks).
  [[nodiscard]] StoreVerifyReport verify() const;
  // Checks the store's structure so that the lookups after it (get, load_cap, export_cap,
  // hydrate) follow only checked pointers: damage done before the call is this DecodeError
  // instead of a crash inside the storage engine. Memory store: nothing to check. LMDB store:
  // a pread walk of every B-tree page, about 1/60 of a store of pages read; what `datacap store
  // get` runs first. Damage done after the call is not covered.
  void check_structure() const;
  // What error messages call this store: the LMDB store's directory, "memory store".
  [[nodiscard]] virtual std::string name() const;
  // Whether the store was opened for reading only: then put, put_many, save_cap, CapWriter
  // and gc throw InvalidArgument naming the store, before changing anything.
  [[nodiscard]] virtual bool is_read_only() const noexcept;

  // The page roots a cap record references (helpers for implementations and tools).
  // Throws DecodeError for a malformed record; its field names `store` and `cap_root` when given.
  static void record_page_roots(std::span<const std::uint8_t> record, std::vector<Hash32>& out,
                                std::string_view store = {}, const Hash32* cap_root = nullptr);
  // The SavedCap a record describes. Throws DecodeError for a malformed record.
  static SavedCap record_summary(const Hash32& cap_root, std::span<const std::uint8_t> record,
                                 std::string_view store = {});

  // Held by a save from its first page to its record (shared) and by gc (exclusive); returned
  // by do_lock. Releasing it is destroying it.
  class Lock {
   public:
    virtual ~Lock() = default;
  };

  // ---- writing a store -----------------------------------------------------------------------
  // A store derives from PageStore and implements every pure do_* hook below; it may override
  // do_verify(), do_check_structure(), name() and is_read_only(). The protected hooks are
  // called only by this base class. The contract:
  //
  // The base class guarantees, before it calls a hook:
  //  - every page handed over is non-null and comes with its SHA-256 page root, computed and
  //    cached: a store hashes nothing;
  //  - spans that go together have equal sizes; do_has_pages' `out` holds roots.size() falses;
  //  - a record handed to do_put_cap is well formed (docs/format.md §3, cap records) and its
  //    cap_root is the SHA-256 root its page table gives; the Loaded pages it names were passed
  //    to do_put_pages before (Missing ones are named by hash only and may never be);
  //  - a save (save_cap, CapWriter) holds do_lock(false) from its first do_put_pages to its
  //    do_put_cap, and gc holds do_lock(true) around do_gc; put and put_many take no lock (a gc
  //    may remove their pages at once: no cap references them);
  //  - callbacks (do_for_each_cap's fn) call no hook, so a store may hold its own lock around
  //    them.
  //
  // Batching: a hook is called once per batch, and should be one transaction.
  //  - do_put_pages: put_many's whole span; a save's pages SAVE_BATCH_PAGES at a time, the call
  //    for one batch running on another thread while the next batch is hashed;
  //  - do_get_pages: get_many's and hydrate's whole span; export_cap's and load_cap's
  //    EXPORT_BATCH_PAGES at a time;
  //  - do_for_each_cap: once per list_caps and per default verify().
  //
  // The store's side:
  //  - Thread-safety: any hook may be called from any number of threads at once, on a const
  //    store too (reads), and alongside writes; the store synchronizes its own data.
  //  - Errors are datacap::Error subclasses, which the base lets through unchanged: IoError
  //    (path, system message) when the storage cannot be reached, read or written; DecodeError
  //    naming name() (and the root) for stored bytes that cannot be right; InvalidArgument
  //    naming name() for a write to a store opened read-only (refuse in do_lock too, so a save
  //    fails before it hashes anything); NotFound from do_gc. A hook said to be atomic that
  //    throws has changed nothing.
  //  - Bytes are returned as stored: the base checks every page it loads against its root, so
  //    a store need not (and get() documents that it does not).
 protected:
  PageStore() = default;
  // A store built on other stores (the tiered store) calls their hooks through this.
  friend struct detail::StoreAccess;

  struct PageRecord {
    Hash32 root;   // the SHA-256 page root of `page`
    PageRef page;  // never null
  };
  // Stores the pages not yet present, atomically (all or none). A batch may name a page twice
  // or a page already stored: each is kept once, the stored copy left as it is.
  virtual void do_put_pages(std::span<const PageRecord> pages) = 0;
  // out[k] = the page stored under roots[k], or a null PageRef; every out[k] is assigned (the
  // caller's span may hold anything). One read transaction.
  virtual void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const = 0;
  // Whether a page is stored under `root`.
  virtual bool do_has_page(const Hash32& root) const = 0;
  // out[k] = whether roots[k] is stored (out is sized by the caller). One read transaction.
  virtual void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const = 0;
  // Pages stored (distinct roots).
  virtual std::uint64_t do_page_count() const = 0;
  // Stores a cap record (encoded) under its root, atomically; a root already present is kept
  // as it is (same root, same record).
  virtual void do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) = 0;
  // Whether a record is stored under cap_root.
  virtual bool do_has_cap(const Hash32& cap_root) const = 0;
  // Copies the record under cap_root into `record` and returns true, or returns false (record
  // unspecified). The record is returned as stored: the base decodes and checks it.
  virtual bool do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const = 0;
  // Calls fn(root, record) for every record, ordered by root, from one consistent view; the
  // record span is valid during the call only.
  virtual void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const = 0;
  // Removes every cap not in `keep` and every page not referenced by a kept cap, atomically,
  // and counts what it kept and removed. `keep` is as the caller gave it (duplicates possible);
  // a root in it that is not a saved cap throws NotFound(name() + ": gc: keep", "cap", root)
  // with nothing removed. record_page_roots() decodes the records it keeps.
  virtual GcReport do_gc(std::span<const Hash32> keep) = 0;
  // The lock between saves (shared) and gc (exclusive), across every user of the store (LMDB
  // store: every process, through a lock file). Blocks until granted.
  virtual std::unique_ptr<Lock> do_lock(bool exclusive) const = 0;
  // verify()'s work. The default checks what the other hooks can reach: every cap (listed with
  // do_for_each_cap, then read with do_get_cap one at a time, a cap removed meanwhile skipped)
  // decoded and its root recomputed, and the pages it names looked up with do_has_pages in
  // batches of EXPORT_BATCH_PAGES; pages are counted (do_page_count), not read. A store whose
  // bytes can be damaged at rest overrides it to check its pages and structure too.
  // O(records' bytes + entries · one lookup).
  virtual StoreVerifyReport do_verify() const;
  // check_structure()'s work; the default does nothing (a store whose reads cannot crash on
  // damaged data needs nothing).
  virtual void do_check_structure() const;
};

// ---- the library's stores -----------------------------------------------------------------

// A store in memory, gone with the object. Pages are shared by reference with the caps that
// put them (nothing copied) and kept under the root computed when they were put; cap records
// are copied. name() is "memory store"; verify() is the default (records checked, pages
// counted); check_structure() does nothing; never read-only. Throws only std::bad_alloc.
[[nodiscard]] DATACAP_API std::unique_ptr<PageStore> make_memory_store();

struct LmdbOptions {
  // Largest size the database may grow to (address space reserved, not disk used).
  std::uint64_t map_size = std::uint64_t{1} << 40;
  // Create the store (its directory, and LMDB's files in it) when it does not exist (never when
  // read_only). false: only an existing store opens; a directory without data.mdb is an
  // IoError, and nothing is created.
  bool create = true;
  // Open for reading only (MDB_RDONLY): put, put_many, save_cap, CapWriter and gc throw
  // InvalidArgument (the caller's choice makes a write misuse, not a refusal by the system).
  // Needs only read permission on data.mdb. When lock.mdb cannot be opened for writing (a
  // directory the user may only read), the store is read without LMDB's lock file
  // (MDB_NOLOCK; LMDB itself does so on a read-only file system): its read transactions are
  // then invisible to writers, so a process writing the store at the same time may reuse pages
  // a read is still using — a load then fails its root check (IntegrityError) or, when it hits
  // LMDB's own pages, may crash inside LMDB. Safe when nobody writes the store meanwhile.
  bool read_only = false;
};

// Opens (or, unless options.read_only, creates) a persistent store in an LMDB environment in
// directory `path` (data.mdb, lock.mdb and datacap.lock). A page takes one 4 KiB database page:
// its bytes are trimmed of trailing zeros and split so that LMDB never spends two pages on one
// (docs/format.md §3). Any number of processes may open the same directory (a process opens it
// once). name() is `path`; is_read_only() is options.read_only. Errors name the directory
// (IoError::path(), or the DecodeError's field: "<dir>/data.mdb", "<dir>: cap <root>: ...").
//
// Opening: before LMDB maps data.mdb, its two meta pages are read with pread and checked as
// LMDB does (and more), and the file's length against the pages its newest meta page uses;
// then the main tree (a page or two), before LMDB looks the databases up in it. O(1) reads
// (plus a walk of LMDB's free list in the rare case of a file that ends on free pages LMDB
// never wrote). Throws IoError when the directory cannot be created or opened (read_only or
// !create: when it holds no data.mdb), data.mdb is not a regular file, or a file cannot be read;
// DecodeError (naming data.mdb and the page or byte) when data.mdb is shorter than two meta pages,
// a meta page is not valid, the file is shorter than the pages its newest meta page uses (a
// truncated store), its meta pages give the trees flags LMDB never writes, or its main tree is
// damaged, and when the directory holds an LMDB environment of another kind or a store of another
// format.
//
// verify() checks every byte of the store that anything reads, from one snapshot (a read
// transaction keeps writers, who go on meanwhile, from reusing its pages), reading data.mdb
// with pread, not through LMDB's map, and checking each page before following a pointer out of
// it — so damage is reported, not crashed on:
//  - data.mdb against its meta pages, as opening does;
//  - LMDB's structure: the free list (page numbers inside the snapshot, none also in use) and
//    the main, caps, pages and meta trees (each page's number, kind and level, node bounds,
//    key order, the page and entry counts of the tree's record);
//  - every page entry: the split rule, trimmed, and its root recomputed from its bytes;
//  - every cap record: decoded, its root recomputed from its page table, and every page it
//    names looked up (through LMDB, only when the trees it descends passed the walk).
// Cost: one read of the whole file; O(pages · SHA-256 of 4 KiB, on every core + entries ·
// (one B-tree lookup + 64-byte hashes)). Memory: a batch of 4096 pages, two bits per LMDB
// page, the roots of the bad pages. Throws DecodeError when data.mdb fails the open-time
// checks (truncated or damaged since it was opened), IoError when it cannot be read or a read
// transaction cannot begin. A file truncated while verify runs can still fault in the lookups
// (docs/format.md §3).
//
// check_structure() walks every B-tree page of the store (branch and leaf pages of its trees,
// not the pages' bytes) with pread, as opening does for the main tree: after it, lookups
// follow only pointers it checked, so a store damaged before the call gives a DecodeError
// (naming data.mdb and the first damage) instead of a crash or an assertion inside LMDB.
// O(B-tree pages): about 1/60 of a store of pages read.
[[nodiscard]] DATACAP_API std::unique_ptr<PageStore> open_lmdb_store(const std::string& path,
                                                                     LmdbOptions options = {});

// ---- a local tier in front of a shared store -------------------------------------------------
// A store that keeps a local copy of what it reads from a shared one: `remote` is the store of
// record (Redis, say), `local` a cache on this machine (LMDB, say). Both are owned.
//  - Reads look in `local` first; pages it lacks are fetched from `remote` in one batch, checked
//    against their roots (a wrong page is not cached: the caller's own check then reports it),
//    and copied into `local` (when that copy fails, e.g. a full disk, the read still succeeds and
//    the next one fetches again). has_many asks `remote` once per batch, for the roots `local`
//    lacks. Cap records are always read from `remote` (small; one round trip).
//  - Writes go to `remote` first, then to `local`: what this node writes reaches its cache only
//    once the shared store has it, so a failed write never leaves the node holding what the
//    fleet lacks. A failure after the remote write leaves the local tier without the copy,
//    which a later read fills. (The cache is not told of another node's gc: has() may still
//    answer true for a page gc removed from the remote. Saves never rely on has(): they write
//    every page, and the remote keeps one copy.)
//  - page_count, list_caps and verify's caps are the remote's. gc runs on `remote` (the keep
//    list must name caps saved there: NotFound otherwise), then on `local` with the kept caps it
//    holds, dropping every other cached cap and page. The save/gc lock is taken on `remote`
//    (across the fleet), then on `local`. verify() and check_structure() check both stores
//    (verify's counts of caps, pages and absent pages are the remote's; damage found in either
//    is reported).
//  - name() is "<local name> in front of <remote name>"; read-only when either is.
// The two must be distinct stores (two handles on one LMDB directory deadlock in gc). Throws
// InvalidArgument for a null store. Thread-safety: as any PageStore.
[[nodiscard]] DATACAP_API std::unique_ptr<PageStore> make_tiered_store(
    std::unique_ptr<PageStore> local, std::unique_ptr<PageStore> remote);

// Resolves the cap's Missing pages (all, or those in `page_indices`; others are ignored) from
// `store`, in one batch: every fetched page is checked against its hash first — a wrong page
// throws IntegrityError and nothing is changed. Pages the store lacks stay Missing (counted in
// the report). Keeps the SHA-256 root; never changes what another cap sees.
// O(pages fetched · (PAGE_SIZE hash + L · 64)).
DATACAP_API HydrateReport hydrate(DataCap& cap, const PageStore& store);
DATACAP_API HydrateReport hydrate(DataCap& cap, const PageStore& store,
                                  std::span<const std::uint64_t> page_indices);

}  // namespace datacap
