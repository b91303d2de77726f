// Internal: a read-only file mapping (or a private copy of a file) whose pages are served to caps
// without copying. Pages borrowed from it hold a reference, so it stays mapped while any cap can
// reach them.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "datacap/hash.hpp"

namespace datacap::detail {

// How a file's pages are checked the first time their root is computed: set by readers that
// defer verification (an archive opened without verifying every payload). check() throws
// (DecodeError) when `root`, computed from the PAGE_SIZE bytes at `page` under `digest`, is not
// the root the file recorded for that page. Called concurrently from any thread.
class BorrowedPageCheck {
 public:
  virtual ~BorrowedPageCheck() = default;
  virtual void check(const std::uint8_t* page, Digest digest, const Hash32& root) const = 0;
};

struct MappedFile {
  std::atomic<std::uint32_t> refs{1};
  void* base = nullptr;
  std::size_t len = 0;
  bool heap = false;  // base came from aligned operator new (tests, fuzzing), not mmap
  // Null: pages are trusted as they are (verified already, or raw data with nothing recorded).
  // Set before the first page is borrowed, never changed afterwards.
  std::unique_ptr<const BorrowedPageCheck> check;

  // Maps `len` (> 0) bytes of the open file `fd` read-only; the caller holds the one reference.
  // Throws IoError (naming `path`) when the mapping fails.
  static MappedFile* map_readonly(int fd, std::size_t len, const std::string& path);

  void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept;  // unmaps on the last reference

  // Drops the creator's reference at the end of a scope (pages hold their own).
  struct Holder {
    MappedFile* file;
    ~Holder() { file->release(); }
  };
};

}  // namespace datacap::detail
