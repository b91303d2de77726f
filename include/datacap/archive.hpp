// Snapshot archives: datacap's file format for one cap, clean or dirty (layout: docs/format.md
// §2). Page payloads sit at PAGE_SIZE-aligned file offsets, so an opened archive serves its
// pages to the cap straight from a read-only memory mapping, without copying them; the mapping
// lives as long as any cap can reach one of its pages. All-zero pages are elided, identical pages
// stored once, Missing pages kept as hashes, and a dirty cap's overlay kept.
//
// Archives are untrusted input. Opening checks the whole structure (header, its hash, counts,
// offsets, sizes, every table entry) before building anything, and reports the first problem as a
// DecodeError naming the field and byte offset; nothing half-built is returned. Content is
// checked against the recorded page hashes and root either on open (ArchiveVerify::full) or
// lazily (ArchiveVerify::structure): no recorded hash is trusted, every page root is computed from
// the page's bytes when first needed and compared with the recorded one then — a mismatch makes
// that computation (e.g. the cap's hash_tree_root()) throw DecodeError. verify_archive() checks
// everything at once, the recorded cap root included.
//
// Thread-safety: free functions; the returned cap follows DataCap's rules.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "datacap/cap.hpp"
#include "datacap/export.hpp"
#include "datacap/hash.hpp"

namespace datacap {

enum class ArchiveVerify {
  structure,  // validate the layout now: O(entries), no page read; pages checked on first hash
  full,       // also hash every payload and the cap: O(stored bytes)
};

struct ArchiveInfo {
  Digest digest = Digest::sha256;
  std::uint64_t content_len = 0;
  std::uint64_t page_count = 0;
  // Table entries (backing and overlay counted separately, so a page in both counts twice):
  std::uint64_t stored_pages = 0;   // entries that are Loaded (an overlay zero page included)
  std::uint64_t unique_pages = 0;   // payloads in the file (after deduplication)
  std::uint64_t missing_pages = 0;  // entries that are Missing
  std::uint64_t dirty_pages = 0;    // overlay entries
  // The cap as flushed (overlay folded into the backing; what the root is the root of):
  std::uint64_t flushed_loaded_pages = 0;   // its Loaded, non-zero pages
  std::uint64_t flushed_missing_pages = 0;  // its Missing pages
  std::uint64_t file_size = 0;
  Hash32 root{};  // the recorded cap root of the flushed cap
};

struct OpenedArchive {
  DataCap cap;
  ArchiveInfo info;
};

// Writes `cap` to `path` through a temporary file beside it (PATH.tmp-PID) renamed into place:
// `path` is never left half-written. A symbolic link is followed (its target is replaced, the
// link stays); an existing path that is not a regular file (device, FIFO, directory) is refused
// with IoError, never replaced. O(stored pages). Throws IoError (every write, the sync and the
// rename checked), InvalidArgument for an empty path or a cap of size 0 (the format holds 1 to
// 2^32 pages; nothing is created); never MissingPage (Missing is kept).
DATACAP_API ArchiveInfo write_archive(const DataCap& cap, const std::string& path,
                                      Digest digest = Digest::sha256);

// How an opened archive's pages reach the cap.
enum class FileAccess {
  // Zero-copy: pages are served from a read-only mapping of the file. The caller guarantees that
  // the file is neither rewritten nor truncated while any page of the cap is in use: a rewritten
  // page changes bytes that were (or will be) checked against their hash, and reading a page
  // past a truncated end raises SIGBUS (the kernel's rule for mappings).
  map,
  // The file is read once into private memory (its size in anonymous pages): nothing done to the
  // file afterwards can reach the cap. A file that changes size while it is read is an IoError.
  copy,
};

struct ArchiveOpenOptions {
  ArchiveVerify verify = ArchiveVerify::full;
  FileAccess access = FileAccess::map;
  // 0: no limit. Otherwise an archive whose cap would take more memory than this (the private
  // copy with FileAccess::copy, plus an estimate of the tree nodes, their cached hashes and page
  // objects, from the tables: a sparse archive costs up to ~5 KiB per entry) is refused with
  // MemoryLimitExceeded (an OutOfRange) before anything is built.
  std::uint64_t max_memory = 0;
};

// Opens an archive. Throws DecodeError for anything malformed or (full) any hash that does not
// match, IoError when the file cannot be read (or, with FileAccess::copy, changes size while it
// is read), MemoryLimitExceeded over options.max_memory. Every error names `path`.
DATACAP_API OpenedArchive open_archive(const std::string& path, const ArchiveOpenOptions& options);
// open_archive(path, {verify, FileAccess::map, 0}).
DATACAP_API OpenedArchive open_archive(const std::string& path,
                                       ArchiveVerify verify = ArchiveVerify::full);

// Reads an archive through its file descriptor, without mapping it and without building a cap:
// memory stays at its tables (8 bytes per entry, 32 per hash) plus a 1 MiB buffer, whatever the
// archive's content, and the file changing meanwhile can neither fault the reader nor get
// unchecked bytes past it. How `datacap info`, `verify`, `unpack` and `root --archive` read.
// Thread-safety: const members may run concurrently (each read is a pread).
class DATACAP_API ArchiveReader {
 public:
  // Opens `path` and reads its header and tables once, checking the structure as open_archive
  // does. O(entries). With max_memory != 0, tables larger than that are refused
  // (MemoryLimitExceeded) before they are read. Throws DecodeError, IoError (a file shorter than
  // its header says included), OutOfRange; every error names `path`.
  explicit ArchiveReader(const std::string& path, std::uint64_t max_memory = 0);
  ~ArchiveReader();
  ArchiveReader(ArchiveReader&&) noexcept;
  ArchiveReader& operator=(ArchiveReader&&) noexcept;

