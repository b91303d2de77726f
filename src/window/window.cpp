#include "datacap/window.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "datacap/error.hpp"
#include "datacap/types.hpp"
#include "page/page_node.hpp"
#include "page/page_pool.hpp"
#include "window/layout.hpp"
#include "window/tracking.hpp"

namespace datacap {

using detail::Layout;
using detail::PageNode;
using detail::Segment;

namespace {

std::uint64_t round_up_to_page(std::uint64_t n, const char* what) {
  if (n > ~std::uint64_t{0} - PAGE_SIZE)
    throw InvalidArgument(std::string("GuestWindow: ") + what + " too large");
  return (n + PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE;
}

[[noreturn]] void throw_mapping_error(const char* what, std::uint64_t len, int err) {
  std::string message = std::string("GuestWindow: ") + what + " of " + std::to_string(len) +
                        " bytes failed: " + std::strerror(err);
  if (err == ENOMEM) message += " (out of memory, or the process's mapping limit vm.max_map_count)";
  throw IoError("mmap", message);
}

void map_fixed(std::uint8_t* at, std::uint64_t len, int prot, int flags, int fd, std::uint64_t off,
               const char* what) {
  if (len == 0) return;
  detail::count_window_system_calls();
  if (::mmap(at, len, prot, flags | MAP_FIXED | MAP_NORESERVE, fd, static_cast<off_t>(off)) ==
      MAP_FAILED) {
    throw_mapping_error(what, len, errno);
  }
}

void map_zero(std::uint8_t* at, std::uint64_t len) {
  map_fixed(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0,
            "mapping zero pages");
}

void map_none(std::uint8_t* at, std::uint64_t len) {
  map_fixed(at, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0,
            "mapping an inaccessible range");
}

bool all_zero(const std::uint8_t* p) noexcept {
  std::uint64_t acc = 0;
  for (std::size_t i = 0; i < PAGE_SIZE; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    acc |= w;
  }
  return acc == 0;
}

// Sorted-set helpers on page index vectors.
void merge_into(std::vector<std::uint64_t>& set, const std::vector<std::uint64_t>& add) {
  if (add.empty()) return;
  std::vector<std::uint64_t> out;
  out.reserve(set.size() + add.size());
  std::set_union(set.begin(), set.end(), add.begin(), add.end(), std::back_inserter(out));
  set.swap(out);
}

bool contains(const std::vector<std::uint64_t>& set, std::uint64_t x) {
  return std::binary_search(set.begin(), set.end(), x);
}

}  // namespace

struct GuestWindow::State {
  std::uint8_t* base = nullptr;
  std::uint64_t reserved = 0;  // bytes for content
  std::uint64_t guard = 0;
  WindowOptions options;
  DirtyTracking tracking = DirtyTracking::uffd_wp_scan;

  DataCap cap;         // what the window shows, as of the last map, harvest or reset
  DataCap layout_cap;  // cap's backing alone: the cap the applied layout is of (keeps it alive)
  const Layout* layout = nullptr;
  std::unique_ptr<Layout> owned_layout;  // a layout no node caches (an all-Empty backing)
  std::uint64_t mapped_len = 0;          // content bytes mapped (cap.content_len())
  std::uint32_t mappings = 0;            // mappings the content uses now
  // Pages mapped one by one over the layout when the overlay was placed (an overlay page over a
  // Missing backing page, a Missing overlay page): the window is then more than its layout.
  std::uint32_t fixes = 0;
  // uffd_wp_scan: the content range is registered with the userfaultfd. Done before the first
  // scan after a mapping changed, not at the mapping: pages written meanwhile are found all the
  // same (they were never protected), and a window that is mapped and dropped pays nothing.
  bool wp_registered = false;

  // The Missing pages of `cap` (the layout's, less those the overlay shadows, plus the overlay's
  // own), ascending: what classify() reads.
  std::vector<detail::MissingPage> missing;
  // Pages whose bytes the window holds as a private copy of cap's page (the overlay's pages
  // placed at a map, pages harvested since), ascending. Never mapped one by one, so they take
  // no mapping; with uffd_wp_scan they are write-protected, otherwise a scan reports them every
  // time and they are told apart by their bytes.
  std::vector<std::uint64_t> private_pages;
  // Pages a scan reported (and, with userfaultfd, protected again) that a failed harvest did not
  // take in: the next harvest or reset takes them. Sorted.
  std::vector<std::uint64_t> pending;

  ~State() {
    if (base != nullptr) {
      detail::count_window_system_calls();
      ::munmap(base, reserved + guard);
    }
  }

  std::uint64_t pages() const noexcept { return mapped_len / PAGE_SIZE; }
  std::uint8_t* page(std::uint64_t i) const noexcept { return base + i * PAGE_SIZE; }

