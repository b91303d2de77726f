/* datacap's C API: the stable interface every language binds to (C11; C++ may use it too).
 *
 * It mirrors the C++ API (datacap.hpp), whose headers hold the full semantics and cost of each
 * operation; this header states what changes at the boundary: ownership, errors, lifetimes.
 *
 * Handles. `datacap_cap`, `datacap_store` and `datacap_archive` are opaque. A `_new`/`_open`
 * call creates one and hands it to the caller, who releases it with the matching `_free`
 * (`_free(NULL)` does nothing). Functions that take a handle never keep it: a handle may be
 * freed as soon as the call returns, whatever else still shares its pages.
 *
 * Errors. Every function that can fail returns a `datacap_status`: DATACAP_OK (0) or the kind of
 * the failure, whose values mirror datacap::ErrorKind (plus out-of-memory and internal). On
 * failure the outputs are left as they were and the operation changed nothing (the C++ strong
 * guarantee), except where a function says otherwise. The message of the failure ("write:
 * range [4090, 4106) ends past content_len 4096") is kept per thread until the next failure on
 * that thread: datacap_error_message() returns a copy the caller frees with datacap_free().
 * NULL handles and NULL pointers where data is required are DATACAP_INVALID_ARGUMENT, never a
 * crash; a (NULL, 0) byte range is the empty range. No C++ exception crosses this boundary and
 * nothing here aborts the process. Infallible accessors (content_len, ...) return 0 for NULL.
 *
 * Memory the library allocates for the caller (arrays, messages, proof branches) is released
 * with datacap_free() or the named `_clear` function; memory the caller passes in is only read
 * during the call (or written, for outputs) and never kept.
 *
 * Thread-safety: as in C++. Calls that only read a handle may run concurrently on it (reading
 * a cap fills race-free hash caches); a call that changes a cap needs that cap to itself.
 * Distinct caps may be used on different threads freely, even when they share pages. Every
 * store function may be called from any number of threads at once. Archive readers allow
 * concurrent reads. datacap_error_message() reports the calling thread's last failure.
 */
#ifndef DATACAP_DATACAP_H
#define DATACAP_DATACAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(DATACAP_STATIC)
#define DATACAP_C_API
#else
#define DATACAP_C_API __attribute__((visibility("default")))
#endif

/* Enums have int's size and range in C++ too, so any value a C caller passes is a value of the
 * type there (a C++ enum without a fixed type has only its enumerators' range), and the library
 * can reject it. */
#ifdef __cplusplus
#define DATACAP_ENUM(name) enum name : int
#else
#define DATACAP_ENUM(name) enum name
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- basics ------------------------------------------------------------------------------ */

/* Bytes per page; every cap size is a multiple. */
#define DATACAP_PAGE_SIZE 4096

/* A status: 0 or the kind of failure. Values 1..10 are datacap::ErrorKind + 1. */
typedef DATACAP_ENUM(datacap_status){
    DATACAP_OK = 0,
    DATACAP_INVALID_ARGUMENT = 1, /* misuse, including NULL handles and unknown enum values */
    DATACAP_OUT_OF_RANGE = 2,     /* an offset, index or size outside what the cap allows */
    DATACAP_DIRTY_CAP = 3,        /* a clean-only operation on a cap with an overlay */
    DATACAP_MISSING_PAGE = 4,     /* a Missing page was read through a call that needs its bytes */
    DATACAP_DECODE = 5,           /* malformed bytes from outside (an archive, a store record) */
    DATACAP_VALIDATION = 6,       /* a well-formed value that breaks a rule */
    DATACAP_IO = 7,               /* the operating system refused a file operation */
    DATACAP_INTEGRITY = 8,        /* bytes that do not match the hash they were fetched by */
    DATACAP_NOT_FOUND = 9,        /* a store does not hold the key asked for */
    DATACAP_UNSUPPORTED = 10,     /* the host lacks a kernel feature the call needs */
    DATACAP_OUT_OF_MEMORY = 11,   /* an allocation failed */
    DATACAP_INTERNAL = 12         /* a failure the library did not classify (a bug: report it) */
} datacap_status;

