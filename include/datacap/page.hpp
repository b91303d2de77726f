// Pages, page slots and the page resolution engines use to materialize memory (SPEC §2).
//
// A page is PAGE_SIZE bytes at a PAGE_SIZE-aligned address (an engine may map it straight into
// a page table) with an atomic reference count and its content hash, computed lazily on first
// need and cached race-free (concurrent first callers may each compute it; all see one value).
// A page reachable from more than one place is never written: the library copies it first.
//
// Memory: page bytes come from 2 MiB chunks the library maps itself. A page freed (its last
// handle gone) is kept for reuse — 64 MiB of them always, and up to 1/16 of the memory the
// process may use (physical memory, or its cgroup's limit when lower; at most 1 GiB) while
// allocations keep reusing them; pages no allocation reached for a whole second are given back
// to the kernel, 16 MiB per allocation or release after that (each thread keeps a few pages of
// its own and reaches the shared pool every 32 pages). So a process that drops a 1 GiB cap and
// loads the next one pays no page faults for it, and one that stops allocating keeps at most
// what it held when it stopped. fork() gives back what exceeds the 64 MiB first. Where the
// kernel's pages are larger than 4 KiB, freed pages are never given back (one kernel page may
// hold pages still in use), and stay in the library for reuse.
//
// Thread-safety: PageRef and PageSlot are handles with atomic reference counts. Distinct
// handles may be copied, destroyed and read on different threads even when they name the same
// page; one handle object is not to be mutated concurrently with any other use of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "datacap/export.hpp"
#include "datacap/hash.hpp"

namespace datacap {

namespace detail {
struct PageNode;
}

// An owning, reference-counted handle to one Loaded page (or null).
class DATACAP_API PageRef {
 public:
  PageRef() noexcept = default;
  PageRef(const PageRef& other) noexcept;
  PageRef(PageRef&& other) noexcept : node_(other.node_) { other.node_ = nullptr; }
  PageRef& operator=(const PageRef& other) noexcept;
  PageRef& operator=(PageRef&& other) noexcept;
  ~PageRef();

  // A new page holding `bytes` zero-padded. Throws OutOfRange when bytes.size() > PAGE_SIZE.
  // O(PAGE_SIZE); allocates one aligned page.
  [[nodiscard]] static PageRef copy_of(std::span<const std::uint8_t> bytes);

  [[nodiscard]] explicit operator bool() const noexcept { return node_ != nullptr; }
  // The page's PAGE_SIZE bytes, PAGE_SIZE-aligned. REQUIRES: non-null. Valid while any handle
  // to the page lives.
  [[nodiscard]] const std::uint8_t* data() const noexcept;
  [[nodiscard]] std::span<const std::uint8_t, PAGE_SIZE> bytes() const noexcept {
    return std::span<const std::uint8_t, PAGE_SIZE>(data(), PAGE_SIZE);
  }
  // The page root under `digest`; O(PAGE_SIZE) on first call per digest, O(1) after.
  // REQUIRES: non-null.
  [[nodiscard]] Hash32 root(Digest digest = Digest::sha256) const;
  // True when every byte is zero. O(PAGE_SIZE).
  [[nodiscard]] bool is_zero() const noexcept;
  // Number of handles (and tree slots) naming this page; 0 for a null handle. A snapshot only.
  [[nodiscard]] std::uint32_t use_count() const noexcept;

  friend bool operator==(const PageRef& a, const PageRef& b) noexcept { return a.node_ == b.node_; }

 private:
  friend class PageSlot;
  friend struct detail::PageNode;
  explicit PageRef(detail::PageNode* adopted) noexcept : node_(adopted) {}
  detail::PageNode* node_ = nullptr;
};

// One page of a cap: Empty (the canonical zero page, owns nothing), Loaded (a page) or
// Missing (known only by its 32-byte hash; NOT zero). One pointer wide.
class DATACAP_API PageSlot {
 public:
  enum class Kind : std::uint8_t { empty, loaded, missing };

  PageSlot() noexcept = default;  // Empty
  PageSlot(const PageSlot& other) noexcept;
  PageSlot(PageSlot&& other) noexcept : node_(other.node_) { other.node_ = nullptr; }
  PageSlot& operator=(const PageSlot& other) noexcept;
  PageSlot& operator=(PageSlot&& other) noexcept;
  ~PageSlot();

  [[nodiscard]] static PageSlot empty() noexcept { return PageSlot(); }
  // Loaded(page). A null page gives Empty.
  [[nodiscard]] static PageSlot loaded(PageRef page) noexcept;
  // Missing(hash). Allocates a small hash holder.
  [[nodiscard]] static PageSlot missing(const Hash32& hash);

  [[nodiscard]] Kind kind() const noexcept;
  [[nodiscard]] bool is_empty() const noexcept { return node_ == nullptr; }
  [[nodiscard]] bool is_loaded() const noexcept { return kind() == Kind::loaded; }
  [[nodiscard]] bool is_missing() const noexcept { return kind() == Kind::missing; }

  // The Loaded page. Throws InvalidArgument when the slot is not Loaded.
  [[nodiscard]] PageRef page() const;
  // The Missing hash. Throws InvalidArgument when the slot is not Missing.
  [[nodiscard]] const Hash32& missing_hash() const;
  // The slot's leaf in the pages tree: Empty → 0^32, Loaded → page root, Missing → its hash.
  [[nodiscard]] Hash32 root(Digest digest = Digest::sha256) const;

  // Same kind and same page (Loaded: same page object or same bytes; Missing: same hash).
  friend DATACAP_API bool operator==(const PageSlot& a, const PageSlot& b) noexcept;

 private:
  friend struct detail::PageNode;
  explicit PageSlot(detail::PageNode* adopted) noexcept : node_(adopted) {}
  detail::PageNode* node_ = nullptr;
};

// "Empty" / "Loaded" / "Missing".
DATACAP_API const char* to_string(PageSlot::Kind kind) noexcept;

// The one resolution of the page containing a byte offset that every engine uses, so an
// interpreter and a recompiler materialize identical bytes.
struct PageResolution {
  enum class Kind : std::uint8_t { zero, bytes, missing };
  Kind kind = Kind::zero;
  std::uint32_t page_index = 0;
  // zero: the shared, read-only, PAGE_SIZE-aligned zero page; bytes: the page's bytes
  // (PAGE_SIZE-aligned); missing: nullptr. Valid until the next mutating call on the cap that
  // resolved it (the zero page: for the life of the process).
  const std::uint8_t* data = nullptr;
  // missing: the page's hash; otherwise zero bytes.
  Hash32 missing_hash{};
};

// The process-wide zero page: PAGE_SIZE zero bytes, PAGE_SIZE-aligned, never written.
DATACAP_API const std::uint8_t* zero_page() noexcept;

// Live Loaded pages in this process (every cap, every handle): for memory reports and tests.
DATACAP_API std::uint64_t live_page_count() noexcept;

}  // namespace datacap
