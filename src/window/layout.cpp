#include "window/layout.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "cap/cap_access.hpp"
#include "datacap/error.hpp"
#include "datacap/types.hpp"
#include "page/page_node.hpp"
#include "page/page_pool.hpp"

namespace datacap::detail {
namespace {

// In a compacted layer, a run of Empty pages at least this long stays anonymous zero memory
// (no memory at all); shorter ones become holes of the layer, which read as zeros but take one
// page of the layer's (shared) memory each once read.
constexpr std::uint64_t ZERO_RUN_KEPT = 256;

// Calls fn(page_index, node) for every non-Empty effective page, ascending.
template <class Fn>
void for_each_effective(const DataCap& cap, Fn&& fn) {
  const TreeNode* backing = SlabAccess::root(CapAccess::backing(cap));
  const TreeNode* overlay = CapAccess::overlay(cap);
  const unsigned levels = cap.backing().levels();
  if (levels == 0) return;
  if (overlay == nullptr) {
    tree_for_each(backing, levels, 0, cap.page_count(), fn);
  } else {
    tree_for_each_either(overlay, backing, levels, fn);
  }
}

void add_segment(std::vector<Segment>& out, const Segment& s) {
  if (!out.empty()) {
    Segment& last = out.back();
    const bool adjacent = last.first_page + last.page_count == s.first_page && last.kind == s.kind;
    if (adjacent && s.kind != Segment::Kind::file) {
      last.page_count += s.page_count;
      return;
    }
    if (adjacent && last.fd == s.fd && last.offset + last.page_count * PAGE_SIZE == s.offset) {
      last.page_count += s.page_count;
      return;
    }
  }
  out.push_back(s);
}

void add_zero(std::vector<Segment>& out, std::uint64_t first, std::uint64_t count) {
  if (count > 0) add_segment(out, {first, count, Segment::Kind::zero, -1, 0});
}

// The direct layout, or false when a page is not in an arena or the layout needs more than
// `max` segments.
bool build_direct(const DataCap& cap, std::uint32_t max, Layout& out) {
  std::uint64_t next = 0;
  bool ok = true;
  for_each_effective(cap, [&](std::uint64_t i, PageNode* node) {
    if (!ok) return;
    add_zero(out.segments, next, i - next);
    next = i + 1;
    if (node->is_missing()) {
      add_segment(out.segments, {i, 1, Segment::Kind::missing, -1, 0});
      out.missing.push_back({i, node->missing_hash()});
    } else {
      PageFileLocation where;
      if (!page_file_location(node->data, where)) {
        ok = false;
        return;
      }
      add_segment(out.segments, {i, 1, Segment::Kind::file, where.fd, where.offset});
    }
    if (out.segments.size() > max) ok = false;
  });
  add_zero(out.segments, next, cap.page_count() - next);
  return ok && out.segments.size() <= max;
}

void write_all(int fd, const iovec* iov, int n, std::uint64_t off) {
  std::vector<iovec> rest(iov, iov + n);
  std::size_t first = 0;
  while (first < rest.size()) {
    const ssize_t w = ::pwritev(fd, rest.data() + first, static_cast<int>(rest.size() - first),
                                static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      throw IoError("memfd:datacap-layer",
                    std::string("GuestWindow: writing the compacted layer failed: ") +
                        (w < 0 ? std::strerror(errno) : "no progress"));
    }
    off += static_cast<std::uint64_t>(w);
    auto left = static_cast<std::size_t>(w);
    while (first < rest.size() && left >= rest[first].iov_len) left -= rest[first++].iov_len;
    if (left > 0) {
      rest[first].iov_base = static_cast<std::uint8_t*>(rest[first].iov_base) + left;
      rest[first].iov_len -= left;
    }
  }
}

// Lays every Loaded page out at page_index · PAGE_SIZE of a new sealed memfd.
void build_compacted(const DataCap& cap, std::uint32_t max, Layout& out) {
  out.segments.clear();
  out.missing.clear();
  out.compacted = true;
  out.layer_fd = ::memfd_create("datacap-layer", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (out.layer_fd < 0) {
    throw IoError("memfd:datacap-layer",
                  std::string("GuestWindow: memfd_create failed: ") + std::strerror(errno));
  }
  // A file past RLIMIT_FSIZE would raise SIGXFSZ (fatal by default): refuse first.
  rlimit limit{};
  if (::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      cap.content_len() > limit.rlim_cur) {
    throw IoError("memfd:datacap-layer",
                  "GuestWindow: the cap's compacted layer of " + std::to_string(cap.content_len()) +
                      " bytes exceeds the process's file size limit (RLIMIT_FSIZE " +
                      std::to_string(limit.rlim_cur) + ")");
  }
  if (::ftruncate(out.layer_fd, static_cast<off_t>(cap.content_len())) != 0) {
    throw IoError(
        "memfd:datacap-layer",
        std::string("GuestWindow: sizing the compacted layer failed: ") + std::strerror(errno));
  }
  // Stored pages in order: Loaded ones are written in batches of adjacent pages.
  struct Item {
    std::uint64_t page_index;
    bool missing;
  };
  std::vector<Item> items;
  std::vector<iovec> batch;
  std::uint64_t batch_first = 0;
  constexpr std::size_t BATCH = 512;  // below IOV_MAX (1024)
  auto flush = [&] {
    if (!batch.empty())
      write_all(out.layer_fd, batch.data(), static_cast<int>(batch.size()),
                batch_first * PAGE_SIZE);
    batch.clear();
  };
  for_each_effective(cap, [&](std::uint64_t i, PageNode* node) {
    items.push_back({i, node->is_missing()});
    if (node->is_missing()) {
      out.missing.push_back({i, node->missing_hash()});
      return;
    }
    if (!batch.empty() && (batch_first + batch.size() != i || batch.size() == BATCH)) flush();
    if (batch.empty()) batch_first = i;
    batch.push_back({node->data, PAGE_SIZE});
  });
  flush();
  // Segments: Missing runs, long zero runs kept anonymous (if that fits the budget), the rest
  // one file range of the layer each.
  for (const std::uint64_t kept : {ZERO_RUN_KEPT, ~std::uint64_t{0}}) {
    out.segments.clear();
    std::uint64_t next = 0;
    auto gap_to = [&](std::uint64_t i) {
      if (i - next >= kept) {
        add_zero(out.segments, next, i - next);
      } else if (i > next) {
        add_segment(out.segments,
                    {next, i - next, Segment::Kind::file, out.layer_fd, next * PAGE_SIZE});
      }
      next = i;
    };
    for (const Item& item : items) {
      gap_to(item.page_index);
      add_segment(out.segments, item.missing
                                    ? Segment{item.page_index, 1, Segment::Kind::missing, -1, 0}
                                    : Segment{item.page_index, 1, Segment::Kind::file, out.layer_fd,
                                              item.page_index * PAGE_SIZE});
      next = item.page_index + 1;
    }
    gap_to(cap.page_count());
    if (out.segments.size() <= max) break;
  }
  if (out.segments.size() > max) {
    throw Unsupported("GuestWindow: the cap's Missing pages need " +
                      std::to_string(out.segments.size()) + " mappings, more than max_mappings " +
                      std::to_string(max));
  }
  // Nothing may change the layer now (every window maps it privately and relies on it).
  if (::fcntl(out.layer_fd, F_ADD_SEALS,
              F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    throw IoError(
        "memfd:datacap-layer",
        std::string("GuestWindow: sealing the compacted layer failed: ") + std::strerror(errno));
  }
}

// A layout made before a fork whose child could not copy an arena names the parent's file.
bool stale(const Layout& l) noexcept {
  for (const Segment& seg : l.segments) {
    if (seg.kind == Segment::Kind::file && seg.fd != l.layer_fd && page_fd_stale(seg.fd))
      return true;
  }
  return false;
}

std::unique_ptr<Layout> build(const DataCap& cap, std::uint32_t max) {
  auto layout = std::make_unique<Layout>();
  layout->page_count = cap.page_count();
  if (!build_direct(cap, max, *layout)) build_compacted(cap, max, *layout);
  return layout;
}

}  // namespace

Layout::~Layout() {
  if (layer_fd >= 0) ::close(layer_fd);
}

const Layout& layout_of(const DataCap& cap, std::uint32_t max_mappings,
                        std::unique_ptr<Layout>& owned) {
  TreeNode* root = const_cast<TreeNode*>(SlabAccess::root(CapAccess::backing(cap)));
  if (!cap.is_clean() || root == nullptr) {
    owned = build(cap, max_mappings);
    return *owned;
  }
  if (auto* cached = dynamic_cast<const Layout*>(root->attachment.load(std::memory_order_acquire));
      cached != nullptr && cached->segments.size() <= max_mappings && !stale(*cached)) {
    return *cached;
  }
  std::unique_ptr<Layout> fresh = build(cap, max_mappings);
  NodeAttachment* expected = nullptr;
  if (root->attachment.compare_exchange_strong(expected, fresh.get(), std::memory_order_acq_rel)) {
    return *fresh.release();  // the node owns it now
  }
  // Another window got there first (or a cached layout is over this window's budget).
  if (auto* cached = dynamic_cast<const Layout*>(expected);
      cached != nullptr && cached->segments.size() <= max_mappings && !stale(*cached)) {
    return *cached;
  }
  owned = std::move(fresh);
  return *owned;
}

}  // namespace datacap::detail