/* A 32-byte digest: a page root, a Missing page's hash, a cap root. */
typedef struct datacap_hash {
  uint8_t bytes[32];
} datacap_hash;

typedef DATACAP_ENUM(datacap_digest){
    DATACAP_SHA256 = 0,    /* the default and consensus digest */
    DATACAP_BLAKE2B256 = 1 /* BLAKE2b with a 32-byte output, no key */
} datacap_digest;

/* The library's version, "MAJOR.MINOR.PATCH"; a static string. Never fails. */
DATACAP_C_API const char* datacap_version(void);

/* The name of a status ("ok", "invalid_argument", ..., "out_of_memory", "internal"; "unknown"
 * for any other value); a static string. Never fails. */
DATACAP_C_API const char* datacap_status_name(datacap_status status);

/* A copy of the message of the last call on this thread that returned a non-zero status, or
 * NULL when there was none (or the copy cannot be allocated). The caller frees it with
 * datacap_free(). Calls that succeed leave the message as it was. */
DATACAP_C_API char* datacap_error_message(void);

/* Releases memory the library handed to the caller (messages, index arrays). NULL is fine. */
DATACAP_C_API void datacap_free(void* memory);

/* 64 lowercase hex characters and a NUL into `out` (65 bytes). Does nothing when an argument
 * is NULL. */
DATACAP_C_API void datacap_hash_to_hex(const datacap_hash* hash, char out[65]);
/* Parses exactly 64 hex characters (either case, NUL-terminated). DATACAP_INVALID_ARGUMENT
 * otherwise. */
DATACAP_C_API datacap_status datacap_hash_from_hex(const char* hex, datacap_hash* out);

/* Threads used by large root computations (the caller counts as one); 0 = one per core, the
 * default; at most 1024 (more are capped). Not to be called while other threads hash. When a thread
 * cannot start (INTERNAL or OUT_OF_MEMORY), hashing goes on with the threads that did. */
DATACAP_C_API datacap_status datacap_set_hash_threads(unsigned threads);

/* The page root of `len` <= 4096 bytes zero-padded to a page. O(PAGE_SIZE). Errors:
 * OUT_OF_RANGE for len > 4096. */
DATACAP_C_API datacap_status datacap_page_root(const uint8_t* bytes, size_t len,
                                               datacap_digest digest, datacap_hash* out);

/* ---- caps -------------------------------------------------------------------------------- */
/* A cap: whole pages, an immutable shared backing and a private copy-on-write overlay
 * (cap.hpp). Costs are those of the C++ methods: copy O(1); page_at O(log n) pointer hops and
 * no allocation; write O(bytes + pages touched · log n); root O(1) when cached, else only the
 * pages and nodes changed since the backing's last root are hashed. */
typedef struct datacap_cap datacap_cap;

/* One page of datacap_cap_new_from_sparse_pages: index and <= 4096 bytes (zero-padded). */
typedef struct datacap_sparse_page {
  uint32_t page_index;
  const uint8_t* bytes;
  size_t len;
} datacap_sparse_page;

/* A clean cap of `content_len` bytes, all pages zero. INVALID_ARGUMENT when not a multiple of
 * DATACAP_PAGE_SIZE, OUT_OF_RANGE above 2^32 pages. */
DATACAP_C_API datacap_status datacap_cap_new_zeroed(uint64_t content_len, datacap_cap** out);
/* A clean cap of max(target, len) bytes rounded up to a page (at least one page): `bytes` in
 * the low bytes, zeros after. All-zero pages take no memory. OUT_OF_RANGE above 2^32 pages.
 * O(len). */
DATACAP_C_API datacap_status datacap_cap_new_from_bytes(const uint8_t* bytes, size_t len,
                                                        uint64_t target, datacap_cap** out);
