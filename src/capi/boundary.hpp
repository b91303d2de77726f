// What every function of the C API (datacap.h) shares: the handle types, the conversions
// between C and C++ values, and the one place where C++ exceptions become status codes.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "datacap/archive.hpp"
#include "datacap/cap.hpp"
#include "datacap/datacap.h"
#include "datacap/error.hpp"
#include "datacap/hash.hpp"
#include "datacap/store.hpp"

struct datacap_cap {
  datacap::DataCap cap;
};

struct datacap_store {
  std::unique_ptr<datacap::PageStore> store;
};

struct datacap_archive {
  datacap::ArchiveReader reader;
};

namespace datacap::capi {

// Records `message` as the calling thread's last failure and returns `status`.
datacap_status fail(datacap_status status, const char* message) noexcept;

// Runs `body` (which returns nothing) and turns whatever it throws into a status: a
// datacap::Error into its kind + 1, std::bad_alloc into DATACAP_OUT_OF_MEMORY, anything else
// into DATACAP_INTERNAL, each with its message recorded.
datacap_status status_of_current_exception() noexcept;

template <typename Body>
datacap_status guard(Body&& body) noexcept {
  try {
    std::forward<Body>(body)();
    return DATACAP_OK;
  } catch (...) {
    return status_of_current_exception();
  }
}

// A misuse found at the boundary (NULL handle, unknown enum value): INVALID_ARGUMENT.
inline datacap_status misuse(const char* message) noexcept {
  return fail(DATACAP_INVALID_ARGUMENT, message);
}

// (pointer, length) as a span; NULL with length 0 is the empty range. REQUIRES: checked by
// bytes_ok first.
inline std::span<const std::uint8_t> bytes_of(const std::uint8_t* data, std::size_t len) noexcept {
  return data == nullptr ? std::span<const std::uint8_t>() : std::span(data, len);
}
inline bool bytes_ok(const void* data, std::size_t len) noexcept {
  return data != nullptr || len == 0;
}

// Throws InvalidArgument for a value outside the enum (C lets any int through).
Digest digest_of(datacap_digest digest);

inline Hash32 hash_of(const datacap_hash& hash) noexcept {
  Hash32 out;
  std::copy(std::begin(hash.bytes), std::end(hash.bytes), out.begin());
  return out;
}
inline datacap_hash c_hash_of(const Hash32& hash) noexcept {
  datacap_hash out;
  std::copy(hash.begin(), hash.end(), std::begin(out.bytes));
  return out;
}

// A malloc'd copy of `items` for the caller to datacap_free (NULL when empty). Throws
// std::bad_alloc.
template <typename T>
T* malloc_copy(std::span<const T> items) {
  if (items.empty()) return nullptr;
  void* memory = std::malloc(items.size_bytes());
  if (memory == nullptr) throw std::bad_alloc();
  T* out = static_cast<T*>(memory);
  std::copy(items.begin(), items.end(), out);
  return out;
}

// Owns a malloc'd array until it is handed over with release() (so a later failure frees it).
template <typename T>
class MallocArray {
 public:
  MallocArray() = default;
  explicit MallocArray(T* items) noexcept : items_(items) {}
  MallocArray(const MallocArray&) = delete;
  MallocArray& operator=(const MallocArray&) = delete;
  ~MallocArray() { std::free(items_); }
  T* get() const noexcept { return items_; }
  T* release() noexcept { return std::exchange(items_, nullptr); }

 private:
  T* items_ = nullptr;
};

}  // namespace datacap::capi
