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
  DataCap layout_cap;  // the cap the applied layout was built from (keeps it alive)
  const Layout* layout = nullptr;
  std::unique_ptr<Layout> owned_layout;
  std::uint64_t mapped_len = 0;  // content bytes mapped (cap.content_len())
  std::uint32_t mappings = 0;    // mappings the content uses now (approximately: an upper bound)
  // uffd_wp_scan: the content range is registered with the userfaultfd. Done before the first
  // scan after a mapping changed, not at the mapping: pages written meanwhile are found all the
  // same (they were never protected), and a window that is mapped and dropped pays nothing.
  bool wp_registered = false;

  // Pages mapped one run at a time since the last full map, from cap's own page storage (the
  // layout no longer says what is there). Sorted.
  std::vector<std::uint64_t> remapped;
  // The pages mapped one by one, kept alive as long as a mapping may name them: a later
  // harvest replaces them in `cap`, yet until the next full map an madvise(MADV_DONTNEED) there
  // shows the mapped page again, which must not have been freed and reused meanwhile.
  std::vector<PageRef> remapped_pages;
  // uffd_wp_scan: harvested pages whose bytes the window holds as a private copy (neither the
  // layout's page nor a remapped one). Sorted.
  std::vector<std::uint64_t> private_harvested;
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

  // Is the page at i anonymous zero memory in the current mapping (neither file nor Missing)?
  bool maps_zero(std::uint64_t i) const {
    if (contains(remapped, i)) return false;
    const auto it =
        std::upper_bound(layout->segments.begin(), layout->segments.end(), i,
                         [](std::uint64_t x, const Segment& s) { return x < s.first_page; });
    return it != layout->segments.begin() && std::prev(it)->kind == Segment::Kind::zero;
  }

  // Pages written since the last scan (uffd_wp_scan) or since mapped (others), plus pending.
  // `rearm` (uffd_wp_scan): protect the pages found again, so that the next scan reports only
  // pages written after this one; without it they stay unprotected (they are about to be
  // discarded or mapped anew).
  std::vector<std::uint64_t> written(bool keep_ambiguous_zero, bool rearm) {
    std::vector<detail::WrittenPage> found;
    if (tracking == DirtyTracking::uffd_wp_scan && !wp_registered && mapped_len > 0) {
      detail::register_write_protect(base, mapped_len);
      wp_registered = true;
    }
    if (mapped_len > 0) detail::scan_written(tracking, base, pages(), found, rearm);
    std::vector<std::uint64_t> out;
    out.reserve(found.size());
    for (const detail::WrittenPage& w : found) {
      // proc_pagemap without frame numbers: an Empty page only read looks written. Its bytes are
      // zero either way, so leaving it out keeps bytes and roots exact.
      if (w.maybe_zero_page && !keep_ambiguous_zero && all_zero(page(w.page_index)) &&
          maps_zero(w.page_index)) {
        continue;
      }
      out.push_back(w.page_index);
    }
    merge_into(out, pending);
    return out;
  }

  // Maps the page storage of cap's pages `indices` (sorted) at their places, one mmap per run
  // of pages adjacent in both the window and a file. False when a page has no mappable storage.
  bool map_pages_of_cap(const std::vector<std::uint64_t>& indices) {
    std::size_t i = 0;
    while (i < indices.size()) {
      const PageSlot slot = cap.page_slot(indices[i]);
      detail::PageFileLocation first;
      if (!slot.is_loaded() || !detail::page_file_location(slot.page().data(), first)) {
        return false;
      }
      std::size_t j = i + 1;
      for (; j < indices.size() && indices[j] == indices[j - 1] + 1; ++j) {
        const PageSlot next = cap.page_slot(indices[j]);
        detail::PageFileLocation where;
        if (!next.is_loaded() || !detail::page_file_location(next.page().data(), where) ||
            where.fd != first.fd || where.offset != first.offset + (j - i) * PAGE_SIZE) {
          break;
        }
      }
      remapped_pages.reserve(remapped_pages.size() + (j - i));
      for (std::size_t x = i; x < j; ++x)
        remapped_pages.push_back(cap.page_slot(indices[x]).page());
      map_fixed(page(indices[i]), (j - i) * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE,
                first.fd, first.offset, "mapping harvested pages");
      mappings += 2;
      i = j;
    }
    merge_into(remapped, indices);
    return true;
  }

  // Drops the private copies of `indices` (sorted): each page shows what is mapped there again.
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

  // Maps `next` afresh over the whole content range.
  void map_full(const DataCap& next) {
    std::unique_ptr<Layout> owned;
    const Layout& l = detail::layout_of(next, options.max_mappings, owned);
    try {
      for (const Segment& s : l.segments) {
        std::uint8_t* at = page(s.first_page);
        const std::uint64_t len = s.page_count * PAGE_SIZE;
        switch (s.kind) {
          case Segment::Kind::zero:
            map_zero(at, len);
            break;
          case Segment::Kind::file:
            map_fixed(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, s.fd, s.offset,
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
    } catch (...) {
      // Whatever was mapped goes: the window holds the empty cap (its contract on failure). A
      // failure to map over the range leaves it as it is: nothing in it is shown as content.
      ::mmap(base, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1,
             0);
      clear_to_empty();
      throw;
    }
    cap = next;
    layout_cap = next;
    owned_layout = std::move(owned);
    layout = &l;
    mapped_len = next.content_len();
    mappings = static_cast<std::uint32_t>(l.segments.size());
    wp_registered = false;
    remapped.clear();
    remapped_pages.clear();
    private_harvested.clear();
    pending.clear();
  }

  void clear_to_empty() noexcept {
    cap = DataCap();
    layout_cap = DataCap();
    owned_layout.reset();
    static const Layout empty_layout;
    layout = &empty_layout;
    mapped_len = 0;
    mappings = 0;
    wp_registered = false;
    remapped.clear();
    remapped_pages.clear();
    private_harvested.clear();
    pending.clear();
  }
};

GuestWindow::GuestWindow(const DataCap& cap, WindowOptions options) {
  if (options.max_mappings == 0)
    throw InvalidArgument("GuestWindow: max_mappings must be at least 1");
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
  void* base = ::mmap(nullptr, s->reserved + s->guard, PROT_NONE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED)
    throw_mapping_error("reserving the window", s->reserved + s->guard, errno);
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
  std::vector<std::uint64_t> dirty = s.written(false, true);
  try {
    // Every page is copied and put in a copy of the cap before anything is committed.
    DataCap next = s.cap;
    for (const std::uint64_t i : dirty) {
      next.insert_overlay_page(i, PageNode::adopt_slot(PageNode::copy_of(s.page(i), PAGE_SIZE)));
    }
    s.cap = std::move(next);
  } catch (...) {
    s.pending = std::move(dirty);  // reported again by the next harvest or reset
    throw;
  }
  s.pending.clear();
  if (s.tracking == DirtyTracking::uffd_wp_scan) {
    // Still the window's private copies, protected again by the scan: a store there is found by
    // the next scan. Nothing to map.
    merge_into(s.private_harvested, dirty);
  } else if (!dirty.empty()) {
    // The scan would report these forever (they are no longer the file's pages): show them from
    // their new storage, which also frees the private copies.
    std::vector<std::uint64_t> mappable;
    for (const std::uint64_t i : dirty) mappable.push_back(i);
    if (!s.map_pages_of_cap(mappable)) merge_into(s.private_harvested, dirty);
  }
  if (s.mappings > 2 * s.options.max_mappings) s.map_full(s.cap);  // nothing unharvested is lost
  return s.cap;
}

void GuestWindow::reset() {
  if (!state_) throw InvalidArgument("GuestWindow::reset on a moved-from window");
  State& s = *state_;
  const std::vector<std::uint64_t> dirty = s.written(true, false);
  std::vector<std::uint64_t> restore;  // private copies of harvested pages: map cap's pages back
  std::vector<std::uint64_t> drop;     // show what is mapped there again
  for (const std::uint64_t i : dirty)
    (contains(s.private_harvested, i) ? restore : drop).push_back(i);
  s.discard(drop);
  if (!restore.empty()) {
    if (!s.map_pages_of_cap(restore)) {
      s.map_full(s.cap);
      return;
    }
    std::vector<std::uint64_t> left;
    std::set_difference(s.private_harvested.begin(), s.private_harvested.end(), restore.begin(),
                        restore.end(), std::back_inserter(left));
    s.private_harvested.swap(left);
    s.wp_registered = false;  // the new mappings are not registered yet
  }
  s.pending.clear();
  if (s.mappings > 2 * s.options.max_mappings) s.map_full(s.cap);
}

void GuestWindow::remap(const DataCap& cap) {
  if (!state_) throw InvalidArgument("GuestWindow::remap on a moved-from window");
  State& s = *state_;
  if (cap.content_len() > s.reserved) {
    throw OutOfRange("GuestWindow::remap: a cap of " + std::to_string(cap.content_len()) +
                     " bytes does not fit the " + std::to_string(s.reserved) + " bytes reserved");
  }
  const bool same_backing = cap.is_clean() && s.layout_cap.is_clean() && s.remapped.empty() &&
                            cap.content_len() == s.mapped_len &&
                            cap.backing().shares_root_with(s.layout_cap.backing());
  if (same_backing) {
    // Only what was written differs from the mapping: drop those private copies.
    std::vector<std::uint64_t> dirty = s.written(true, false);
    if (!s.private_harvested.empty() && s.wp_registered) {
      // Those are still protected since their harvest: unprotect (by unregistering the range)
      // before discarding them. Registered again before the next scan.
      detail::unregister_write_protect(s.base, s.mapped_len);
      s.wp_registered = false;
      merge_into(dirty, s.private_harvested);
    }
    s.discard(dirty);
    s.cap = cap;
    s.private_harvested.clear();
    s.pending.clear();
    return;
  }
  s.map_full(cap);
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
  const auto& missing = s.layout->missing;
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