/* A clean cap of content_len bytes (rounded up to a page, at least one page) whose named pages
 * hold their bytes zero-padded. OUT_OF_RANGE for an index past the end or bytes longer than a
 * page, INVALID_ARGUMENT for a page named twice. */
DATACAP_C_API datacap_status datacap_cap_new_from_sparse_pages(uint64_t content_len,
                                                               const datacap_sparse_page* pages,
                                                               size_t count, datacap_cap** out);
/* MGMT_COPY: a new cap with the same bytes, backing and overlay, sharing every page. O(1).
 * Later changes to either are invisible to the other. */
DATACAP_C_API datacap_status datacap_cap_copy(const datacap_cap* cap, datacap_cap** out);
/* Releases the handle (its pages live on while other caps share them). NULL is fine. */
DATACAP_C_API void datacap_cap_free(datacap_cap* cap);

/* Size in bytes; pages; overlay pages; 1 when the overlay is empty. 0 for NULL. O(1). */
DATACAP_C_API uint64_t datacap_cap_content_len(const datacap_cap* cap);
DATACAP_C_API uint64_t datacap_cap_page_count(const datacap_cap* cap);
DATACAP_C_API uint64_t datacap_cap_dirty_page_count(const datacap_cap* cap);
DATACAP_C_API bool datacap_cap_is_clean(const datacap_cap* cap);

typedef DATACAP_ENUM(datacap_page_kind){
    DATACAP_PAGE_ZERO = 0,   /* reads as zeros (data: the shared zero page) */
    DATACAP_PAGE_BYTES = 1,  /* a stored page (data: its bytes) */
    DATACAP_PAGE_MISSING = 2 /* known only by its hash (data: NULL); never read as zeros */
} datacap_page_kind;

/* The page containing a byte offset, as every engine materializes it. */
typedef struct datacap_page {
  datacap_page_kind kind;
  uint32_t page_index;
  /* DATACAP_PAGE_SIZE bytes at a DATACAP_PAGE_SIZE-aligned address, BORROWED: valid until the
   * next call that changes this cap (write, write_page, put_page, place_shared, flush, elide,
   * resolve, hydrate) or frees it — copy the bytes (or the cap, O(1)) to keep them longer. The
   * zero page is valid for the life of the process. Never write through it. */
  const uint8_t* data;
  datacap_hash missing_hash; /* DATACAP_PAGE_MISSING: the page's hash; zeros otherwise */
} datacap_page;

/* Resolves the page containing byte `off` (any alignment). OUT_OF_RANGE when off >=
 * content_len. Allocates nothing. */
DATACAP_C_API datacap_status datacap_cap_page_at(const datacap_cap* cap, uint64_t off,
                                                 datacap_page* out);
/* Copies `len` effective bytes from `start` into `out`; zero pages read as zeros.
 * OUT_OF_RANGE when the range ends past content_len, MISSING_PAGE when it covers a Missing
 * page (then `out` may be partly written). */
DATACAP_C_API datacap_status datacap_cap_copy_into(const datacap_cap* cap, uint64_t start,
                                                   uint8_t* out, size_t len);
/* 1 when the overlay holds the page (written since the last flush), 0 otherwise (and for NULL
 * or an index past the end). */
DATACAP_C_API bool datacap_cap_is_dirty(const datacap_cap* cap, uint64_t page_index);

/* Writes `len` bytes at `off` into the overlay, across page boundaries. OUT_OF_RANGE when the
 * range ends past content_len, MISSING_PAGE when a partly covered page is Missing. */
DATACAP_C_API datacap_status datacap_cap_write(datacap_cap* cap, uint64_t off, const uint8_t* bytes,
                                               size_t len);
/* Sets the overlay page containing `off` to `len` <= 4096 bytes zero-padded (an explicit page,
 * even all zeros). OUT_OF_RANGE for off >= content_len or len > 4096. */
DATACAP_C_API datacap_status datacap_cap_write_page(datacap_cap* cap, uint64_t off,
                                                    const uint8_t* bytes, size_t len);
