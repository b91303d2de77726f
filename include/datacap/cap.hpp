// DataCap: a VM's memory object (SPEC §2–§4).
//
// A cap is whole 4 KiB pages: an immutable, shared backing (PageSlab) plus a private
// copy-on-write overlay of the pages this cap has written. Copying a cap (the VM's MGMT_COPY)
// is O(1) whatever its size or overlay: the backing and the overlay are persistent trees whose
// nodes are shared and copied only on the path of a later write. No operation on one cap ever
// changes the effective bytes or the root of another, whatever they share.
//
// Cost model (n = page_count, L = radix levels = ceil(log2 n / 6) ≤ 6, k = pages touched):
//   copy                         O(1)
//   page_slot / page_at / is_dirty   O(L) pointer hops, no allocation
//   copy_into(start, out)        O(out.size() + L · pages covered)
//   write(off, bytes)            O(bytes + L · pages); a page the overlay already owns alone is
//                                patched in place; otherwise one page copy per touched page
//   write_page / put_page        O(PAGE_SIZE + L · 64) (path copy of shared nodes)
//   flush()                      O(k · L · 64) for k overlay pages, plus a zero check per page
//   hash_tree_root()             O(1) when cached; else hashes only pages and nodes changed since
//                                the backing's last root (O(k · L · 64) hashes); zero subtrees
//                                are never hashed
//   place_shared(dst, src)       O(pages stored in the range) reference-count increments
//
// Errors: every method documents the datacap::Error subclasses it throws; any allocation may
// throw std::bad_alloc. Mutating methods give the strong guarantee: when they throw (bad_alloc
// included), the cap's pages, overlay and root are as before. A write over several pages
// allocates every page copy before it changes a byte; elide_pages, resolve_missing and
// place_shared build the change aside and commit it at the end. (flush() && gives up the cap it
// is called on, whatever happens.)
//
// Thread-safety: const methods may be called concurrently on one cap (lazy hash caches are
// race-free). Distinct caps — including copies that share a backing and pages — may be used
// and mutated on different threads without synchronization. Mutating one cap object
// concurrently with any other use of that same object needs outside synchronization.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "datacap/export.hpp"
#include "datacap/hash.hpp"
#include "datacap/page.hpp"
#include "datacap/slab.hpp"

namespace datacap {

namespace detail {
struct CapAccess;
}

// One named page of from_sparse_pages: its index and ≤ PAGE_SIZE bytes (zero-padded).
struct SparsePage {
  std::uint32_t page_index;
  std::span<const std::uint8_t> bytes;
};

class DATACAP_API DataCap {
 public:
  // empty(): size 0, no pages, no overlay.
  DataCap() noexcept = default;
  DataCap(const DataCap& other) noexcept;  // MGMT_COPY: O(1)
  DataCap(DataCap&& other) noexcept;
  DataCap& operator=(const DataCap& other) noexcept;
  DataCap& operator=(DataCap&& other) noexcept;
  ~DataCap();

  [[nodiscard]] static DataCap empty() noexcept { return DataCap(); }
  // A clean cap of `content_len` bytes, all pages Empty. Throws InvalidArgument when not a
  // PAGE_SIZE multiple, OutOfRange above 2^32 pages. O(1).
  [[nodiscard]] static DataCap zeroed(std::uint64_t content_len);
  // Size = len(content) rounded up to a page, at least one page; all-zero pages Empty; clean.
  // Throws OutOfRange above 2^32 pages. O(len).
  [[nodiscard]] static DataCap from_bytes(std::span<const std::uint8_t> content);
  // Size = max(target, len(content)) rounded up to a page, at least one page; content fills
  // the low bytes, the rest is zero. Throws OutOfRange above 2^32 pages. O(len + L).
  [[nodiscard]] static DataCap from_bytes_sized(std::span<const std::uint8_t> content,
                                                std::uint64_t target);
  // A clean cap of `content_len` bytes (rounded up to a page, at least one page) whose named
  // pages hold their bytes zero-padded; all-zero named pages are Empty. Byte- and
  // root-identical to from_bytes_sized of the equivalent contiguous content. Throws OutOfRange
  // for a page_index >= page_count or bytes longer than a page, InvalidArgument for a page
  // named twice. O(total bytes + pages · L).
  [[nodiscard]] static DataCap from_sparse_pages(std::uint64_t content_len,
                                                 std::span<const SparsePage> pages);
  // A clean cap whose backing is `backing`. O(1).
  [[nodiscard]] static DataCap from_backing(PageSlab backing) noexcept;

  [[nodiscard]] std::uint64_t content_len() const noexcept { return backing_.content_len(); }
  [[nodiscard]] std::uint64_t page_count() const noexcept { return backing_.page_count(); }
  [[nodiscard]] const PageSlab& backing() const noexcept { return backing_; }

