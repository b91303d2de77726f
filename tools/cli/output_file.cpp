#include "cli/output_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "cli/process.hpp"
#include "common/replacement_file.hpp"
#include "datacap/error.hpp"

namespace datacap::cli {
namespace {

std::string system_message() { return std::strerror(errno); }

bool same_file(const struct stat& a, const std::string& other) {
  struct stat b {};
  return ::stat(other.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

void OutputFile::check_path(const std::string& path, const std::vector<std::string>& refused) {
  if (path.empty()) throw InvalidArgument("-o: the output path is empty");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  for (const std::string& other : refused) {
    if (same_file(st, other))
      throw InvalidArgument("-o " + path + ": refusing to write over " + other);
  }
}

OutputFile::OutputFile(std::string path, const std::vector<std::string>& refused)
    : path_(std::move(path)) {
  check_path(path_, refused);
  const detail::OutputTarget target = detail::resolve_output(path_);
  if (target.is_directory()) throw IoError(path_, "is a directory");
  if (target.replaceable()) {
    replacement_ = std::make_unique<detail::ReplacementFile>(target);
    set_pending_temp(replacement_->temp_path());
    return;
  }
  // A device, FIFO or socket: written in place, in order, every byte — gaps as zeros even on
  // a seekable character device, whose writes may fail (/dev/full: skipping the zero pages of
  // an all-zero cap wrote nothing and reported success).
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) throw IoError(path_, "cannot open for writing: " + system_message());
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (replacement_) {
    replacement_.reset();  // removes the temporary file, before the signal handler forgets it
    set_pending_temp("");
  }
}

void OutputFile::fail(const std::string& what) const {
  throw IoError(path_, what + ": " + system_message());
}

void OutputFile::write_all(const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("write failed");
    if (w == 0) {
      errno = ENOSPC;
      fail("write failed");
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void OutputFile::pad_to(std::uint64_t offset) {
  // 1 MiB a write (of the zero-filled .bss: no memory of its own): a sparse 16 TiB cap sent to
  // /dev/null costs 16 million writes, not 256 million.
  static const std::uint8_t zeros[1 << 20] = {};
  while (position_ < offset) {
    const auto n =
        static_cast<std::size_t>(std::min<std::uint64_t>(sizeof zeros, offset - position_));
    write_all(zeros, n);
    position_ += n;
  }
}

void OutputFile::write_at(std::uint64_t offset, const std::uint8_t* p, std::size_t n) {
  if (replacement_) {
    replacement_->write_at(offset, p, n);
    return;
  }
  if (offset < position_) throw InvalidArgument(path_ + ": output written out of order");
  pad_to(offset);
  write_all(p, n);
  position_ += n;
}

void OutputFile::finish(std::uint64_t size) {
  if (replacement_) {
    replacement_->truncate(size);
    replacement_->commit();
    set_pending_temp("");
    return;
  }
  pad_to(size);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("close failed");
}

}  // namespace datacap::cli