/* Overwrites the BACKING page containing `off` with `len` <= 4096 bytes zero-padded (the overlay
 * is untouched; other caps never see the change). Same errors as write_page. */
DATACAP_C_API datacap_status datacap_cap_put_page(datacap_cap* cap, uint64_t off,
                                                  const uint8_t* bytes, size_t len);
/* Backing page dst_off/4096 + i becomes src's page i, for every page of src, by reference (no
 * byte copy); pages past the end are dropped. INVALID_ARGUMENT when dst_off is not
 * page-aligned. `src` may be `cap` itself. */
DATACAP_C_API datacap_status datacap_cap_place_shared(datacap_cap* cap, uint64_t dst_off,
                                                      const datacap_cap* src);
/* Folds the overlay into the backing, in place: the cap becomes clean, with the same bytes.
 * O(overlay pages · log n). */
DATACAP_C_API datacap_status datacap_cap_flush(datacap_cap* cap);
/* The cap root (SPEC §4) into `out`. DIRTY_CAP when the overlay is not empty (flush first),
 * INVALID_ARGUMENT for an unknown digest. */
DATACAP_C_API datacap_status datacap_cap_root(const datacap_cap* cap, datacap_digest digest,
                                              datacap_hash* out);

/* Turns the Loaded pages at the given indices into Missing (known by their SHA-256 page root);
 * zero and Missing pages stay as they are. OUT_OF_RANGE (nothing changed) for an index past
 * the end. */
DATACAP_C_API datacap_status datacap_cap_elide_pages(datacap_cap* cap, const uint64_t* page_indices,
                                                     size_t count);
/* The Missing pages' indices, ascending, in a new array (*out_indices, NULL when there are
 * none) the caller frees with datacap_free(). O(stored pages). */
DATACAP_C_API datacap_status datacap_cap_missing_pages(const datacap_cap* cap,
                                                       uint64_t** out_indices, size_t* out_count);

/* The bytes of one Missing page, for datacap_cap_resolve_missing. */
typedef struct datacap_resolved_page {
  uint64_t page_index;
  const uint8_t* bytes; /* <= 4096 bytes, zero-padded */
  size_t len;
} datacap_resolved_page;

/* Replaces Missing pages by the given bytes after checking all of them: OUT_OF_RANGE for an
 * index past the end or bytes longer than a page, INVALID_ARGUMENT when a page is not Missing
 * or named twice, INTEGRITY when the bytes' root is not the page's hash — and then nothing
 * changed. */
DATACAP_C_API datacap_status datacap_cap_resolve_missing(datacap_cap* cap,
                                                         const datacap_resolved_page* pages,
                                                         size_t count);

/* The page indices (ascending) at which two clean caps differ, over the larger one's pages, in
 * a new array the caller frees with datacap_free() (NULL when there are none). O(d · log n)
 * for d differing pages. DIRTY_CAP when either cap is dirty. */
DATACAP_C_API datacap_status datacap_diff_pages(const datacap_cap* a, const datacap_cap* b,
                                                datacap_digest digest, uint64_t** out_indices,
                                                size_t* out_count);

/* ---- archives ---------------------------------------------------------------------------- */
/* datacap's file format for one cap (archive.hpp, docs/format.md §2). Archives are untrusted
 * input: every problem is DATACAP_DECODE naming the field and byte offset. */

typedef struct datacap_archive_info {
  datacap_digest digest;
  uint64_t content_len;
  uint64_t page_count;
  uint64_t stored_pages;  /* Loaded table entries (backing and overlay counted apart) */
  uint64_t unique_pages;  /* payloads in the file */
  uint64_t missing_pages; /* Missing table entries */
  uint64_t dirty_pages;   /* overlay entries */
  uint64_t flushed_loaded_pages;
  uint64_t flushed_missing_pages;
  uint64_t file_size;
  datacap_hash root; /* the recorded root of the flushed cap */
} datacap_archive_info;

