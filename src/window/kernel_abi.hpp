// Internal: the parts of Linux's user ABI for dirty tracking that the build machine's headers
// may predate (PAGEMAP_SCAN and the asynchronous write-protect features of userfaultfd arrived
// in Linux 6.7; Debian 12's headers are 6.1). Values from the kernel's include/uapi; a kernel
// without them refuses the calls, which the probes turn into "unavailable".
#pragma once

#include <linux/ioctl.h>
#include <linux/userfaultfd.h>

#include <cstdint>

namespace datacap::detail::kabi {

// include/uapi/linux/fs.h: categories of pages for PAGEMAP_SCAN.
constexpr std::uint64_t PAGE_IS_WPALLOWED = 1u << 0;
constexpr std::uint64_t PAGE_IS_WRITTEN = 1u << 1;
constexpr std::uint64_t PAGE_IS_FILE = 1u << 2;
constexpr std::uint64_t PAGE_IS_PRESENT = 1u << 3;
constexpr std::uint64_t PAGE_IS_SWAPPED = 1u << 4;
constexpr std::uint64_t PAGE_IS_PFNZERO = 1u << 5;

constexpr std::uint64_t PM_SCAN_WP_MATCHING = 1u << 0;
constexpr std::uint64_t PM_SCAN_CHECK_WPASYNC = 1u << 1;

struct PageRegion {  // struct page_region
  std::uint64_t start;
  std::uint64_t end;
  std::uint64_t categories;
};

struct PmScanArg {  // struct pm_scan_arg
  std::uint64_t size;
  std::uint64_t flags;
  std::uint64_t start;
  std::uint64_t end;
  std::uint64_t walk_end;
  std::uint64_t vec;
  std::uint64_t vec_len;
  std::uint64_t max_pages;
  std::uint64_t category_inverted;
  std::uint64_t category_mask;
  std::uint64_t category_anyof_mask;
  std::uint64_t return_mask;
};
static_assert(sizeof(PmScanArg) == 96);

constexpr unsigned long PAGEMAP_SCAN = _IOWR('f', 16, PmScanArg);

// include/uapi/linux/userfaultfd.h
constexpr std::uint64_t FEATURE_WP_HUGETLBFS_SHMEM = 1u << 12;
constexpr std::uint64_t FEATURE_WP_ASYNC = 1u << 15;
constexpr int UFFD_USER_MODE_ONLY_FLAG = 1;

// /proc/PID/pagemap entries (Documentation/admin-guide/mm/pagemap.rst).
constexpr std::uint64_t PM_PRESENT = std::uint64_t{1} << 63;
constexpr std::uint64_t PM_SWAPPED = std::uint64_t{1} << 62;
constexpr std::uint64_t PM_FILE_OR_SHARED = std::uint64_t{1} << 61;
constexpr std::uint64_t PM_PFN_MASK = (std::uint64_t{1} << 55) - 1;

}  // namespace datacap::detail::kabi
