// The C API's guest windows (datacap.h): thin wrappers over datacap::GuestWindow.
#include <optional>

#include "capi/boundary.hpp"
#include "datacap/window.hpp"

struct datacap_window {
  datacap::GuestWindow window;
};

using namespace datacap::capi;
using datacap::DirtyTracking;
using datacap::GuestWindow;
using datacap::WindowFault;

namespace {

datacap::WindowOptions options_of(const datacap_window_options& o) {
  datacap::WindowOptions out;
  out.reserve_bytes = o.reserve_bytes;
  out.guard_bytes = o.guard_bytes;
  if (o.max_mappings != 0) out.max_mappings = o.max_mappings;
  switch (o.tracking) {
    case DATACAP_TRACKING_AUTO:
      break;
    case DATACAP_TRACKING_UFFD_WP_SCAN:
      out.tracking = DirtyTracking::uffd_wp_scan;
      break;
    case DATACAP_TRACKING_PAGEMAP_SCAN:
      out.tracking = DirtyTracking::pagemap_scan;
      break;
    case DATACAP_TRACKING_PROC_PAGEMAP:
      out.tracking = DirtyTracking::proc_pagemap;
      break;
    default:
      throw datacap::InvalidArgument("unknown datacap_dirty_tracking " +
                                     std::to_string(static_cast<int>(o.tracking)));
  }
  return out;
}

}  // namespace

extern "C" {

datacap_window_options datacap_window_default_options(void) {
  const datacap::WindowOptions d;
  return {d.reserve_bytes, d.guard_bytes, DATACAP_TRACKING_AUTO, d.max_mappings};
}

datacap_status datacap_window_new(const datacap_cap* cap, const datacap_window_options* options,
                                  datacap_window** out) {
  if (cap == nullptr) return misuse("datacap_window_new: NULL cap");
  if (out == nullptr) return misuse("datacap_window_new: NULL out");
  return guard([&] {
    const datacap_window_options o =
        options != nullptr ? *options : datacap_window_default_options();
    *out = new datacap_window{GuestWindow(cap->cap, options_of(o))};
  });
}

void datacap_window_free(datacap_window* window) { delete window; }

uint8_t* datacap_window_base(const datacap_window* window) {
  return window == nullptr ? nullptr : window->window.base();
}

uint64_t datacap_window_size(const datacap_window* window) {
  return window == nullptr ? 0 : window->window.size();
}

datacap_dirty_tracking datacap_window_tracking(const datacap_window* window) {
  if (window == nullptr) return DATACAP_TRACKING_AUTO;
  switch (window->window.tracking()) {
    case DirtyTracking::uffd_wp_scan:
      return DATACAP_TRACKING_UFFD_WP_SCAN;
    case DirtyTracking::pagemap_scan:
      return DATACAP_TRACKING_PAGEMAP_SCAN;
    case DirtyTracking::proc_pagemap:
      return DATACAP_TRACKING_PROC_PAGEMAP;
  }
  return DATACAP_TRACKING_AUTO;
}

datacap_status datacap_window_harvest(datacap_window* window, datacap_cap** out) {
  if (window == nullptr) return misuse("datacap_window_harvest: NULL window");
  if (out == nullptr) return misuse("datacap_window_harvest: NULL out");
  return guard([&] { *out = new datacap_cap{window->window.harvest()}; });
}

datacap_status datacap_window_reset(datacap_window* window) {
  if (window == nullptr) return misuse("datacap_window_reset: NULL window");
  return guard([&] { window->window.reset(); });
}

datacap_status datacap_window_remap(datacap_window* window, const datacap_cap* cap) {
  if (window == nullptr) return misuse("datacap_window_remap: NULL window");
  if (cap == nullptr) return misuse("datacap_window_remap: NULL cap");
  return guard([&] { window->window.remap(cap->cap); });
}

datacap_window_fault datacap_window_classify(const datacap_window* window, const void* address) {
  datacap_window_fault out{DATACAP_FAULT_OUTSIDE, 0, {}};
  if (window == nullptr) return out;
  const WindowFault f = window->window.classify(address);
  switch (f.kind) {
    case WindowFault::Kind::page:
      out.kind = DATACAP_FAULT_PAGE;
      break;
    case WindowFault::Kind::missing:
      out.kind = DATACAP_FAULT_MISSING;
      break;
    case WindowFault::Kind::guard:
      out.kind = DATACAP_FAULT_GUARD;
      break;
    case WindowFault::Kind::outside:
      out.kind = DATACAP_FAULT_OUTSIDE;
      break;
  }
  out.page_index = f.page_index;
  out.hash = c_hash_of(f.hash);
  return out;
}

}  // extern "C"
