// The C API's archives (datacap.h): write, open as a cap, read without building one.
#include "capi/boundary.hpp"

using namespace datacap::capi;

namespace {

datacap_archive_info c_info_of(const datacap::ArchiveInfo& info) noexcept {
  datacap_archive_info out{};
  out.digest = info.digest == datacap::Digest::sha256 ? DATACAP_SHA256 : DATACAP_BLAKE2B256;
  out.content_len = info.content_len;
  out.page_count = info.page_count;
  out.stored_pages = info.stored_pages;
  out.unique_pages = info.unique_pages;
  out.missing_pages = info.missing_pages;
  out.dirty_pages = info.dirty_pages;
  out.flushed_loaded_pages = info.flushed_loaded_pages;
  out.flushed_missing_pages = info.flushed_missing_pages;
  out.file_size = info.file_size;
  out.root = c_hash_of(info.root);
  return out;
}

datacap::ArchiveVerify verify_of(datacap_archive_verify verify) {
  switch (verify) {
    case DATACAP_VERIFY_STRUCTURE:
      return datacap::ArchiveVerify::structure;
    case DATACAP_VERIFY_FULL:
      return datacap::ArchiveVerify::full;
  }
  throw datacap::InvalidArgument("unknown datacap_archive_verify " +
                                 std::to_string(static_cast<int>(verify)));
}

datacap::FileAccess access_of(datacap_file_access access) {
  switch (access) {
    case DATACAP_ACCESS_MAP:
      return datacap::FileAccess::map;
    case DATACAP_ACCESS_COPY:
      return datacap::FileAccess::copy;
  }
  throw datacap::InvalidArgument("unknown datacap_file_access " +
                                 std::to_string(static_cast<int>(access)));
}

// Thrown through ArchiveReader::for_each_page when the caller's callback asks to stop.
struct StopWalk {};

}  // namespace

extern "C" {

datacap_status datacap_archive_write(const datacap_cap* cap, const char* path,
                                     datacap_digest digest, datacap_archive_info* info) {
  if (cap == nullptr || path == nullptr) return misuse("datacap_archive_write: NULL argument");
  return guard([&] {
    const datacap::ArchiveInfo written = datacap::write_archive(cap->cap, path, digest_of(digest));
    if (info != nullptr) *info = c_info_of(written);
  });
}

datacap_status datacap_archive_open(const char* path, datacap_archive_verify verify,
                                    datacap_file_access access, uint64_t max_memory,
                                    datacap_cap** out, datacap_archive_info* info) {
  if (path == nullptr || out == nullptr) return misuse("datacap_archive_open: NULL argument");
  return guard([&] {
    datacap::OpenedArchive opened =
        datacap::open_archive(path, {verify_of(verify), access_of(access), max_memory});
    *out = new datacap_cap{std::move(opened.cap)};
    if (info != nullptr) *info = c_info_of(opened.info);
  });
}

datacap_status datacap_archive_new(const char* path, uint64_t max_memory, datacap_archive** out) {
  if (path == nullptr || out == nullptr) return misuse("datacap_archive_new: NULL argument");
  return guard([&] { *out = new datacap_archive{datacap::ArchiveReader(path, max_memory)}; });
}

void datacap_archive_free(datacap_archive* archive) { delete archive; }

datacap_status datacap_archive_get_info(const datacap_archive* archive, datacap_archive_info* out) {
  if (archive == nullptr || out == nullptr) {
    return misuse("datacap_archive_get_info: NULL argument");
  }
  *out = c_info_of(archive->reader.info());
  return DATACAP_OK;
}

datacap_status datacap_archive_verify_all(const datacap_archive* archive) {
  if (archive == nullptr) return misuse("datacap_archive_verify_all: NULL archive");
  return guard([&] { archive->reader.verify(); });
}

datacap_status datacap_archive_for_each_page(const datacap_archive* archive,
                                             int (*fn)(void* context, uint64_t page_index,
                                                       const uint8_t* bytes),
                                             void* context) {
  if (archive == nullptr || fn == nullptr) {
    return misuse("datacap_archive_for_each_page: NULL argument");
  }
  return guard([&] {
    try {
      archive->reader.for_each_page([&](std::uint64_t page_index, const std::uint8_t* bytes) {
        if (fn(context, page_index, bytes) != 0) throw StopWalk{};
      });
    } catch (const StopWalk&) {
      // the caller's callback asked to stop: not a failure
    }
  });
}

datacap_status datacap_archive_verify_file(const char* path, datacap_archive_info* info) {
  if (path == nullptr) return misuse("datacap_archive_verify_file: NULL path");
  return guard([&] {
    const datacap::ArchiveInfo verified = datacap::verify_archive(path);
    if (info != nullptr) *info = c_info_of(verified);
  });
}

}  // extern "C"
