#include "page/mapped_file.hpp"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "datacap/error.hpp"

namespace datacap::detail {

MappedFile* MappedFile::map_readonly(int fd, std::size_t len, const std::string& path) {
  void* base = ::mmap(nullptr, len, PROT_READ, MAP_PRIVATE, fd, 0);
  if (base == MAP_FAILED) throw IoError(path, std::string("cannot map: ") + std::strerror(errno));
  auto* file = new MappedFile();
  file->base = base;
  file->len = len;
  return file;
}

void MappedFile::release() noexcept {
  if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    if (heap) {
      ::operator delete (base, std::align_val_t{PAGE_SIZE});
    } else {
      ::munmap(base, len);
    }
    delete this;
  }
}

}  // namespace datacap::detail
