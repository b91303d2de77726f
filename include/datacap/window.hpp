// GuestWindow: a cap mapped into one native address range, for recompiled guest code (Linux).
//
// A window shows a cap's bytes at base() as ordinary memory: loads and stores are plain machine
// instructions. Loaded pages are mapped from the page pool's own storage (the pool keeps pages
// in memfd files), privately: every window of one image shares the image's physical frames, and
// the first store to a page makes the hardware copy it for this window alone. Empty pages are
// anonymous zero memory (no memory until written). Missing pages are PROT_NONE: a guest access
// faults, and classify() tells the engine's signal handler which page and which hash it was —
// a Missing page is never read as zeros. The library installs no signal handler.
//
// harvest() finds the pages written through the window with the kernel's dirty tracking and
// returns the mapped cap with exactly those pages, byte for byte, in its overlay: the same cap
// (bytes, dirty pages, root after flush) that the same stores done through DataCap::write give.
//
// Dirty tracking (DirtyTracking), the first the host allows unless forced by
// WindowOptions::tracking or the environment variable DATACAP_DIRTY_TRACKING (one of the
// to_string names below):
//   uffd_wp_scan   userfaultfd write-protection in asynchronous mode + the PAGEMAP_SCAN ioctl
//                  (Linux >= 6.7; unprivileged through UFFD_USER_MODE_ONLY). A harvest's scan
//                  reports the pages written since the previous one and write-protects them
//                  again in the same call; protection is armed lazily, only on pages written
//                  once, so mapping costs nothing per page.
//   pagemap_scan   PAGEMAP_SCAN alone (no userfaultfd, e.g. under a container's default seccomp
//                  profile): written pages are the ones no longer backed by the file or the zero
//                  page. Cumulative: a page harvested once (or copied in from the cap's overlay)
//                  is reported by every later scan, and counted as written again only when its
//                  bytes differ from the cap's — a store of the very bytes a harvested page holds
//                  is not in the next dirty set (bytes and roots are unaffected).
//   proc_pagemap   reading /proc/self/pagemap (older kernels): as pagemap_scan, one 8-byte entry
//                  per page of the window per scan. Without the privilege to read frame
//                  numbers, an Empty page that was only read cannot be told from one written
//                  with zeros: such a page is reported only when its bytes are not all zero
//                  (bytes and roots stay identical; only a store of zeros into an Empty page
//                  may be missing from the dirty set).
// Swapped-out written pages count as written in every tier. Where none works, the constructor
// throws Unsupported and the rest of the library (the interpreter path) is unaffected.
//
// Costs (n = pages of the cap, k = pages written, r = mappings of the backing's layout,
// v = pages in the cap's overlay):
//   constructor / remap   O(r) system calls + v page copies. The backing's layout (which runs of
//                         pages map from which file range) is computed once per backing in O(n)
//                         and cached on it, shared by every window of it. The overlay's pages are
//                         copied into the window (private memory, no mappings). When a layout
//                         would need more than WindowOptions::max_mappings mappings (pages
//                         scattered over the pool, pages allocated before the process's first
//                         window, pages borrowed from an archive file), the backing is laid out
//                         once into a sealed memfd of its own, in page order (O(n) page copies,
//                         once per backing; then r is the number of Missing runs + small, and the
//                         layer holds one file descriptor while the backing lives). Empty runs
//                         shorter than 256 pages inside such a layer are holes of it: reading
//                         one takes a page of the layer's shared memory.
//   remap onto the same   one scan system call plus one per run of pages written since, plus a
//   backing               page copy per overlay page the window does not hold already; nothing
//                         is mapped again — except overlay pages that are Missing or over a
//                         Missing backing page (one mapping each), and a window that shows such
//                         pages maps the next cap afresh.
//   first store to a page one page fault (the kernel's copy-on-write).
//   harvest               one scan (uffd_wp_scan, pagemap_scan: a system call walking the page
//                         tables of the window; proc_pagemap: reads 8 bytes per page of the
//                         window) + k page copies + O(k · L) overlay insertions (pagemap_scan and
//                         proc_pagemap: + a page comparison per page harvested before).
//   reset                 one scan + one system call per run of pages written since the last
//                         harvest (+ a page copy for each of them harvested before).
//   classify              O(log m) for m Missing pages; async-signal-safe.
//
// Memory: a window holds a copy of its cap (O(1)), its reserved address space (no memory), the
// page tables of what the guest touches, and a private page per page written or copied in from
// the overlay. The process's limit of mappings (vm.max_map_count, 65,530 by default) is shared
// by every window; a window uses at most max_mappings + 2 per overlay page that is Missing or
// over a Missing backing page.
//
// Page memory: the first window switches the process's page pool to memfd arenas (pages
// allocated from then on are mappable; earlier ones are copied once per backing into a layer).
//
// Errors: Unsupported (no dirty tracking, or none of the forced kind; a cap whose Missing pages
// need more mappings than max_mappings allows), InvalidArgument (options), OutOfRange (a cap
// larger than the reserved range), IoError (the kernel refused a mapping, e.g. the process's
// mapping limit; the window then holds the empty cap of size 0 and can be remapped),
// std::bad_alloc.
//
// Thread-safety: guest threads may load and store through base() concurrently with each other
// and with const methods. harvest, reset, remap, assignment and destruction require that no
// guest thread touches the window and no other method runs on it meanwhile. classify may be
// called from a signal handler on any thread, but not concurrently with harvest, reset, remap,
// assignment or destruction of that window. Distinct windows are independent.
//
// fork(): once the page pool uses arenas, a child of fork() copies them (O(pages in use), the
// parent waiting for it; see page memory above) and its caps are its own. (A child made by
// clone() or vfork() runs no fork handlers and shares the arenas until it execs, as posix_spawn
// does at once.) Windows made before the
// fork are not usable in the child (their clean pages may show the parent's later changes, and
// their dirty tracking is the parent's): a child may only destroy them, and make its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "datacap/cap.hpp"
#include "datacap/export.hpp"
#include "datacap/hash.hpp"

