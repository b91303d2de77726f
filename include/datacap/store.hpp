// A content-addressed page store, saved caps, and hydration of Missing pages from a store.
//
// Pages are keyed by their SHA-256 page root (SPEC §4), so identical pages are stored once
// across every cap. A clean cap is saved as a record keyed by its SHA-256 cap root: its size
// and page table (page index → page root for every non-Empty page); its Loaded pages are
// stored, its Missing pages are recorded by hash (their bytes may or may not be in the store).
// Garbage collection keeps the named caps and the pages they reference and drops the rest.
//
// Two stores implement the interface: MemoryStore (pages shared by reference, nothing copied)
// and LmdbStore (persistent, embedded, on LMDB; the default for tools).
//
// Trust: bytes read back from a store are checked before use — load_cap and hydrate compare
// every page with the root it was fetched by (IntegrityError, nothing changed); get() returns
// the bytes as stored. Errors about a store's contents name the store (name(): an LmdbStore's
// directory) and, where there is one, the cap root or page root.
//
// Damage (LmdbStore): LMDB has no checksums and follows the page numbers in data.mdb, which it
// maps. Opening checks the file against LMDB's meta pages with pread first (a truncated file or
// a damaged meta page is a DecodeError naming the file, not a SIGBUS); list_caps and gc check
// the structure of the trees they walk whole before LMDB does (DecodeError, nothing changed);
// LmdbStore::verify() reads everything without LMDB's map and reports damage. Lookups and saves
// trust LMDB and can still crash inside it on damaged B-tree pages: docs/format.md §3, "What
// LMDB cannot detect".
//
// Crash safety (LmdbStore): save_cap commits pages in batches first and the cap record last,
// each in an LMDB transaction, so a cap whose save returned survives a crash of the process
// (and, as LMDB syncs each commit, of the machine); a crash mid-save leaves only unreferenced
// pages, which gc drops.
//
// Thread-safety: every member of MemoryStore and LmdbStore may be called from any number of
// threads at once. gc waits for saves in progress (in this process and, for LmdbStore, in
// others) and saves wait for a gc.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "datacap/cap.hpp"
#include "datacap/export.hpp"
#include "datacap/hash.hpp"
#include "datacap/page.hpp"

namespace datacap {

// What a store knows of one saved cap.
struct SavedCap {
  Hash32 root{};                  // SHA-256 cap root
  std::uint64_t content_len = 0;  // size in bytes
  std::uint64_t page_entries = 0; // non-Empty pages in its page table
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

class DATACAP_API PageStore {
 public:
  virtual ~PageStore();
  PageStore(const PageStore&) = delete;
  PageStore& operator=(const PageStore&) = delete;

  // ---- pages -----------------------------------------------------------------------------
  // Stores the page (once per distinct content) and returns its page root. Throws
  // InvalidArgument for a null page, IoError when the store cannot write.
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
  // What error messages call this store: an LmdbStore's directory, "memory store".
  [[nodiscard]] virtual std::string name() const;

  // ---- caps ------------------------------------------------------------------------------
  // Saves a clean cap: stores its Loaded pages, then its record; returns its SHA-256 cap root.
  // Saving a cap already saved writes nothing. Throws DirtyCap, IoError.
  Hash32 save_cap(const DataCap& cap);
  // The cap saved under `cap_root`, its pages Loaded from the store (Missing where the store
  // lacks a recorded page), every page checked against its recorded root and the whole against
  // cap_root. Throws NotFound, IntegrityError, DecodeError (a damaged record), IoError.
  [[nodiscard]] DataCap load_cap(const Hash32& cap_root) const;
  [[nodiscard]] bool has_cap(const Hash32& cap_root) const;
  // Every saved cap, ordered by root. Throws DecodeError naming the store and the cap for a
  // damaged record (LmdbStore: also for a damaged caps tree, checked first).
  [[nodiscard]] std::vector<SavedCap> list_caps() const;
  // Keeps the caps in `keep` and every page they reference; removes every other cap and page.
  // Throws NotFound (nothing removed) when a root in `keep` is not a saved cap; LmdbStore:
  // DecodeError (nothing removed) when LMDB's free list or caps or pages tree is damaged — it
  // walks their branch and leaf pages with pread first, O(those pages) more reads.
  GcReport gc(std::span<const Hash32> keep);

  // ---- streaming ------------------------------------------------------------------------
  // Calls fn(page_index, slot) for every non-Empty page of the cap saved under `cap_root`, in
  // ascending order, holding one batch of pages at a time: Loaded pages are checked against
  // their recorded roots first; pages the store lacks come as Missing. After the last page the
  // cap root is recomputed from the record and compared with cap_root. Throws as load_cap —
  // possibly after some calls to fn, so a caller writing output must discard it on error.
  void export_cap(const Hash32& cap_root,
                  const std::function<void(std::uint64_t, const PageSlot&)>& fn) const;
  // The size of the cap saved under cap_root. Throws NotFound, DecodeError.
  [[nodiscard]] SavedCap saved_cap(const Hash32& cap_root) const;

