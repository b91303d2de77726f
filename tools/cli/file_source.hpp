// Streams a file (or standard input) page by page with bounded memory, skipping the holes of
// sparse files without reading them.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

namespace datacap::cli {

struct PageStreamCallbacks {
  // The next pages' bytes: whole pages, the last of the input possibly partial.
  std::function<void(std::span<const std::uint8_t>)> on_pages;
  // The next `count` pages are all zero (a hole of a sparse file).
  std::function<void(std::uint64_t)> on_zero_pages;
  // Bytes consumed so far, of `total` (0 when unknown); called now and then.
  std::function<void(std::uint64_t done, std::uint64_t total)> on_progress;
};

// Reads `path` ("-" is standard input) to its end through the callbacks. Returns the number of
// bytes in the input. Holds at most one read buffer (1 MiB) in memory. Throws datacap::IoError.
std::uint64_t stream_pages(const std::string& path, const PageStreamCallbacks& callbacks);

// Size of the input when it is a regular file, else 0 (for progress display).
std::uint64_t input_size_hint(const std::string& path);

}  // namespace datacap::cli
