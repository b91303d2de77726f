#include "common/replacement_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "datacap/error.hpp"

namespace datacap::detail {
namespace {

std::string system_message() { return std::strerror(errno); }

}  // namespace

bool OutputTarget::replaceable() const noexcept { return !exists || S_ISREG(mode); }
bool OutputTarget::is_directory() const noexcept { return exists && S_ISDIR(mode); }

OutputTarget resolve_output(const std::string& path) {
  OutputTarget out;
  out.path = path;
  out.target = path;
  struct stat link {};
  const bool named = ::lstat(path.c_str(), &link) == 0;
  if (!named && errno != ENOENT) throw IoError(path, "cannot stat: " + system_message());
  struct stat st {};
  out.exists = named && ::stat(path.c_str(), &st) == 0;
  if (named && !out.exists) {
    // Replacing a dangling link would lose the link; writing through it would create a file
    // nobody named.
    throw IoError(path,
                  "is a symbolic link to a file that does not exist (" + system_message() + ")");
  }
  if (out.exists) out.mode = st.st_mode;
  // Only a regular file is replaced, so only its link needs resolving (a temporary file goes
  // beside the target). A link to a pipe or socket — /dev/stdout, /proc/self/fd/1 — names no
  // path realpath can give back, and is written through in place.
  if (out.exists && S_ISLNK(link.st_mode) && S_ISREG(st.st_mode)) {
    const std::unique_ptr<char, decltype(&std::free)> real(::realpath(path.c_str(), nullptr),
                                                           &std::free);
    if (!real) throw IoError(path, "cannot resolve the symbolic link: " + system_message());
    out.target = real.get();
  }
  return out;
}

ReplacementFile::ReplacementFile(const OutputTarget& target)
    : path_(target.path), target_(target.target) {
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
  // The replaced file's permissions carry over (a 0600 file stays private).
  if (target.exists && ::fchmod(fd_, target.mode & 07777) != 0) {
    const std::string why = system_message();
    ::close(fd_);
    ::unlink(tmp_.c_str());
    throw IoError(path_, "cannot give " + tmp_ + " the old file's permissions: " + why);
  }
}

ReplacementFile::~ReplacementFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void ReplacementFile::write_at(std::uint64_t offset, const void* data, std::size_t n) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw IoError(path_, "write failed (to " + tmp_ + "): " + system_message());
    }
    if (w == 0) throw IoError(path_, "write failed (to " + tmp_ + "): no progress (device full?)");
    p += w;
    offset += static_cast<std::uint64_t>(w);
    n -= static_cast<std::size_t>(w);
  }
}

void ReplacementFile::truncate(std::uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    throw IoError(path_, "cannot size " + tmp_ + ": " + system_message());
  }
}

void ReplacementFile::commit() {
  if (::fsync(fd_) != 0) throw IoError(path_, "fsync of " + tmp_ + " failed: " + system_message());
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw IoError(path_, "close of " + tmp_ + " failed: " + system_message());
  if (::rename(tmp_.c_str(), target_.c_str()) != 0) {
    throw IoError(path_, "cannot rename into place: " + system_message());
  }
  committed_ = true;
  // The rename is durable only once its directory is synced.
  const std::string dir =
      target_.find('/') == std::string::npos ? "." : target_.substr(0, target_.rfind('/') + 1);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const bool synced = ::fsync(dfd) == 0 || errno == EINVAL;
    ::close(dfd);
    if (!synced)
      throw IoError(path_, "cannot sync its directory after the rename: " + system_message());
  }
}

}  // namespace datacap::detail