  // Saves a cap given page by page in ascending order, holding at most two batches of pages
  // (64 MiB each: one being hashed, one being written) and the page table (36 bytes per non-Empty page) in memory: for inputs larger than
  // memory. Pages are committed batch by batch; the cap exists once finish() returns.
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

 public:
  class Lock;

 protected:
  PageStore() = default;

  struct PageRecord {
    Hash32 root;
    PageRef page;
  };
  // Stores the pages not yet present, atomically (all or none).
  virtual void do_put_pages(std::span<const PageRecord> pages) = 0;
  virtual void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const = 0;
  virtual bool do_has_page(const Hash32& root) const = 0;
  // out[k] = whether roots[k] is stored (out is sized by the caller).
  virtual void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const = 0;
  virtual std::uint64_t do_page_count() const = 0;
  // Stores a cap record (encoded) under its root, atomically; a root already present is kept.
  virtual void do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) = 0;
  virtual bool do_has_cap(const Hash32& cap_root) const = 0;
  // The record under cap_root, or false.
  virtual bool do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const = 0;
  // Every (root, record), ordered by root.
  virtual void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const = 0;
  // Removes every cap not in `keep` and every page not referenced by a kept cap, atomically.
  virtual GcReport do_gc(std::span<const Hash32> keep) = 0;

  virtual std::unique_ptr<Lock> lock(bool exclusive) const = 0;

 public:
  // Held by a save from its first page to its record (shared) and by gc (exclusive).
  class Lock {
   public:
    virtual ~Lock() = default;
  };

  // The page roots a cap record references (helpers for implementations and tools).
  // Throws DecodeError for a malformed record; its field names `store` and `cap_root` when given.
  static void record_page_roots(std::span<const std::uint8_t> record, std::vector<Hash32>& out,
                                std::string_view store = {}, const Hash32* cap_root = nullptr);
  static SavedCap record_summary(const Hash32& cap_root, std::span<const std::uint8_t> record,
                                 std::string_view store = {});
};

// Pages kept in memory, shared by reference with the caps that put them (no copies).
class DATACAP_API MemoryStore final : public PageStore {
 public:
  MemoryStore();
  ~MemoryStore() override;
  [[nodiscard]] std::string name() const override;