  // Is the page at i anonymous zero memory in the layout (neither file nor Missing)?
  bool layout_zero(std::uint64_t i) const {
    const auto it =
        std::upper_bound(layout->segments.begin(), layout->segments.end(), i,
                         [](std::uint64_t x, const Segment& seg) { return x < seg.first_page; });
    return it != layout->segments.begin() && std::prev(it)->kind == Segment::Kind::zero;
  }

  // True when the window's page i holds exactly cap's page i (a private copy left as placed).
  bool same_as_cap(std::uint64_t i) const {
    const PageResolution r = cap.page_at(i * PAGE_SIZE);
    return r.kind != PageResolution::Kind::missing && std::memcmp(page(i), r.data, PAGE_SIZE) == 0;
  }

  void ensure_registered() {
    if (tracking == DirtyTracking::uffd_wp_scan && !wp_registered && mapped_len > 0) {
      detail::register_write_protect(base, mapped_len);
      wp_registered = true;
    }
  }

  // Pages written since the last scan that protected them (uffd_wp_scan) or since they were
  // mapped or copied in (the others: private copies still equal to cap's pages are left out),
  // plus pending. `rearm` (uffd_wp_scan): protect the pages found again, so that the next scan
  // reports only pages written after this one; without it they stay unprotected (they are about
  // to be discarded or copied over).
  std::vector<std::uint64_t> written(bool rearm) {
    std::vector<detail::WrittenPage> found;
    ensure_registered();
    if (mapped_len > 0) detail::scan_written(tracking, base, pages(), found, rearm);
    std::vector<std::uint64_t> out;
    out.reserve(found.size());
    for (const detail::WrittenPage& w : found) {
      const std::uint64_t i = w.page_index;
      if (tracking != DirtyTracking::uffd_wp_scan && contains(private_pages, i) && same_as_cap(i)) {
        continue;  // a private copy no store has changed (or a store of the same bytes)
      }
      // proc_pagemap without frame numbers: an Empty page only read looks written. Its bytes are
      // zero either way, so leaving it out keeps bytes and roots exact.
      if (w.maybe_zero_page && layout_zero(i) && !contains(private_pages, i) && all_zero(page(i))) {
        continue;
      }
      out.push_back(i);
    }
    merge_into(out, pending);
    return out;
  }

  // Protects the pages just copied in (uffd_wp_scan): a scan that re-arms what it finds.
  void protect_copies() {
    if (tracking != DirtyTracking::uffd_wp_scan || mapped_len == 0) return;
    ensure_registered();
    std::vector<detail::WrittenPage> ignored;
    detail::scan_written(tracking, base, pages(), ignored, true);
  }

  // Drops the private copies of `indices` (sorted): each page shows the layout's page again.
  void discard(const std::vector<std::uint64_t>& indices) {
    std::size_t i = 0;
    while (i < indices.size()) {
      std::size_t j = i + 1;
      while (j < indices.size() && indices[j] == indices[j - 1] + 1) ++j;
      detail::count_window_system_calls();
      if (::madvise(page(indices[i]), (j - i) * PAGE_SIZE, MADV_DONTNEED) != 0) {
        throw IoError("madvise", std::string("GuestWindow: discarding written pages failed: ") +
                                     std::strerror(errno));
      }
      i = j;
    }
  }

  // Puts next's overlay over the layout (which shows next's backing): Loaded pages as private
  // copies, Missing ones inaccessible; sets cap, missing and private_pages. The pages in `kept`
  // (sorted) already hold next's bytes: they are neither copied nor protected again.
  void place_overlay(const DataCap& next, const std::vector<std::uint64_t>& kept = {}) {
    std::vector<detail::MissingPage> now = layout->missing;
    std::vector<std::uint64_t> copies;
    std::vector<detail::MissingPage> added;
    std::vector<std::uint64_t> shadowed;
    bool fresh = false;  // a page copied in (to protect)
    next.for_each_dirty([&](std::uint32_t i, const PageSlot& slot) {
      const bool over_missing = next.backing().page_slot(i).is_missing();
      if (slot.is_missing()) {
        if (!over_missing) {
          map_none(page(i), PAGE_SIZE);
          mappings += 2;
          ++fixes;
          wp_registered = false;  // a new mapping: the range is registered again before a scan
        }
        shadowed.push_back(i);
        added.push_back({i, slot.missing_hash()});
        return;
      }
      if (over_missing) {  // the layout has it inaccessible
        map_zero(page(i), PAGE_SIZE);
        mappings += 2;
        ++fixes;
        wp_registered = false;
        shadowed.push_back(i);
      }
      copies.push_back(i);
      if (!std::binary_search(kept.begin(), kept.end(), std::uint64_t{i})) {
        std::memcpy(page(i), slot.page().data(), PAGE_SIZE);
        fresh = true;
      }
    });
    if (!shadowed.empty()) {
      std::vector<detail::MissingPage> kept;
      for (const detail::MissingPage& m : now) {
        if (!std::binary_search(shadowed.begin(), shadowed.end(), m.page_index)) kept.push_back(m);
      }
      now.swap(kept);
      std::vector<detail::MissingPage> merged;
      std::merge(now.begin(), now.end(), added.begin(), added.end(), std::back_inserter(merged),
                 [](const detail::MissingPage& a, const detail::MissingPage& b) {
                   return a.page_index < b.page_index;
                 });
      now.swap(merged);
    }
    // Kept pages lost their protection if the range was unregistered meanwhile.
    if (fresh || (!kept.empty() && !wp_registered)) protect_copies();
    cap = next;
    missing = std::move(now);
    private_pages = std::move(copies);
  }