/* Writes `cap` (clean or dirty; Missing pages kept as hashes) to `path` through a temporary
 * file renamed into place: `path` is never left half-written, and a path that is not a regular
 * file is refused (IO). A cap of size 0 has no archive form (INVALID_ARGUMENT, nothing
 * created). `info` may be NULL. */
DATACAP_C_API datacap_status datacap_archive_write(const datacap_cap* cap, const char* path,
                                                   datacap_digest digest,
                                                   datacap_archive_info* info);

typedef DATACAP_ENUM(datacap_archive_verify){
    DATACAP_VERIFY_STRUCTURE = 0, /* layout now; each page checked when first hashed */
    DATACAP_VERIFY_FULL = 1       /* also every payload and the root now: O(stored bytes) */
} datacap_archive_verify;

typedef DATACAP_ENUM(datacap_file_access){
    /* Pages served from a read-only mapping of the file: the caller guarantees the file is not
     * rewritten or truncated while the cap's pages are in use (reading past a truncated end
     * raises SIGBUS, the kernel's rule for mappings). */
    DATACAP_ACCESS_MAP = 0,
    /* The file is read once into private memory: nothing done to it afterwards reaches the cap. */
    DATACAP_ACCESS_COPY = 1} datacap_file_access;

/* Opens an archive as a new cap (*out, freed with datacap_cap_free). max_memory: 0 for no
 * limit, else a larger cap is refused (OUT_OF_RANGE) before anything is built. `info` may be
 * NULL. Errors: DECODE, IO, OUT_OF_RANGE; every message names `path`. */
DATACAP_C_API datacap_status datacap_archive_open(const char* path, datacap_archive_verify verify,
                                                  datacap_file_access access, uint64_t max_memory,
                                                  datacap_cap** out, datacap_archive_info* info);

/* An archive read through its file descriptor, without building a cap: memory is its tables
 * (8 bytes per entry, 32 per hash) plus 1 MiB. */
typedef struct datacap_archive datacap_archive;

/* Opens `path` and reads and checks its header and tables (DECODE, IO, OUT_OF_RANGE over a
 * non-zero max_memory). */
DATACAP_C_API datacap_status datacap_archive_new(const char* path, uint64_t max_memory,
                                                 datacap_archive** out);
DATACAP_C_API void datacap_archive_free(datacap_archive* archive);
/* The header's counts and recorded root. INVALID_ARGUMENT for NULL. */
DATACAP_C_API datacap_status datacap_archive_get_info(const datacap_archive* archive,
                                                      datacap_archive_info* out);
/* Checks the recorded root, then every payload against its hash: every byte of content tied to
 * the root. O(stored bytes). DECODE at the first mismatch, IO when the file shrinks. */
DATACAP_C_API datacap_status datacap_archive_verify_all(const datacap_archive* archive);
/* Calls fn(context, page_index, bytes) for every Loaded page of the flushed cap, ascending;
 * `bytes` is 4096 bytes valid during the call, checked against its recorded hash before. A
 * non-zero return from fn stops the walk (the call then returns DATACAP_OK). MISSING_PAGE
 * before the first call when the cap has a Missing page, DECODE for a page that does not match
 * its hash (earlier pages were delivered). */
DATACAP_C_API datacap_status datacap_archive_for_each_page(
    const datacap_archive* archive,
    int (*fn)(void* context, uint64_t page_index, const uint8_t* bytes), void* context);
/* Full verification of the file at `path` without building a cap; `info` may be NULL. */
DATACAP_C_API datacap_status datacap_archive_verify_file(const char* path,
                                                         datacap_archive_info* info);

/* ---- stores ------------------------------------------------------------------------------ */
/* A content-addressed page store with saved caps (store.hpp): pages keyed by their SHA-256
 * page root, caps by their SHA-256 cap root. Every page read back is checked against its root
 * before a cap sees it. */
typedef struct datacap_store datacap_store;