namespace datacap {

enum class DirtyTracking : std::uint8_t { uffd_wp_scan, pagemap_scan, proc_pagemap };

// "uffd_wp_scan" / "pagemap_scan" / "proc_pagemap".
DATACAP_API const char* to_string(DirtyTracking tracking) noexcept;

// True when `tracking` works on this host (probed once per process, then cached).
DATACAP_API bool dirty_tracking_available(DirtyTracking tracking) noexcept;

struct WindowOptions {
  // Address space to reserve for caps (rounded up to a page; 0: the first cap's size). remap
  // accepts any cap up to this size without moving base().
  std::uint64_t reserve_bytes = 0;
  // Inaccessible bytes after the reserved range (rounded up to a page), so a guest running off
  // the end faults instead of reaching other memory.
  std::uint64_t guard_bytes = std::uint64_t{1} << 20;
  // Forces a tracking mechanism (Unsupported when the host lacks it). Otherwise the variable
  // DATACAP_DIRTY_TRACKING, if set, else the first available.
  std::optional<DirtyTracking> tracking;
  // Mappings a cap's layout may use before its backing is compacted (see the costs above).
  std::uint32_t max_mappings = 64;
};

// What an address means to a window: for a fault handler.
struct WindowFault {
  enum class Kind : std::uint8_t {
    page,     // inside the cap: a mapped page (a fault there is not the window's doing)
    missing,  // inside the cap: a Missing page (PROT_NONE); hash says which content it is
    guard,    // inside the reservation but past the cap, or in the guard region
    outside,  // not this window's address range
  };
  Kind kind = Kind::outside;
  std::uint64_t page_index = 0;  // page and missing: the page of the cap
  Hash32 hash{};                 // missing: the page's hash; otherwise zero
};

class DATACAP_API GuestWindow {
 public:
  // Reserves the address range and maps `cap`. Errors as above.
  explicit GuestWindow(const DataCap& cap, WindowOptions options = {});
  GuestWindow(GuestWindow&& other) noexcept;
  GuestWindow& operator=(GuestWindow&& other) noexcept;
  GuestWindow(const GuestWindow&) = delete;
  GuestWindow& operator=(const GuestWindow&) = delete;
  ~GuestWindow();  // unmaps everything

  // First byte of the cap's content: page-aligned, size() bytes, then PROT_NONE up to the end
  // of the reservation and the guard. Stable across remap. Null after a move.
  [[nodiscard]] std::uint8_t* base() const noexcept;
  // The mapped cap's content_len.
  [[nodiscard]] std::uint64_t size() const noexcept;
  [[nodiscard]] std::uint64_t reserved_bytes() const noexcept;
  [[nodiscard]] DirtyTracking tracking() const noexcept;
  // The cap the window shows, as of the last map, harvest or reset (writes since are not in it).
  [[nodiscard]] const DataCap& cap() const noexcept;
  // Mappings the window's content uses now (for budgets and tests).
  [[nodiscard]] std::uint32_t mapping_count() const noexcept;

  // The mapped cap with every page written through the window since mapping (or since the last
  // harvest or reset) put in its overlay with the window's bytes; the window then shows that cap
  // (cap() returns it). Strong guarantee: when it throws, nothing was lost: the next harvest
  // reports the same pages.
  [[nodiscard]] DataCap harvest();
  // Returns the window's bytes to cap()'s: the pages written since the last harvest are undone.
  void reset();
  // Shows `cap` instead (any size up to reserved_bytes()); unharvested writes are dropped. The
  // same clean backing as now is not mapped again: only the pages written are undone.
  void remap(const DataCap& cap);

  // What `address` is to this window. Async-signal-safe (no allocation, no lock); see the
  // thread-safety note above.
  [[nodiscard]] WindowFault classify(const void* address) const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace datacap
