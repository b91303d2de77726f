// Internal: the kernel mechanisms a GuestWindow uses to find the pages a guest wrote — probes,
// the process-wide descriptors they need, and one scan per mechanism.
#pragma once

#include <cstdint>
#include <vector>

#include "datacap/window.hpp"

namespace datacap::detail {

// The mechanism a window uses: `forced` if set (Unsupported when unavailable), else the
// DATACAP_DIRTY_TRACKING variable (InvalidArgument for an unknown name, Unsupported when
// unavailable), else the first available (Unsupported when none is).
DirtyTracking choose_tracking(const std::optional<DirtyTracking>& forced);

// uffd_wp_scan: registers [start, start + len) for asynchronous write-protection. Needed after
// every mmap in the range (a new mapping is not registered). Throws IoError.
void register_write_protect(std::uint8_t* start, std::uint64_t len);

// A page the scan found written, and whether the scan could not tell it from the shared zero
// page (proc_pagemap without the privilege to read frame numbers: the caller decides by the
// page's bytes and what is mapped there).
struct WrittenPage {
  std::uint64_t page_index;
  bool maybe_zero_page;
};

// Appends the pages of [base, base + pages · PAGE_SIZE) written since they were last
// write-protected (uffd_wp_scan; with `rearm` the scan protects them again) or since they were
// last mapped (the others), ascending. Throws IoError.
void scan_written(DirtyTracking tracking, std::uint8_t* base, std::uint64_t pages,
                  std::vector<WrittenPage>& out, bool rearm);

// uffd_wp_scan: unregisters the range, which also drops every write-protection in it. Pages
// about to be discarded (MADV_DONTNEED) must not be protected: the kernel would keep a marker
// per page to remember the protection, and every later scan would walk the markers.
void unregister_write_protect(std::uint8_t* start, std::uint64_t len);

// For tests of the Unsupported path: mechanisms whose bit (1 << DirtyTracking value) is set in
// `mask` count as unavailable from now on in this process (0 restores them).
void disable_dirty_tracking_for_tests(unsigned mask) noexcept;

// System calls windows have made in this process (mmap, madvise, ioctl, pread of pagemap), for
// benchmarks that count them; counted where each is made.
std::uint64_t window_system_calls() noexcept;
void count_window_system_calls(std::uint64_t n = 1) noexcept;

// True when transparent huge pages are on for every anonymous mapping ("always"): a window then
// asks for small pages, so that a store does not allocate, and report, 512 pages.
bool huge_pages_always() noexcept;

}  // namespace datacap::detail
