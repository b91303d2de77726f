// Internal: reading files by descriptor for the archive and raw-file readers — whole reads that
// retry EINTR and short reads, with errors naming the file.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "datacap/error.hpp"

namespace datacap::detail {

// Reads up to `len` bytes at `pos` (pread), or at the current position when pos < 0 (read),
// until `len` bytes or the end of the input; returns the bytes read. Throws IoError naming
// `name` when a read fails.
inline std::size_t read_fully(int fd, std::uint8_t* buf, std::size_t len, std::int64_t pos,
                              const std::string& name) {
  std::size_t got = 0;
  while (got < len) {
    const ssize_t n = pos < 0
                          ? ::read(fd, buf + got, len - got)
                          : ::pread(fd, buf + got, len - got, pos + static_cast<std::int64_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(name, std::string("read failed: ") + std::strerror(errno));
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

}  // namespace datacap::detail
