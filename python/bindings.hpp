// Shared pieces of the Python module `datacap._datacap`: byte buffers taken through the buffer
// protocol without copying, the Hash32 <-> bytes conversion, digest names, the Python-side cap
// object and its locking rules, and the registration functions of each binding file.
//
// Threads and the GIL. Every call that hashes, packs, stores or copies more than a page releases
// the GIL. A Python cap object may be used from several Python threads, so the rules of DataCap
// ("mutating one cap object concurrently with any other use of it needs outside synchronization")
// are kept here, never left to the Python caller:
//  - a reader that releases the GIL first takes an O(1) copy of the cap (MGMT_COPY) while it
//    holds the GIL, then works on that copy: a concurrent writer of the Python object changes
//    another DataCap, which DataCap allows;
//  - writers hold `writer` (so two writers of one object never interleave). A light writer keeps
//    the GIL and mutates in place; a heavy one (large writes, hydration) works on a copy without
//    the GIL and puts the result back under the GIL, before releasing `writer`. A reader never
//    sees half a write.
#pragma once

// pybind11 first: it includes Python.h, which must precede the standard headers.
#include <pybind11/operators.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <span>
#include <string>
#include <utility>

#include "datacap/cap.hpp"
#include "datacap/hash.hpp"
#include "datacap/types.hpp"

namespace datacap_py {

namespace py = pybind11;

// A read-only view of a C-contiguous Python buffer (bytes, bytearray, memoryview, numpy array,
// mmap...). Holds the exporter's buffer (so its memory stays put, even without the GIL) until
// destroyed, which must happen with the GIL held. Never copies.
class ReadBuffer {
 public:
  ReadBuffer() noexcept { view_.obj = nullptr; }
  // Throws py::type_error for an object without the buffer protocol or a non-contiguous one.
  ReadBuffer(py::handle obj, const char* what);
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;
  ReadBuffer(ReadBuffer&& other) noexcept : view_(other.view_) { other.view_.obj = nullptr; }
  ReadBuffer& operator=(ReadBuffer&& other) noexcept;
  ~ReadBuffer();

  [[nodiscard]] std::span<const std::uint8_t> bytes() const noexcept {
    if (view_.obj == nullptr) return {};
    return {static_cast<const std::uint8_t*>(view_.buf), static_cast<std::size_t>(view_.len)};
  }

 private:
  Py_buffer view_{};
};

// A writable view of a C-contiguous Python buffer (bytearray, writable memoryview, numpy array).
class WriteBuffer {
 public:
  // Throws py::type_error for a read-only, non-contiguous or non-buffer object.
  WriteBuffer(py::handle obj, const char* what);
  WriteBuffer(const WriteBuffer&) = delete;
  WriteBuffer& operator=(const WriteBuffer&) = delete;
  ~WriteBuffer();

  [[nodiscard]] std::span<std::uint8_t> bytes() const noexcept {
    return {static_cast<std::uint8_t*>(view_.buf), static_cast<std::size_t>(view_.len)};
  }

 private:
  Py_buffer view_{};
};

// "sha256" / "blake2b256" (datacap::parse_digest; InvalidArgument otherwise).
datacap::Digest digest_of(const std::string& name);
// 32 bytes, or 64 hex characters. Throws py::type_error / py::value_error.
datacap::Hash32 hash_of(py::handle obj);
inline py::bytes to_bytes(const datacap::Hash32& hash) {
  return py::bytes(reinterpret_cast<const char*>(hash.data()), hash.size());
}

// The Python object `datacap.DataCap`.
struct Cap {
  Cap() = default;
  explicit Cap(datacap::DataCap c) noexcept : cap(std::move(c)) {}
  // The O(1) copy a reader works on without the GIL. REQUIRES: the GIL is held.
  [[nodiscard]] datacap::DataCap snapshot() const noexcept { return cap; }

  datacap::DataCap cap;
  std::mutex writer;  // held by every writer of `cap` (see the top of this file)
};

// Holds `cap.writer`, waiting for it without the GIL when another thread holds it. REQUIRES: the
// GIL is held on construction and destruction.
class WriterLock {
 public:
  explicit WriterLock(Cap& cap);
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;
  ~WriterLock() { cap_.writer.unlock(); }

 private:
  Cap& cap_;
};

// Runs fn(DataCap&) as a writer of `self`: in place with the GIL when !heavy; on a copy without
// the GIL when heavy, the result committed under the GIL. fn's exception leaves the cap as
// before (the library's strong guarantee, or the discarded copy).
template <class Fn>
auto mutate(Cap& self, bool heavy, Fn&& fn) {
  WriterLock lock(self);
  if (!heavy) return fn(self.cap);
  datacap::DataCap work = self.snapshot();
  using Result = decltype(fn(work));
  if constexpr (std::is_void_v<Result>) {
    {
      py::gil_scoped_release release;
      fn(work);
    }
    self.cap = std::move(work);
  } else {
    Result result = [&] {
      py::gil_scoped_release release;
      return fn(work);
    }();
    self.cap = std::move(work);
    return result;
  }
}

// Registration of each part of the module, in this order (later parts use earlier types).
void register_errors(py::module_& m);
void register_page_view(py::module_& m);
void register_cap(py::module_& m);
void register_proof(py::module_& m);
void register_image(py::module_& m);
void register_storage(py::module_& m);

// A read-only memoryview of the page of `slot` (Empty: the zero page) that keeps the page alive.
// Throws MissingPage (context, page_index) for a Missing slot.
py::object page_memoryview(const datacap::PageSlot& slot, std::uint64_t page_index,
                           const char* context);

}  // namespace datacap_py

namespace pybind11::detail {

// Hash32 <-> bytes (32 bytes; a 64-character hex str is accepted too). Without this, stl.h would
// turn std::array<std::uint8_t, 32> into a list of 32 ints.
template <>
struct type_caster<datacap::Hash32> {
  PYBIND11_TYPE_CASTER(datacap::Hash32, const_name("bytes"));
  bool load(handle src, bool /*convert*/) {
    if (!src || (!PyObject_CheckBuffer(src.ptr()) && !PyUnicode_Check(src.ptr()))) return false;
    value = datacap_py::hash_of(src);
    return true;
  }
  static handle cast(const datacap::Hash32& hash, return_value_policy /*policy*/,
                     handle /*parent*/) {
    return datacap_py::to_bytes(hash).release();
  }
};

// datacap_py::ReadBuffer from any C-contiguous buffer.
template <>
struct type_caster<datacap_py::ReadBuffer> {
  PYBIND11_TYPE_CASTER(datacap_py::ReadBuffer, const_name("Buffer"));
  bool load(handle src, bool /*convert*/) {
    value = datacap_py::ReadBuffer(src, "data");
    return true;
  }
};

}  // namespace pybind11::detail