typedef struct datacap_lmdb_options {
  uint64_t map_size; /* largest size the database may grow to; 0: 1 TiB */
  bool create;       /* create the store when it does not exist; false: an existing one only */
  bool read_only;    /* writes are then INVALID_ARGUMENT */
} datacap_lmdb_options;

/* Opens (or creates) a persistent LMDB store in directory `path`. options NULL: create, read
 * and write, 1 TiB map. Errors: IO, DECODE (a damaged or foreign data.mdb), naming `path`. */
DATACAP_C_API datacap_status datacap_store_open_lmdb(const char* path,
                                                     const datacap_lmdb_options* options,
                                                     datacap_store** out);
/* A store in memory, gone when freed. */
DATACAP_C_API datacap_status datacap_store_new_memory(datacap_store** out);
DATACAP_C_API void datacap_store_free(datacap_store* store);

/* Saves a clean cap (its Loaded pages, then its record) and gives its SHA-256 root (out_root
 * may be NULL). Saving again writes nothing. DIRTY_CAP, IO; INVALID_ARGUMENT when read-only. */
DATACAP_C_API datacap_status datacap_store_save_cap(datacap_store* store, const datacap_cap* cap,
                                                    datacap_hash* out_root);
/* The cap saved under `root`, as a new cap; pages the store lacks are Missing. NOT_FOUND,
 * INTEGRITY (a page or the whole does not match its root), DECODE (a damaged record), IO. */
DATACAP_C_API datacap_status datacap_store_load_cap(const datacap_store* store,
                                                    const datacap_hash* root, datacap_cap** out);
/* Whether a cap is saved under `root` / a page stored under `root`. */
DATACAP_C_API datacap_status datacap_store_has_cap(const datacap_store* store,
                                                   const datacap_hash* root, bool* out);
DATACAP_C_API datacap_status datacap_store_has_page(const datacap_store* store,
                                                    const datacap_hash* root, bool* out);
/* Stores `len` <= 4096 bytes zero-padded as a page and gives its page root. */
DATACAP_C_API datacap_status datacap_store_put_page(datacap_store* store, const uint8_t* bytes,
                                                    size_t len, datacap_hash* out_root);
/* Copies the page stored under `root` into out[4096] and sets *found; *found = 0 (and `out`
 * untouched) when there is none. The bytes are checked against `root` (INTEGRITY). */
DATACAP_C_API datacap_status datacap_store_get_page(const datacap_store* store,
                                                    const datacap_hash* root, uint8_t* out,
                                                    bool* found);

typedef struct datacap_gc_report {
  uint64_t caps_kept;
  uint64_t caps_removed;
  uint64_t pages_kept;
  uint64_t pages_removed;
} datacap_gc_report;

/* Keeps the caps in keep[0..count) and every page they reference; removes every other cap and
 * page. NOT_FOUND (nothing removed) when a root is not a saved cap; INVALID_ARGUMENT when
 * read-only. `report` may be NULL. */
DATACAP_C_API datacap_status datacap_store_gc(datacap_store* store, const datacap_hash* keep,
                                              size_t count, datacap_gc_report* report);

typedef struct datacap_saved_cap {
  datacap_hash root;
  uint64_t content_len;
  uint64_t page_entries; /* non-zero pages in its page table */
} datacap_saved_cap;

/* Every saved cap, ordered by root, in a new array the caller frees with datacap_free() (NULL
 * when there are none). DECODE for a damaged record. */
DATACAP_C_API datacap_status datacap_store_list_caps(const datacap_store* store,
                                                     datacap_saved_cap** out_caps,
                                                     size_t* out_count);

/* Resolves the cap's Missing pages from the store in one batch, each checked against its hash
 * first (INTEGRITY, nothing changed); pages the store lacks stay Missing. `hydrated` and
 * `still_missing` may be NULL. */
DATACAP_C_API datacap_status datacap_store_hydrate(const datacap_store* store, datacap_cap* cap,
                                                   uint64_t* hydrated, uint64_t* still_missing);