  // Maps `next` afresh over the whole content range.
  void map_full(const DataCap& next) {
    try {
      const DataCap backing_only = DataCap::from_backing(next.backing());
      std::unique_ptr<Layout> owned;
      const Layout& l = detail::layout_of(backing_only, options.max_mappings, owned);
      for (const Segment& seg : l.segments) {
        std::uint8_t* at = page(seg.first_page);
        const std::uint64_t len = seg.page_count * PAGE_SIZE;
        switch (seg.kind) {
          case Segment::Kind::zero:
            map_zero(at, len);
            break;
          case Segment::Kind::file:
            map_fixed(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, seg.fd, seg.offset,
                      "mapping pages");
            break;
          case Segment::Kind::missing:
            map_none(at, len);
            break;
        }
      }
      if (mapped_len > next.content_len())
        map_none(base + next.content_len(), mapped_len - next.content_len());
      if (next.content_len() > 0 && detail::huge_pages_always()) {
        detail::count_window_system_calls();
        // Advisory: a failure costs memory only.
        ::madvise(base, next.content_len(), MADV_NOHUGEPAGE);
      }
      layout_cap = backing_only;
      owned_layout = std::move(owned);
      layout = &l;
      mapped_len = next.content_len();
      mappings = static_cast<std::uint32_t>(l.segments.size());
      fixes = 0;
      wp_registered = false;
      pending.clear();
      place_overlay(next);
    } catch (...) {
      // Whatever was mapped goes: the window holds the empty cap (its contract on failure). A
      // failure to map over the range leaves it as it is: nothing in it is shown as content.
      ::mmap(base, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
             0);
      clear_to_empty();
      throw;
    }
  }

