// An output file written through a temporary name (FILE.tmp-PID) and renamed into place only
// when complete: a failed command never leaves a half-written FILE, and never replaces an old one.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "datacap/error.hpp"

namespace datacap::cli {

class OutputFile {
 public:
  explicit OutputFile(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp-" + std::to_string(::getpid())) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw IoError(tmp_, std::string("cannot create: ") + std::strerror(errno));
  }
  ~OutputFile() {
    if (fd_ >= 0) {
      ::close(fd_);
      ::unlink(tmp_.c_str());
    }
  }
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write_at(std::uint64_t offset, const std::uint8_t* p, std::size_t n) {
    auto off = static_cast<off_t>(offset);
    while (n > 0) {
      const ssize_t w = ::pwrite(fd_, p, n, off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail("write failed");
      p += w;
      off += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  void finish(std::uint64_t size) {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) fail("cannot size the output");
    if (::fsync(fd_) != 0) fail("fsync failed");
    ::close(fd_);
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
      const std::string message = std::strerror(errno);
      ::unlink(tmp_.c_str());
      throw IoError(path_, "cannot rename into place: " + message);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) { throw IoError(path_, what + ": " + std::strerror(errno)); }
  std::string path_, tmp_;
  int fd_ = -1;
};

}  // namespace datacap::cli