/* ---- proofs ------------------------------------------------------------------------------ */
/* Merkle proofs against a cap root (proof.hpp). Proof structs are plain values: the library
 * fills them (arrays it allocates are released by the `_clear` function, which also zeroes the
 * struct), and a caller may fill one itself, pointing at its own arrays, to verify a proof it
 * received. Verification trusts nothing in the proof but checks it against the root alone. */

typedef struct datacap_page_proof {
  uint64_t content_len;
  uint64_t page_index;
  datacap_hash leaf;    /* the page's slot root */
  datacap_hash* branch; /* siblings from the leaf up; the size root last */
  size_t branch_len;
} datacap_page_proof;

/* Proof of one page of a clean cap into *out (overwritten; clear it after). DIRTY_CAP,
 * OUT_OF_RANGE, INVALID_ARGUMENT for an unknown digest. */
DATACAP_C_API datacap_status datacap_prove_page(const datacap_cap* cap, uint64_t page_index,
                                                datacap_digest digest, datacap_page_proof* out);
/* *valid = whether the proof folds to `root`. A bad proof is *valid = 0, not an error; NULL
 * arguments are INVALID_ARGUMENT. O(depth) pair hashes. */
DATACAP_C_API datacap_status datacap_verify_page_proof(const datacap_page_proof* proof,
                                                       const datacap_hash* root,
                                                       datacap_digest digest, bool* valid);
DATACAP_C_API void datacap_page_proof_clear(datacap_page_proof* proof);

typedef struct datacap_multi_proof {
  uint64_t content_len;
  uint64_t* page_indices; /* ascending, distinct */
  datacap_hash* leaves;   /* leaves[k]: slot root of page_indices[k] */
  size_t page_count;
  datacap_hash* helpers; /* sibling hashes, deepest first, the size root last */
  size_t helper_count;
} datacap_multi_proof;

/* Proof of the pages page_indices[0..count) (ascending, distinct, count > 0) of a clean cap. */
DATACAP_C_API datacap_status datacap_prove_pages(const datacap_cap* cap,
                                                 const uint64_t* page_indices, size_t count,
                                                 datacap_digest digest, datacap_multi_proof* out);
DATACAP_C_API datacap_status datacap_verify_multi_proof(const datacap_multi_proof* proof,
                                                        const datacap_hash* root,
                                                        datacap_digest digest, bool* valid);
DATACAP_C_API void datacap_multi_proof_clear(datacap_multi_proof* proof);

typedef struct datacap_range_proof {
  uint64_t offset;
  uint64_t length;
  datacap_multi_proof pages; /* the pages covering [offset, offset + length) */
  uint8_t* page_bytes;       /* 4096 bytes per page of pages.page_indices */
  size_t page_bytes_len;
} datacap_range_proof;

/* Proof of bytes [offset, offset + length) of a clean cap, with the covering pages' bytes
 * (the proven bytes are page_bytes + offset % 4096, `length` of them). INVALID_ARGUMENT for
 * length 0, OUT_OF_RANGE past the end, MISSING_PAGE when a covering page is Missing. */
DATACAP_C_API datacap_status datacap_prove_range(const datacap_cap* cap, uint64_t offset,
                                                 uint64_t length, datacap_digest digest,
                                                 datacap_range_proof* out);
DATACAP_C_API datacap_status datacap_verify_range_proof(const datacap_range_proof* proof,
                                                        const datacap_hash* root,
                                                        datacap_digest digest, bool* valid);
DATACAP_C_API void datacap_range_proof_clear(datacap_range_proof* proof);

/* ---- guest windows (Linux) ----------------------------------------------------------------- */
/* A cap mapped into one native address range for recompiled guest code (window.hpp): loads and
 * stores at datacap_window_base() are plain instructions; clean pages are shared with every
 * other window of the image, the hardware copies a page on its first store, and harvest puts
 * exactly the written pages back into a cap. Missing pages are inaccessible: a guest access
 * faults (SIGSEGV), and datacap_window_classify, async-signal-safe, says which page and hash.
 * The library installs no signal handler. Costs: mapping O(mappings of the cap's layout)
 * system calls (the layout is computed once per flushed backing and cached); harvest one scan
 * plus one page copy per written page. Guest threads may store concurrently; harvest, reset,
 * remap and free need the guests stopped and no other call on the window. */