  void clear_to_empty() noexcept {
    cap = DataCap();
    layout_cap = DataCap();
    owned_layout.reset();
    static const Layout empty_layout;
    layout = &empty_layout;
    mapped_len = 0;
    mappings = 0;
    fixes = 0;
    wp_registered = false;
    missing.clear();
    private_pages.clear();
    pending.clear();
  }
};

GuestWindow::GuestWindow(const DataCap& cap, WindowOptions options) {
  if (options.max_mappings == 0) {
    throw InvalidArgument("GuestWindow: max_mappings must be at least 1");
  }
  auto s = std::make_unique<State>();
  s->tracking = detail::choose_tracking(options.tracking);
  s->reserved =
      std::max(round_up_to_page(options.reserve_bytes, "reserve_bytes"), cap.content_len());
  s->guard = round_up_to_page(options.guard_bytes, "guard_bytes");
  if (s->guard > ~std::uint64_t{0} - s->reserved) {
    throw InvalidArgument("GuestWindow: reserve_bytes + guard_bytes overflow 64 bits");
  }
  if (s->reserved + s->guard == 0) s->guard = PAGE_SIZE;  // a range of its own, even when empty
  s->options = options;
  // From now on new pages go where windows can map them (see page_pool.hpp).
  detail::use_mappable_page_memory();
  void* base = ::mmap(nullptr, s->reserved + s->guard, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) {
    throw_mapping_error("reserving the window", s->reserved + s->guard, errno);
  }
  s->base = static_cast<std::uint8_t*>(base);
  s->clear_to_empty();
  s->map_full(cap);
  state_ = std::move(s);
}

GuestWindow::GuestWindow(GuestWindow&& other) noexcept = default;
GuestWindow& GuestWindow::operator=(GuestWindow&& other) noexcept = default;
GuestWindow::~GuestWindow() = default;

std::uint8_t* GuestWindow::base() const noexcept { return state_ ? state_->base : nullptr; }
std::uint64_t GuestWindow::size() const noexcept { return state_ ? state_->mapped_len : 0; }
std::uint64_t GuestWindow::reserved_bytes() const noexcept { return state_ ? state_->reserved : 0; }
DirtyTracking GuestWindow::tracking() const noexcept {
  return state_ ? state_->tracking : DirtyTracking::uffd_wp_scan;
}
const DataCap& GuestWindow::cap() const noexcept {
  static const DataCap empty;
  return state_ ? state_->cap : empty;
}
std::uint32_t GuestWindow::mapping_count() const noexcept { return state_ ? state_->mappings : 0; }

DataCap GuestWindow::harvest() {
  if (!state_) throw InvalidArgument("GuestWindow::harvest on a moved-from window");
  State& s = *state_;
  std::vector<std::uint64_t> dirty = s.written(true);
  try {
    // Every page is copied and put in a copy of the cap before anything is committed.
    DataCap next = s.cap;
    for (const std::uint64_t i : dirty) {
      next.insert_overlay_page(i, PageNode::adopt_slot(PageNode::copy_of(s.page(i), PAGE_SIZE)));
    }
    merge_into(s.private_pages, dirty);  // may throw too: before the commit
    s.cap = std::move(next);
  } catch (...) {
    s.pending = std::move(dirty);  // reported again by the next harvest or reset
    throw;
  }
  s.pending.clear();
  return s.cap;
}

void GuestWindow::reset() {
  if (!state_) throw InvalidArgument("GuestWindow::reset on a moved-from window");
  State& s = *state_;
  const std::vector<std::uint64_t> dirty = s.written(false);
  std::vector<std::uint64_t> restore;  // private copies of cap's pages: copied in again
  std::vector<std::uint64_t> drop;     // the layout's pages: shown again
  for (const std::uint64_t i : dirty) {
    (contains(s.private_pages, i) ? restore : drop).push_back(i);
  }
  s.discard(drop);
  for (const std::uint64_t i : restore) {
    std::memcpy(s.page(i), s.cap.page_slot(i).page().data(), PAGE_SIZE);
  }
  if (!restore.empty()) s.protect_copies();
  s.pending.clear();
}

void GuestWindow::remap(const DataCap& cap) {
  if (!state_) throw InvalidArgument("GuestWindow::remap on a moved-from window");
  State& s = *state_;
  if (cap.content_len() > s.reserved) {
    throw OutOfRange("GuestWindow::remap: a cap of " + std::to_string(cap.content_len()) +
                     " bytes does not fit the " + std::to_string(s.reserved) + " bytes reserved");
  }
  const bool same_backing = s.fixes == 0 && s.mapped_len > 0 && cap.content_len() == s.mapped_len &&
                            cap.backing().shares_root_with(s.layout_cap.backing());
  if (!same_backing) {
    s.map_full(cap);
    return;
  }
  // Only the private pages differ from the layout. Those that `cap` holds with the same bytes and
  // that were not written since stay; the others are dropped; then cap's overlay is placed.
  try {
    std::vector<std::uint64_t> dirty = s.written(false);
    std::vector<std::uint64_t> kept;
    std::vector<std::uint64_t> dropped;
    for (const std::uint64_t i : s.private_pages) {
      const bool keep =
          !contains(dirty, i) && cap.is_dirty(i) && cap.page_slot(i) == s.cap.page_slot(i);
      (keep ? kept : dropped).push_back(i);
    }
    if (!dropped.empty() && s.wp_registered) {
      // Those are still protected: unprotect them (by unregistering the range) first, or the
      // kernel keeps a marker per discarded page that every later scan walks. Registered again
      // before the next scan (which protects the kept ones again).
      detail::unregister_write_protect(s.base, s.mapped_len);
      s.wp_registered = false;
    }
    merge_into(dirty, dropped);
    s.discard(dirty);
    s.pending.clear();
    s.private_pages.clear();
    s.place_overlay(cap, kept);
  } catch (...) {
    s.map_full(cap);  // the window must not be left half one cap, half the other
    throw;
  }
}

WindowFault GuestWindow::classify(const void* address) const noexcept {
  WindowFault f;
  if (!state_) return f;
  const State& s = *state_;
  const auto a = reinterpret_cast<std::uintptr_t>(address);
  const auto b = reinterpret_cast<std::uintptr_t>(s.base);
  if (a < b || a - b >= s.reserved + s.guard) return f;
  const std::uint64_t off = a - b;
  if (off >= s.mapped_len) {
    f.kind = WindowFault::Kind::guard;
    return f;
  }
  f.page_index = off / PAGE_SIZE;
  f.kind = WindowFault::Kind::page;
  const auto& missing = s.missing;
  const auto it = std::lower_bound(
      missing.begin(), missing.end(), f.page_index,
      [](const detail::MissingPage& m, std::uint64_t x) { return m.page_index < x; });
  if (it != missing.end() && it->page_index == f.page_index) {
    f.kind = WindowFault::Kind::missing;
    f.hash = it->hash;
  }
  return f;
}

}  // namespace datacap