  // The header's and tables' counts; info().root is the recorded root (checked by verify()).
  [[nodiscard]] const ArchiveInfo& info() const noexcept;
  // Checks the recorded root against the root of the flushed cap computed from the recorded
  // page hashes (no payload is read): O(entries) hashes. Throws DecodeError.
  void check_root() const;
  // check_root(), then reads every payload once (1 MiB at a time) and checks it against its
  // recorded hash: together, every byte of content is tied to the root. O(stored bytes).
  // Throws DecodeError at the first mismatch, IoError when the file shrinks.
  void verify() const;
  // Calls fn(page_index, bytes) for every Loaded page of the flushed cap in ascending order,
  // `bytes` being PAGE_SIZE bytes valid during the call. Each page is read from the file and
  // checked against its recorded hash before fn sees it (call check_root() first to tie those
  // hashes to the root). Throws MissingPage before the first call when the flushed cap has a
  // Missing page; DecodeError for a page that does not match its hash (pages before it have
  // been delivered). O(pages · PAGE_SIZE).
  void for_each_page(
      const std::function<void(std::uint64_t page_index, const std::uint8_t* bytes)>& fn) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// True when `path` is a regular file that begins with the archive magic (a cheap sniff, not a
// check; a FIFO or device is never an archive and is not read). Throws IoError when it cannot be
// opened.
DATACAP_API bool is_archive_file(const std::string& path);

// ---- raw files ------------------------------------------------------------------------------
// A raw file is a cap's bytes as from_bytes_sized(file bytes, size) takes them: the cap's size
// is max(file length, size) rounded up to a whole page (at least one page).

// Where the pages of a stream of file bytes go (see stream_file_pages).
struct FilePageSink {
  // The next pages' bytes: whole pages, only the input's last page possibly partial.
  std::function<void(std::span<const std::uint8_t>)> on_pages;
  // The next `count` pages are all zero (a hole of a sparse file, never read).
  std::function<void(std::uint64_t count)> on_zero_pages;
  // Bytes consumed so far, of `total` (0 when unknown); called now and then. May be empty.
  std::function<void(std::uint64_t done, std::uint64_t total)> on_progress;
};

// Reads `path` ("-" is standard input) to its end, once, through `sink`, and returns its length
// in bytes. Holds one 1 MiB buffer. A regular file is read by its data extents (holes are
// reported as zero runs without being read) up to the length fstat gives when it is opened; a
// pipe or device, and a regular file whose length is 0 (the files of /proc say so whatever
// they hold), is read in order to its end. Throws IoError naming the file when it cannot
// be read, is a directory, or (regular files) shrinks or grows while it is read; InvalidArgument
// for an empty path. Exceptions from the sink propagate.
DATACAP_API std::uint64_t stream_file_pages(const std::string& path, const FilePageSink& sink);

// The length of `path` ("-": standard input) when it is a regular file, else 0. Never throws.
DATACAP_API std::uint64_t input_size_hint(const std::string& path) noexcept;

// A clean cap of a raw file's bytes (or standard input's, "-"), read once into pages of its
// own: changes to the file after (or while) it is read cannot change the cap's bytes, and a
// file truncated later cannot fault. All-zero pages and holes are Empty. Memory: the non-zero
// pages plus about 40 bytes of tree per page. With max_memory != 0, an input whose non-zero
// pages would take more (about 4.2 KiB each) is refused as it is read. Throws as
// stream_file_pages, and OutOfRange beyond 2^32 pages (zero pages counted: an endless /dev/zero
// ends there), MemoryLimitExceeded over max_memory. O(file bytes).
DATACAP_API DataCap read_raw_file(const std::string& path, std::uint64_t size = 0,
                                  std::uint64_t max_memory = 0);

// As read_raw_file, without copying: Loaded pages borrow a read-only mapping of the file (kept
// mapped while any page lives). Heap use is about 70 bytes per non-zero page. The caller
// guarantees that the file is neither changed nor truncated while the cap's pages are in use:
// a rewritten file changes bytes under roots already computed, and a page read past a
// truncated end raises SIGBUS in the reader (the kernel's rule for mappings). A file whose
// length is 0 (as /proc's files say) is read to its end instead, as read_raw_file
// reads it. Throws IoError (not a regular file, cannot be read), OutOfRange (beyond 2^32 pages).
// O(file bytes).
DATACAP_API DataCap map_raw_file(const std::string& path, std::uint64_t size = 0);

// Full verification of the file, through ArchiveReader::verify() (no cap is built: memory is
// the tables plus 1 MiB); returns its info. Same errors as ArchiveReader.
DATACAP_API ArchiveInfo verify_archive(const std::string& path);

// Streams pages into a new archive of a clean cap, holding only its tables in memory (about
// 50 bytes per stored page): how `datacap pack` archives files of any size.
class DATACAP_API ArchiveWriter {
 public:
  // Creates the temporary file as write_archive does (same rules and errors for `path`).
  ArchiveWriter(const std::string& path, Digest digest = Digest::sha256);
  ~ArchiveWriter();  // removes the temporary file unless finish() succeeded
  // The temporary file being written (for a caller that must remove it on a signal).
  [[nodiscard]] const std::string& temp_path() const noexcept;
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;

  // The next pages of the content, as CapRootBuilder::append_pages takes them.
  void append_pages(std::span<const std::uint8_t> bytes);
  // The next `count` pages are zero.
  void append_zero_pages(std::uint64_t count);
  // Completes the archive for a cap of max(size, pages appended) bytes rounded up to a page.
  ArchiveInfo finish(std::uint64_t size = 0);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace datacap
