// Raw files as caps: streamed page by page, read once into private pages, or borrowed from a
// read-only mapping. One extent walker serves all three, so a hole is skipped the same way
// everywhere.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "archive/file_reads.hpp"
#include "datacap/archive.hpp"
#include "datacap/error.hpp"
#include "page/page_node.hpp"
#include "tree/merkle.hpp"

namespace datacap {
namespace {

using detail::read_fully;

constexpr std::size_t READ_BUFFER = std::size_t{1} << 20;  // 256 pages per read

std::string system_message() { return std::strerror(errno); }

struct Fd {
  int fd = -1;
  bool owned = true;
  explicit Fd(int descriptor, bool own = true) : fd(descriptor), owned(own) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (owned && fd >= 0) ::close(fd);
  }
};

std::uint64_t round_up_pages(std::uint64_t bytes) {
  return bytes / PAGE_SIZE + (bytes % PAGE_SIZE != 0 ? 1 : 0);
}

// The size of a cap of `len` input bytes and a requested `size`: max of the two, whole pages,
// at least one page.
std::uint64_t cap_len_for(std::uint64_t len, std::uint64_t size, const std::string& path) {
  const std::uint64_t pages = std::max<std::uint64_t>(1, round_up_pages(std::max(len, size)));
  if (pages > MAX_PAGE_COUNT) {
    throw OutOfRange(path + ": size " + std::to_string(std::max(len, size)) +
                     " is beyond 2^32 pages");
  }
  return pages * PAGE_SIZE;
}

// The next run of pages of a regular file of `len` bytes (as fstat saw it) that may hold data,
// at or after the page boundary `pos`: [first, end), first a page boundary ≥ pos, end a page
// boundary or `len`, end > first. Nothing when only a hole remains. The file may change while
// it is walked, so whatever lseek answers, the run is clamped to [pos, len) and never empty:
// the walk always advances.
struct Extent {
  std::uint64_t first, end;
};
std::optional<Extent> next_extent(int fd, std::uint64_t pos, std::uint64_t len) {
  off_t data = ::lseek(fd, static_cast<off_t>(pos), SEEK_DATA);
  if (data < 0) {
    if (errno == ENXIO) return std::nullopt;  // only a hole remains (or the file shrank)
    return Extent{pos, len};                  // no hole support: all of it is data
  }
  auto data_off = static_cast<std::uint64_t>(data);
  if (data_off >= len) return std::nullopt;
  const std::uint64_t first = std::max(pos, data_off / PAGE_SIZE * PAGE_SIZE);
  const off_t hole = ::lseek(fd, data, SEEK_HOLE);
  std::uint64_t end = hole < 0 ? len : round_up_pages(static_cast<std::uint64_t>(hole)) * PAGE_SIZE;
  end = std::min(end, len);
  if (end <= first) end = std::min(len, first + PAGE_SIZE);
  return Extent{first, end};
}

void check_unchanged_size(int fd, std::uint64_t len, const std::string& name) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw IoError(name, "cannot stat: " + system_message());
  if (static_cast<std::uint64_t>(st.st_size) != len) {
    throw IoError(name, "file changed size while being read (" + std::to_string(len) +
                            " bytes, then " + std::to_string(st.st_size) + ")");
  }
}

}  // namespace

std::uint64_t input_size_hint(const std::string& path) noexcept {
  struct stat st {};
  if (path == "-" ? ::fstat(0, &st) != 0 : ::stat(path.c_str(), &st) != 0) return 0;
  return S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : 0;
}

