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

void OutputFile::check_path(const std::string& path, const std::vector<std::string>& refused) {
  if (path.empty()) throw InvalidArgument("-o: the output path is empty");
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return;
  for (const std::string& other : refused) {
    if (same_file(st, other)) throw InvalidArgument("-o " + path + ": refusing to write over " + other);
  }
}

OutputFile::OutputFile(std::string path, const std::vector<std::string>& refused) : path_(std::move(path)) {
  check_path(path_, refused);
  target_ = path_;
  struct stat link {};
  const bool named = ::lstat(path_.c_str(), &link) == 0;
  if (!named && errno != ENOENT) throw IoError(path_, "cannot stat: " + system_message());
  struct stat st {};
  const bool exists = named && ::stat(path_.c_str(), &st) == 0;
  if (named && !exists) {
    // A dangling symbolic link: replacing it would lose the link, writing through it would
    // create a file the user did not name.
    throw IoError(path_, "is a symbolic link to a file that does not exist (" + system_message() + ")");
  }
  if (exists && S_ISLNK(link.st_mode)) {
    // Replace the link's target, not the link.
    const std::unique_ptr<char, decltype(&std::free)> real(::realpath(path_.c_str(), nullptr), &std::free);
    if (!real) throw IoError(path_, "cannot resolve the symbolic link: " + system_message());
    target_ = real.get();
  }
  if (exists && S_ISDIR(st.st_mode)) throw IoError(path_, "is a directory");
  if (!exists || S_ISREG(st.st_mode)) {
    // A new file beside the target: O_EXCL and O_NOFOLLOW, so nothing planted under the
    // temporary name (a symlink, an old file) is followed or reused.
    for (int attempt = 0; fd_ < 0 && attempt < 100; ++attempt) {
      tmp_ = target_;
      tmp_ += ".tmp-";
      tmp_ += std::to_string(::getpid());
      if (attempt != 0) {
        tmp_ += '-';
        tmp_ += std::to_string(attempt);
      }
      fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
      if (fd_ < 0 && errno != EEXIST) break;
    }
    if (fd_ < 0) {
      const std::string why = system_message();
      tmp_.clear();
      throw IoError(path_, "cannot create a temporary file beside it: " + why);
    }
    set_pending_temp(tmp_);
    // The replaced file's permissions carry over (a 0600 file stays private).
    if (exists && ::fchmod(fd_, st.st_mode & 07777) != 0) {
      const std::string why = system_message();
      ::close(fd_);
      fd_ = -1;
      ::unlink(tmp_.c_str());
      set_pending_temp("");
      throw IoError(path_, "cannot give " + tmp_ + " the old file's permissions: " + why);
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
  // The rename itself is durable only once the directory is synced.
  const std::string dir = target_.find('/') == std::string::npos ? "." : target_.substr(0, target_.rfind('/') + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const bool synced = ::fsync(dfd) == 0 || errno == EINVAL;
    ::close(dfd);
    if (!synced) fail("cannot sync the directory after renaming into place");
  }
}

}  // namespace datacap::cli
