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
#include "datacap/error.hpp"

namespace datacap::cli {
namespace {

std::string system_message() { return std::strerror(errno); }

bool same_file(const struct stat& a, const std::string& other) {
  struct stat b {};
  return ::stat(other.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

void OutputFile::check_path(const std::string& path) {
  if (path.empty()) throw InvalidArgument("-o: the output path is empty");
}

OutputFile::OutputFile(std::string path, const std::vector<std::string>& refused) : path_(std::move(path)) {
  check_path(path_);
  target_ = path_;
  struct stat st {};
  bool exists = ::stat(path_.c_str(), &st) == 0;
  if (!exists && errno != ENOENT) throw IoError(path_, "cannot stat: " + system_message());
  struct stat link {};
  if (exists && ::lstat(path_.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
    // Replace the link's target, not the link.
    const std::unique_ptr<char, decltype(&std::free)> real(::realpath(path_.c_str(), nullptr), &std::free);
    if (!real) throw IoError(path_, "cannot resolve the symbolic link: " + system_message());
    target_ = real.get();
  }
  if (exists) {
    for (const std::string& other : refused) {
      if (same_file(st, other)) throw InvalidArgument(path_ + ": refusing to write over " + other);
    }
    if (S_ISDIR(st.st_mode)) throw IoError(path_, "is a directory");
  }
  if (!exists || S_ISREG(st.st_mode)) {
    tmp_ = target_ + ".tmp-" + std::to_string(::getpid());
    set_pending_temp(tmp_);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      const std::string why = system_message();
      set_pending_temp("");
      throw IoError(tmp_, "cannot create: " + why);
    }
    return;
  }
  // A device, FIFO or socket: written in place. A seekable character device (/dev/null) has
  // no content to keep, so gaps are skipped; anything else is written in order, gaps as zeros.
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) throw IoError(path_, "cannot open for writing: " + system_message());
  skip_gaps_ = S_ISCHR(st.st_mode) && ::lseek(fd_, 0, SEEK_CUR) >= 0;
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) {
    ::unlink(tmp_.c_str());
    set_pending_temp("");
  }
}

void OutputFile::fail(const std::string& what) const { throw IoError(path_, what + ": " + system_message()); }

void OutputFile::write_all(const std::uint8_t* p, std::size_t n, std::uint64_t offset) {
  while (n > 0) {
    const bool positional = !tmp_.empty() || skip_gaps_;
    const ssize_t w = positional ? ::pwrite(fd_, p, n, static_cast<off_t>(offset)) : ::write(fd_, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("write failed");
    if (w == 0) {
      errno = ENOSPC;
      fail("write failed");
    }
    p += w;
    offset += static_cast<std::uint64_t>(w);
    n -= static_cast<std::size_t>(w);
  }
}

void OutputFile::pad_to(std::uint64_t offset) {
  static const std::uint8_t zeros[1 << 16] = {};
  while (position_ < offset) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(sizeof zeros, offset - position_));
    write_all(zeros, n, position_);
    position_ += n;
  }
}

void OutputFile::write_at(std::uint64_t offset, const std::uint8_t* p, std::size_t n) {
  if (!tmp_.empty() || skip_gaps_) {
    write_all(p, n, offset);
    return;
  }
  if (offset < position_) throw InvalidArgument(path_ + ": output written out of order");
  pad_to(offset);
  write_all(p, n, offset);
  position_ += n;
}

void OutputFile::finish(std::uint64_t size) {
  if (tmp_.empty()) {
    if (!skip_gaps_) pad_to(size);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close failed");
    return;
  }
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) fail("cannot size the output");
  if (::fsync(fd_) != 0) fail("fsync failed");
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("close failed");
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) fail("cannot rename into place");
  set_pending_temp("");
  tmp_.clear();
}

}  // namespace datacap::cli