  // True iff the overlay holds Loaded or Missing at page_index (false past the end).
  [[nodiscard]] bool is_dirty(std::uint64_t page_index) const noexcept;
  // True when the overlay is empty (the cap is settled).
  [[nodiscard]] bool is_clean() const noexcept { return overlay_count_ == 0; }
  // Pages in the overlay. O(1).
  [[nodiscard]] std::uint64_t dirty_page_count() const noexcept { return overlay_count_; }
  // Calls fn(page_index, slot) for every overlay page in ascending order.
  void for_each_dirty(const std::function<void(std::uint32_t, const PageSlot&)>& fn) const;
  // Calls fn(page_index, slot) for every effective page that is not Empty (the overlay's slot
  // where it shadows, else the backing's) in ascending order: the pages of backing ∪ overlay.
  // An overlay page of zeros is reported (it is Loaded until flush). O(stored pages + nodes).
  void for_each_page(const std::function<void(std::uint32_t, const PageSlot&)>& fn) const;

  // The effective slot: the overlay's if it shadows, else the backing's.
  // Throws OutOfRange when page_index >= page_count().
  [[nodiscard]] PageSlot page_slot(std::uint64_t page_index) const;
  // The effective page containing byte `off` (any alignment) as Zero, Bytes or Missing.
  // Throws OutOfRange when off >= content_len(). Allocates nothing.
  [[nodiscard]] PageResolution page_at(std::uint64_t off) const;
  // Fills `out` with the effective bytes from `start`; zero pages read as zeros. Throws
  // OutOfRange when the range ends past content_len(), MissingPage when it covers a Missing
  // page (out may then be partly written).
  void copy_into(std::uint64_t start, std::span<std::uint8_t> out) const;

  // Overwrites the BACKING page containing `off` with `content` zero-padded, canonically (all
  // zeros become Empty). Shared nodes are copied first; other caps never see the change. Does
  // not touch the overlay (an overlay page there keeps shadowing). Throws OutOfRange when
  // off >= content_len() or content.size() > PAGE_SIZE.
  void put_page(std::uint64_t off, std::span<const std::uint8_t> content);
  // Sets the OVERLAY page containing `off` to `content` zero-padded, always as an explicit
  // Loaded page (even all zeros, so it shadows a non-zero backing page). Same errors as
  // put_page.
  void write_page(std::uint64_t off, std::span<const std::uint8_t> content);
  // Writes `bytes` at byte offset `off` into the overlay, across page boundaries. A fully
  // covered page becomes a new Loaded page; a partly covered one copies the effective page
  // first, then patches it; a page the overlay already owns alone is patched in place. Throws
  // OutOfRange when the range ends past content_len(), MissingPage when a partly covered page
  // is Missing (nothing is written then).
  void write(std::uint64_t off, std::span<const std::uint8_t> bytes);
  // Moves an already-built slot into the overlay at page_index (no byte copy). An Empty slot
  // removes the overlay entry (Empty does not shadow). Throws OutOfRange when
  // page_index >= page_count().
  void insert_overlay_page(std::uint64_t page_index, PageSlot slot);
  // Backing page dst_off/PAGE_SIZE + i becomes src.page_slot(i) for every page i of src, by
  // reference (no byte copy); pages past this cap's size are dropped. The result is canonical.
  // Throws InvalidArgument when dst_off is not page-aligned.
  void place_shared(std::uint64_t dst_off, const DataCap& src);

  // ---- eliding and hydrating (partial state) --------------------------------------------------
  // Missing hashes are SHA-256 page roots: eliding and hydrating keep the SHA-256 cap root and
  // its cached node hashes. (Under BLAKE2b a Missing slot's leaf is its hash, SPEC §4, so the
  // BLAKE2b root of a cap with Missing pages differs from the fully loaded one's.)

  // Turns the effective Loaded pages at `page_indices` into Missing(page root), wherever they
  // live (backing or overlay); Empty and Missing pages are left as they are. A shared backing is
  // path-copied first, so no other cap sees a change. Throws OutOfRange (nothing changed) when
  // an index is >= page_count(). O(k · (PAGE_SIZE hash if not cached + L · 64)).
  void elide_pages(std::span<const std::uint64_t> page_indices);
  // Effective Missing pages, ascending. O(stored pages).
  [[nodiscard]] std::vector<std::uint64_t> missing_pages() const;

  struct ResolvedPage {
    std::uint64_t page_index;
    PageRef page;  // the bytes fetched for that page's hash
  };
  // Replaces Missing pages by the given bytes, after checking every one first: throws
  // OutOfRange for an index >= page_count(), InvalidArgument when a page is not Missing (or is
  // named twice), IntegrityError when a page's root is not its Missing hash — and then nothing
  // has changed. Keeps the SHA-256 root; never mutates a backing another cap can see.
  // O(k · (PAGE_SIZE hash + L · 64)).
  void resolve_missing(std::span<const ResolvedPage> pages);

  // A new clean cap: the backing with every shadowing overlay page folded in canonically (a
  // zero page becomes Empty, Missing stays Missing). This cap is unchanged. The && overload
  // reuses this cap's nodes in place when nothing else shares them.
  [[nodiscard]] DataCap flush() const&;
  [[nodiscard]] DataCap flush() &&;

  // The cap root (SPEC §4). Throws DirtyCap when the overlay is not empty (flush first).
  [[nodiscard]] Hash32 hash_tree_root(Digest digest = Digest::sha256) const;

 private:
  friend struct detail::CapAccess;  // the library's own builders and invariant checks
  PageSlab backing_;
  detail::TreeNode* overlay_ = nullptr;  // same radix shape as the backing; null: clean
  std::uint64_t overlay_count_ = 0;
};

}  // namespace datacap