 protected:
  void do_put_pages(std::span<const PageRecord> pages) override;
  void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const override;
  bool do_has_page(const Hash32& root) const override;
  void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const override;
  std::uint64_t do_page_count() const override;
  void do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) override;
  bool do_has_cap(const Hash32& cap_root) const override;
  bool do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const override;
  void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const override;
  GcReport do_gc(std::span<const Hash32> keep) override;
  std::unique_ptr<Lock> lock(bool exclusive) const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct LmdbOptions {
  // Largest size the database may grow to (address space reserved, not disk used).
  std::uint64_t map_size = std::uint64_t{1} << 40;
  bool create = true;  // create the directory when it does not exist (never when read_only)
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

// One damage LmdbStore::verify() found.
struct StoreProblem {
  enum class Kind {
    bad_page,      // a page's bytes do not give its key, or its entry breaks the split rule
    bad_cap,       // a record that does not decode, or whose page table does not give its key
    damaged_refs,  // a sound record whose page table names bad pages (the cap cannot load)
    bad_tree,      // LMDB's own structure (a B-tree page, the free list, a meta record) is
                   // damaged: LMDB may crash or spread the damage reading or writing the store
  };
  Kind kind = Kind::bad_page;
  Hash32 root{};        // the page root (bad_page) or cap root; zero when there is none
  std::string message;  // one line: the store's path, the root, what is wrong
};

// What LmdbStore::verify() read and found: counts of everything, and the first problems.
struct StoreVerifyReport {
  static constexpr std::size_t MAX_PROBLEMS = 100;
  std::uint64_t caps = 0;              // cap records read
  std::uint64_t pages = 0;             // page entries read
  std::uint64_t bad_caps = 0;
  std::uint64_t bad_pages = 0;
  std::uint64_t damaged_page_refs = 0; // entries of sound records naming a bad page
  // Entries naming a page the store does not hold. Not counted as damage: a cap saved with
  // Missing pages records them by hash only, and a record does not say which entries were
  // Missing when it was saved, so a lost page and a page never stored look the same.
  std::uint64_t absent_page_refs = 0;
  std::uint64_t caps_with_absent_pages = 0;
  std::uint64_t bad_trees = 0;         // damages of LMDB's structure found
  std::uint64_t problem_count = 0;     // problems found; `problems` holds the first MAX_PROBLEMS
  std::vector<StoreProblem> problems;

  [[nodiscard]] bool damaged() const noexcept { return problem_count != 0; }
};

// A persistent store in an LMDB environment in directory `path` (data.mdb, lock.mdb and
// datacap.lock). A page takes one 4 KiB database page: its bytes are trimmed of trailing zeros
// and split so that LMDB never spends two pages on one. Any number of processes may open the
// same directory (a process opens it once). Errors name the directory (IoError::path(), or the
// DecodeError's field: "<dir>/data.mdb", "<dir>: cap <root>: ...").
class DATACAP_API LmdbStore final : public PageStore {
 public:
  // Opens (or, unless read_only, creates) the store. Before LMDB maps data.mdb, its two meta
  // pages are read with pread and checked as LMDB does (and more), and the file's length
  // against the pages its newest meta page uses; then the main tree (a page or two), before
  // LMDB looks the databases up in it. O(1) reads (plus a walk of LMDB's free list in the rare
  // case of a file that ends on free pages LMDB never wrote).
  // Throws IoError when the directory cannot be created or opened (read_only: when it holds no
  // data.mdb) or a file cannot be read; DecodeError (naming data.mdb and the page or byte) when
  // data.mdb is shorter than two meta pages, a meta page is not valid, the file is shorter than
  // the pages its newest meta page uses (a truncated store) or its main tree is damaged, and
  // when the directory holds an LMDB environment of another kind or a store of another format.
  explicit LmdbStore(const std::string& path, LmdbOptions options = {});
  ~LmdbStore() override;

  [[nodiscard]] const std::string& path() const noexcept;
  [[nodiscard]] bool read_only() const noexcept;
  [[nodiscard]] std::string name() const override;  // path()

  // Checks every byte of the store that anything reads, from one snapshot (a read transaction
  // keeps writers, who go on meanwhile, from reusing its pages), reading data.mdb with pread,
  // not through LMDB's map, and checking each page before following a pointer out of it — so
  // damage is reported, not crashed on:
  //  - data.mdb against its meta pages, as opening does;
  //  - LMDB's structure: the free list (page numbers inside the snapshot, none also in use) and
  //    the main, caps, pages and meta trees (each page's number, kind and level, node bounds,
  //    key order, the page and entry counts of the tree's record);
  //  - every page entry: the split rule, trimmed, and its root recomputed from its bytes;
  //  - every cap record: decoded, its root recomputed from its page table, and every page it
  //    names looked up (through LMDB, only when the trees it descends passed the walk).
  // Damage it can describe is counted and listed (StoreVerifyReport), never thrown.
  // Cost: one read of the whole file; O(pages · SHA-256 of 4 KiB, on every core + entries ·
  // (one B-tree lookup + 64-byte hashes)). Memory: a batch of 4096 pages, two bits per LMDB
  // page, the roots of the bad pages.
  // Throws DecodeError when data.mdb fails the open-time checks (truncated or damaged since it
  // was opened), IoError when it cannot be read or a read transaction cannot begin. A file
  // truncated while verify runs can still fault in the lookups (docs/format.md §3).
  [[nodiscard]] StoreVerifyReport verify() const;

  // Walks every B-tree page of the store (branch and leaf pages of its trees, not the pages'
  // bytes) with pread, as opening does for the main tree: after it, lookups (get, load_cap,
  // export_cap, hydrate) follow only pointers it checked, so a store damaged before the call
  // gives this DecodeError (naming data.mdb and the first damage) instead of a crash or an
  // assertion inside LMDB. What `datacap store get` runs first. O(B-tree pages): about 1/60 of
  // a store of pages read. Damage done while the store is open is not covered.
  void check_structure() const;

 protected:
  void do_put_pages(std::span<const PageRecord> pages) override;
  void do_get_pages(std::span<const Hash32> roots, std::span<PageRef> out) const override;
  bool do_has_page(const Hash32& root) const override;
  void do_has_pages(std::span<const Hash32> roots, std::vector<bool>& out) const override;
  std::uint64_t do_page_count() const override;
  void do_put_cap(const Hash32& cap_root, std::span<const std::uint8_t> record) override;
  bool do_has_cap(const Hash32& cap_root) const override;
  bool do_get_cap(const Hash32& cap_root, std::vector<std::uint8_t>& record) const override;
  void do_for_each_cap(
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) const override;
  GcReport do_gc(std::span<const Hash32> keep) override;
  std::unique_ptr<Lock> lock(bool exclusive) const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Resolves the cap's Missing pages (all, or those in `page_indices`; others are ignored) from
// `store`, in one batch: every fetched page is checked against its hash first — a wrong page
// throws IntegrityError and nothing is changed. Pages the store lacks stay Missing (counted in
// the report). Keeps the SHA-256 root; never changes what another cap sees.
// O(pages fetched · (PAGE_SIZE hash + L · 64)).
DATACAP_API HydrateReport hydrate(DataCap& cap, const PageStore& store);
DATACAP_API HydrateReport hydrate(DataCap& cap, const PageStore& store,
                                  std::span<const std::uint64_t> page_indices);

}  // namespace datacap