namespace {

// stream_file_pages on a file already open (`name` for messages).
std::uint64_t stream_fd_pages(const Fd& fd, const std::string& name, bool is_stdin,
                              const FilePageSink& sink) {
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) throw IoError(name, "cannot stat: " + system_message());
  if (S_ISDIR(st.st_mode)) {
    // (A closed standard input shows as one: the CLI holds its slot with a directory.)
    throw IoError(name,
                  is_stdin ? "is not open for reading (closed, or a directory)" : "is a directory");
  }
  const std::unique_ptr<std::uint8_t[]> buffer(new std::uint8_t[READ_BUFFER]);
  const auto emit = [&](std::size_t n) {
    if (n > 0) sink.on_pages(std::span<const std::uint8_t>(buffer.get(), n));
  };

  if (!S_ISREG(st.st_mode) || st.st_size == 0) {
    // A pipe or device — or a regular file that says it is empty, as the files of /proc do
    // whatever they hold (reading up to st_size read nothing of /proc/cpuinfo): read in
    // order until the end. Every read but the last fills the buffer, so every batch is whole
    // pages except the input's end.
    std::uint64_t total = 0;
    for (;;) {
      const std::size_t n = read_fully(fd.fd, buffer.get(), READ_BUFFER, -1, name);
      emit(n);
      total += n;
      if (sink.on_progress) sink.on_progress(total, 0);
      if (n < READ_BUFFER) return total;
    }
  }

  // A regular file: only its data extents are read; pages of holes are reported as zero runs.
  // Its length is the one fstat saw; a file that shrinks or grows meanwhile is an error.
  const auto len = static_cast<std::uint64_t>(st.st_size);
  std::uint64_t pos = 0;  // always a page boundary or len
  while (pos < len) {
    const std::optional<Extent> extent = next_extent(fd.fd, pos, len);
    const std::uint64_t zeros_end = extent ? extent->first : len;
    if (zeros_end > pos) {
      sink.on_zero_pages((zeros_end - pos) / PAGE_SIZE);
      if (!extent && (len - pos) % PAGE_SIZE != 0) {
        // The input ends inside a hole: its short last page is zero bytes.
        std::memset(buffer.get(), 0, PAGE_SIZE);
        emit(static_cast<std::size_t>((len - pos) % PAGE_SIZE));
      }
    }
    if (!extent) break;
    for (std::uint64_t off = extent->first; off < extent->end;) {
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(READ_BUFFER, extent->end - off));
      const std::size_t n =
          read_fully(fd.fd, buffer.get(), want, static_cast<std::int64_t>(off), name);
      if (n != want)
        throw IoError(name, "file shrank while being read (" + std::to_string(len) +
                                " bytes, then " + std::to_string(off + n) + ")");
      emit(n);
      off += n;
      if (sink.on_progress) sink.on_progress(off, len);
    }
    pos = extent->end;
  }
  check_unchanged_size(fd.fd, len, name);
  return len;
}

}  // namespace

std::uint64_t stream_file_pages(const std::string& path, const FilePageSink& sink) {
  const bool is_stdin = path == "-";
  const std::string name = is_stdin ? std::string("<stdin>") : path;
  if (path.empty()) throw InvalidArgument("input path is empty");
  const Fd fd(is_stdin ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC), !is_stdin);
  if (fd.fd < 0) throw IoError(name, "cannot open: " + system_message());
  return stream_fd_pages(fd, name, is_stdin, sink);
}

