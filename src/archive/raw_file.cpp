// Raw files as caps without copying: pages borrowed from a read-only mapping.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "datacap/archive.hpp"
#include "datacap/error.hpp"
#include "page/page_node.hpp"
#include "tree/merkle.hpp"

namespace datacap {
namespace {

std::string system_message() { return std::strerror(errno); }

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

bool is_archive_file(const std::string& path) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw IoError(path, "cannot open: " + system_message());
  char head[8] = {};
  ssize_t n;
  do {
    n = ::pread(f.fd, head, sizeof head, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw IoError(path, "cannot read: " + system_message());
  static constexpr char MAGIC[8] = {'D', 'C', 'A', 'P', 'A', 'R', 'C', '\0'};
  return n == 8 && std::memcmp(head, MAGIC, 8) == 0;
}

DataCap map_raw_file(const std::string& path, std::uint64_t size) {
  Fd f{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw IoError(path, "cannot open: " + system_message());
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw IoError(path, "cannot stat: " + system_message());
  if (!S_ISREG(st.st_mode)) throw IoError(path, "not a regular file (cannot be mapped)");
  const auto len = static_cast<std::uint64_t>(st.st_size);
  const std::uint64_t wanted = std::max(len, size);
  const std::uint64_t pages = std::max<std::uint64_t>(1, wanted / PAGE_SIZE + (wanted % PAGE_SIZE != 0 ? 1 : 0));
  if (pages > MAX_PAGE_COUNT) {
    throw OutOfRange(path + ": size " + std::to_string(wanted) + " is beyond 2^32 pages");
  }
  const std::uint64_t content_len = pages * PAGE_SIZE;
  PageSlab slab(content_len);
  if (len == 0) return DataCap::from_backing(std::move(slab));

  detail::MappedFile* file = detail::MappedFile::map_readonly(f.fd, len, path);
  const detail::MappedFile::Holder drop{file};
  void* base = file->base;
  ::madvise(base, len, MADV_SEQUENTIAL);
  const auto* bytes = static_cast<const std::uint8_t*>(base);
  const std::uint64_t file_pages = (len + PAGE_SIZE - 1) / PAGE_SIZE;
  // Data regions only: a hole reads as zeros and is Empty without being read.
  std::uint64_t page = 0;
  while (page < file_pages) {
    off_t data = ::lseek(f.fd, static_cast<off_t>(page * PAGE_SIZE), SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      data = static_cast<off_t>(page * PAGE_SIZE);  // SEEK_DATA unsupported: read it all
    }
    off_t hole = ::lseek(f.fd, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(len);
    const std::uint64_t first = static_cast<std::uint64_t>(data) / PAGE_SIZE;
    const std::uint64_t end = std::min(file_pages, (static_cast<std::uint64_t>(hole) + PAGE_SIZE - 1) / PAGE_SIZE);
    for (page = first; page < end; ++page) {
      const std::uint8_t* p = bytes + page * PAGE_SIZE;
      // The last page may be partial: the mapping reads zeros past the end of the file.
      if (detail::is_zero_page(p)) continue;
      slab.set_page_slot(page, detail::PageNode::adopt_slot(detail::PageNode::borrowed(file, p)));
    }
    page = std::max(page, end);
  }
  return DataCap::from_backing(std::move(slab));
}

}  // namespace datacap