typedef struct datacap_window datacap_window;

typedef DATACAP_ENUM(datacap_dirty_tracking){
    DATACAP_TRACKING_AUTO = -1,        /* the first the host allows (or DATACAP_DIRTY_TRACKING) */
    DATACAP_TRACKING_UFFD_WP_SCAN = 0, /* userfaultfd write-protection + PAGEMAP_SCAN (>= 6.7) */
    DATACAP_TRACKING_PAGEMAP_SCAN = 1, /* PAGEMAP_SCAN alone */
    DATACAP_TRACKING_PROC_PAGEMAP = 2  /* reading /proc/self/pagemap */
} datacap_dirty_tracking;

typedef struct datacap_window_options {
  uint64_t reserve_bytes;          /* address space for caps; 0: the cap's size */
  uint64_t guard_bytes;            /* inaccessible bytes after it */
  datacap_dirty_tracking tracking; /* DATACAP_TRACKING_AUTO or one to force */
  uint32_t max_mappings;           /* mappings before a backing is compacted; 0: default (64) */
} datacap_window_options;

/* The defaults: reserve 0, guard 1 MiB, AUTO, 64. */
DATACAP_C_API datacap_window_options datacap_window_default_options(void);

/* Maps `cap` (NULL options: the defaults). UNSUPPORTED when no dirty tracking works here (or
 * not the one forced), IO when the kernel refuses a mapping, INVALID_ARGUMENT for bad options. */
DATACAP_C_API datacap_status datacap_window_new(const datacap_cap* cap,
                                                const datacap_window_options* options,
                                                datacap_window** out);
/* Unmaps everything. NULL is fine. */
DATACAP_C_API void datacap_window_free(datacap_window* window);
/* The first byte of the content (page-aligned; stable across remap); NULL for NULL. */
DATACAP_C_API uint8_t* datacap_window_base(const datacap_window* window);
/* The mapped cap's size; 0 for NULL. */
DATACAP_C_API uint64_t datacap_window_size(const datacap_window* window);
/* The tracking in use (DATACAP_TRACKING_AUTO for NULL). */
DATACAP_C_API datacap_dirty_tracking datacap_window_tracking(const datacap_window* window);
/* A new cap: the mapped cap with every page written since the map (or the last harvest or
 * reset) in its overlay; the window then shows it. On failure nothing is lost. */
DATACAP_C_API datacap_status datacap_window_harvest(datacap_window* window, datacap_cap** out);
/* Undoes the stores since the last harvest. */
DATACAP_C_API datacap_status datacap_window_reset(datacap_window* window);
/* Shows `cap` instead (up to the reserved size: OUT_OF_RANGE beyond); unharvested stores are
 * dropped. */
DATACAP_C_API datacap_status datacap_window_remap(datacap_window* window, const datacap_cap* cap);

typedef DATACAP_ENUM(datacap_fault_kind){
    DATACAP_FAULT_PAGE = 0,    /* a mapped page of the cap */
    DATACAP_FAULT_MISSING = 1, /* a Missing page: `hash` is its content's hash */
    DATACAP_FAULT_GUARD = 2,   /* past the cap: reserved range or guard */
    DATACAP_FAULT_OUTSIDE = 3  /* not this window's */
} datacap_fault_kind;

typedef struct datacap_window_fault {
  datacap_fault_kind kind;
  uint64_t page_index;
  datacap_hash hash;
} datacap_window_fault;

/* What `address` is to the window. Async-signal-safe; never fails (OUTSIDE for NULL). */
DATACAP_C_API datacap_window_fault datacap_window_classify(const datacap_window* window,
                                                           const void* address);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DATACAP_DATACAP_H */
