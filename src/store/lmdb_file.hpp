// Internal: LMDB's data file (data.mdb) read with pread, never mapped — what the LMDB store checks
// before it lets LMDB map the file (docs/format.md §3, "What LMDB cannot detect").
//
// LMDB 0.9 (Debian 12's liblmdb 0.9.24; the layout is unchanged across 0.9.x) maps data.mdb and
// trusts it: a file shorter than the pages its meta page names makes the first access of such
// a page a SIGBUS, and it has no checksums. These checks read the two meta pages as
// mdb_env_read_header does, and more (page numbers, roots), before mdb_env_open.
//
// Layout on 64-bit little-endian builds (mdb.c): a page starts with a 16-byte header — pgno
// u64, pad u16, flags u16, then lower u16 and upper u16 (an overflow page: its page count u32).
// Pages 0 and 1 are meta pages; after the header, MDB_meta: magic u32 (0xBEEFC0DE), data
// version u32 (1), fixed-map address u64, map size u64, two MDB_db of 48 bytes (the free-page
// tree, whose first u32 is the page size, and the main tree), last used page number u64,
// txnid u64. LMDB uses the meta page with the higher txnid (meta 0 on a tie).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace datacap::detail {

struct LmdbFileCheck {
  bool exists = false;                     // false: no data.mdb yet (LMDB creates it)
  std::uint64_t file_len = 0;              // bytes
  std::uint32_t page_size = 0;             // LMDB's page size, bytes
  int newest_meta = 0;                     // the meta page LMDB will use, 0 or 1
  std::uint64_t txnid = 0;                 // its transaction id
  std::uint64_t last_pgno = 0;             // the highest page its snapshot may use
  std::uint64_t unwritten_free_pages = 0;  // pages past the end of the file, every one free
};

// Checks `file` (a data.mdb) before LMDB maps it: both meta pages valid as LMDB requires, and
// every page the newest snapshot may read inside the file. A file may end before its last page
// only when each page past its end is free (LMDB does not write a page freed in the
// transaction that allocated it); those are counted, read from the free-page tree with pread.
// O(1) reads, plus a walk of the free-page tree when the file is short.
// Throws DecodeError (field: the file and the page) for a file shorter than two meta pages, a
// bad meta page, or a file shorter than the pages its newest meta page uses; IoError when the
// file exists but cannot be read.
LmdbFileCheck check_lmdb_file(const std::string& file);

// The page numbers on the newest snapshot's free-page tree (sorted, unique), read with pread.
// For tests and diagnosis. Throws as check_lmdb_file.
std::vector<std::uint64_t> lmdb_free_pages(const std::string& file);

}  // namespace datacap::detail
