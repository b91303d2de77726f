#include "cli/file_source.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "datacap/error.hpp"
#include "datacap/hash.hpp"
#include "datacap/page.hpp"

namespace datacap::cli {
namespace {

constexpr std::size_t BUFFER_SIZE = std::size_t{1} << 20;  // 256 pages per read

class Fd {
 public:
  explicit Fd(int fd, bool owned) : fd_(fd), owned_(owned) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (owned_ && fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
  bool owned_;
};

std::string system_message() { return std::strerror(errno); }

// Reads up to `len` bytes at the current position (pos < 0) or at `pos`, retrying short reads
// and EINTR until `len` bytes or end of input.
std::size_t read_fully(int fd, std::uint8_t* buf, std::size_t len, std::int64_t pos,
                       const std::string& path) {
  std::size_t got = 0;
  while (got < len) {
    const ssize_t n = pos < 0 ? ::read(fd, buf + got, len - got)
                              : ::pread(fd, buf + got, len - got, pos + static_cast<std::int64_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(path, "read failed: " + system_message());
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

void emit_pages(const std::uint8_t* buf, std::size_t len, const PageStreamCallbacks& cb) {
  if (len > 0) cb.on_pages(std::span<const std::uint8_t>(buf, len));
}

}  // namespace

std::uint64_t input_size_hint(const std::string& path) {
  struct stat st {};
  if (path == "-" ? ::fstat(0, &st) != 0 : ::stat(path.c_str(), &st) != 0) return 0;
  return S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : 0;
}

std::uint64_t stream_pages(const std::string& path, const PageStreamCallbacks& cb) {
  const bool is_stdin = path == "-";
  const std::string name = is_stdin ? std::string("<stdin>") : path;
  int raw = is_stdin ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) throw IoError(name, "cannot open: " + system_message());
  Fd fd(raw, !is_stdin);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw IoError(name, "cannot stat: " + system_message());
  if (S_ISDIR(st.st_mode)) throw IoError(name, "is a directory");
  std::unique_ptr<std::uint8_t[]> buffer(new std::uint8_t[BUFFER_SIZE]);

  if (!S_ISREG(st.st_mode)) {
    // A pipe or device: read sequentially; every read is a whole number of pages except the
    // last, because read_fully fills the buffer unless the input ends.
    std::uint64_t total = 0;
    for (;;) {
      const std::size_t n = read_fully(fd.get(), buffer.get(), BUFFER_SIZE, -1, name);
      emit_pages(buffer.get(), n, cb);
      total += n;
      if (cb.on_progress) cb.on_progress(total, 0);
      if (n < BUFFER_SIZE) return total;
    }
  }

  // A regular file: walk its data extents (SEEK_DATA / SEEK_HOLE); pages wholly inside a hole
  // are reported as zero runs and never read. Filesystems without hole support report the
  // whole file as one extent.
  const auto len = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t pos = 0;  // always a page boundary
  while (pos < len) {
    off_t data = ::lseek(fd.get(), static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) data = static_cast<off_t>(len);  // only a hole remains
      else data = static_cast<off_t>(pos);                 // no hole support: read it all
    }
    const std::uint64_t data_page = static_cast<std::uint64_t>(data) / PAGE_SIZE * PAGE_SIZE;
    if (data_page >= len) {
      // The rest is a hole. Whole pages are zero runs; a final partial page is a short page.
      cb.on_zero_pages((len - pos) / PAGE_SIZE);
      if ((len - pos) % PAGE_SIZE != 0) {
        cb.on_pages(std::span<const std::uint8_t>(zero_page(), (len - pos) % PAGE_SIZE));
      }
      break;
    }
    if (data_page > pos) cb.on_zero_pages((data_page - pos) / PAGE_SIZE);
    off_t hole = ::lseek(fd.get(), static_cast<off_t>(data_page), SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(len);
    std::uint64_t extent_end = (static_cast<std::uint64_t>(hole) + PAGE_SIZE - 1) / PAGE_SIZE * PAGE_SIZE;
    if (extent_end > len) extent_end = len;
    for (std::uint64_t off = data_page; off < extent_end;) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(BUFFER_SIZE, extent_end - off));
      const std::size_t n = read_fully(fd.get(), buffer.get(), want, static_cast<std::int64_t>(off), name);
      if (n != want) throw IoError(name, "file shrank while being read");
      emit_pages(buffer.get(), n, cb);
      off += n;
      if (cb.on_progress) cb.on_progress(off, len);
    }
    pos = extent_end;
  }
  return len;
}

}  // namespace datacap::cli
