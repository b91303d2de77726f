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
  std::uint64_t stored_pages = 0;   // backing + overlay entries that are Loaded
  std::uint64_t unique_pages = 0;   // payloads in the file (after deduplication)
  std::uint64_t missing_pages = 0;  // Missing entries (backing + overlay)
  std::uint64_t dirty_pages = 0;    // overlay entries
  std::uint64_t file_size = 0;
  Hash32 root{};                    // the recorded cap root of the flushed cap
};

struct OpenedArchive {
  DataCap cap;
  ArchiveInfo info;
};

// Writes `cap` to `path` (through a temporary file renamed into place: `path` is never left
// half-written). O(stored pages). Throws IoError, and MissingPage never (Missing is kept).
DATACAP_API ArchiveInfo write_archive(const DataCap& cap, const std::string& path,
                                      Digest digest = Digest::sha256);

// Opens an archive. Throws DecodeError for anything malformed or (full) any hash that does not
// match, IoError when the file cannot be read.
DATACAP_API OpenedArchive open_archive(const std::string& path,
                                       ArchiveVerify verify = ArchiveVerify::full);

// True when the file at `path` begins with the archive magic (a cheap sniff, not a check).
// Throws IoError when it cannot be opened.
DATACAP_API bool is_archive_file(const std::string& path);

// A clean cap of a raw file's bytes, as DataCap::from_bytes_sized(file bytes, size) would give,
// without copying them: Loaded pages borrow a read-only mapping of the file (kept mapped while
// any page lives), all-zero pages and holes of sparse files are Empty (holes are not read).
// Heap use is about 70 bytes per non-zero page. The file must not be changed or truncated
// while the cap's pages are in use (a truncated mapping faults). Throws IoError (not a regular
// file, cannot be read), OutOfRange (beyond 2^32 pages). O(file bytes) for the zero scan.
DATACAP_API DataCap map_raw_file(const std::string& path, std::uint64_t size = 0);

// Full verification of the file; returns its info. Same errors as open_archive.
DATACAP_API ArchiveInfo verify_archive(const std::string& path);

// Streams pages into a new archive of a clean cap, holding only its tables in memory (about
// 50 bytes per stored page): how `datacap pack` archives files of any size.
class DATACAP_API ArchiveWriter {
 public:
  ArchiveWriter(const std::string& path, Digest digest = Digest::sha256);
  ~ArchiveWriter();  // removes the temporary file unless finish() succeeded
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