namespace {

// read_raw_file's work on a stream of the file's pages (`stream` feeds a sink and returns the
// length).
DataCap read_raw_pages(const std::function<std::uint64_t(const FilePageSink&)>& stream,
                       const std::string& name, std::uint64_t size, std::uint64_t max_memory) {
  std::uint64_t page = 0;
  // What the pages and their share of the tree cost (a page, its page object, ~40 bytes of
  // tree), checked as they come so an endless or huge input is refused, not swallowed.
  constexpr std::uint64_t COST_PER_PAGE = PAGE_SIZE + 64 + 64;
  std::uint64_t held = 0;
  // Pages are collected first: the cap's size is known only at the end of a stream.
  std::vector<std::pair<std::uint64_t, PageRef>> pages;
  FilePageSink sink;
  sink.on_pages = [&](std::span<const std::uint8_t> bytes) {
    for (std::size_t at = 0; at < bytes.size(); at += PAGE_SIZE, ++page) {
      if (page >= MAX_PAGE_COUNT) throw OutOfRange(name + ": input is beyond 2^32 pages");
      const auto one = bytes.subspan(at, std::min<std::size_t>(PAGE_SIZE, bytes.size() - at));
      if (std::all_of(one.begin(), one.end(), [](std::uint8_t b) { return b == 0; })) continue;
      held += COST_PER_PAGE;
      if (max_memory != 0 && held > max_memory) {
        throw MemoryLimitExceeded(name + ": its non-zero pages need more than the limit of " +
                                      std::to_string(max_memory) + " bytes of memory (max_memory)",
                                  held, max_memory);
      }
      pages.emplace_back(page, PageRef::copy_of(one));
    }
  };
  sink.on_zero_pages = [&](std::uint64_t n) {
    if (n > MAX_PAGE_COUNT - std::min(page, MAX_PAGE_COUNT))
      throw OutOfRange(name + ": input is beyond 2^32 pages");
    page += n;
  };
  const std::uint64_t len = stream(sink);
  PageSlab slab(cap_len_for(len, size, name));
  for (auto& [index, ref] : pages) slab.set_page_slot(index, PageSlot::loaded(std::move(ref)));
  return DataCap::from_backing(std::move(slab));
}

}  // namespace

DataCap read_raw_file(const std::string& path, std::uint64_t size, std::uint64_t max_memory) {
  const std::string name = path == "-" ? std::string("<stdin>") : path;
  return read_raw_pages([&](const FilePageSink& sink) { return stream_file_pages(path, sink); },
                        name, size, max_memory);
}

bool is_archive_file(const std::string& path) {
  // O_NONBLOCK: a FIFO nobody writes must not block the sniff; only a regular file can be an
  // archive.
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (f.fd < 0) throw IoError(path, "cannot open: " + system_message());
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw IoError(path, "cannot stat: " + system_message());
  if (!S_ISREG(st.st_mode)) return false;
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
  Fd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) throw IoError(path, "cannot open: " + system_message());
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) throw IoError(path, "cannot stat: " + system_message());
  if (!S_ISREG(st.st_mode)) throw IoError(path, "not a regular file (cannot be mapped)");
  const auto len = static_cast<std::uint64_t>(st.st_size);
  // A file that says it is empty may not be (/proc): nothing to map, so it is read to its
  // end into pages of its own, as stream_file_pages reads it (from this descriptor: the file
  // checked, not whatever the path names by now).
  if (len == 0) {
    return read_raw_pages(
        [&](const FilePageSink& sink) { return stream_fd_pages(f, path, false, sink); }, path, size,
        0);
  }
  PageSlab slab(cap_len_for(len, size, path));

  detail::MappedFile* file = detail::MappedFile::map_readonly(f.fd, len, path);
  const detail::MappedFile::Holder drop{file};
  ::madvise(file->base, len, MADV_SEQUENTIAL);
  const auto* bytes = static_cast<const std::uint8_t*>(file->base);
  // Data extents only: a hole reads as zeros and is Empty without being read.
  for (std::uint64_t pos = 0; pos < len;) {
    const std::optional<Extent> extent = next_extent(f.fd, pos, len);
    if (!extent) break;
    for (std::uint64_t off = extent->first; off < extent->end; off += PAGE_SIZE) {
      const std::uint8_t* p = bytes + off;
      // The last page may be partial: the mapping reads zeros past the end of the file.
      if (detail::is_zero_page(p)) continue;
      slab.set_page_slot(off / PAGE_SIZE,
                         detail::PageNode::adopt_slot(detail::PageNode::borrowed(file, p)));
    }
    pos = extent->end;
  }
  return DataCap::from_backing(std::move(slab));
}

}  // namespace datacap
