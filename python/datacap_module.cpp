// The module `datacap._datacap`: exceptions, buffers, hashes, version and the module's free
// functions that belong to no class (hashing parameters, page roots). The classes are bound in
// bind_cap.cpp, bind_proof.cpp and bind_storage.cpp.
#include "bindings.hpp"

#include <exception>
#include <string>

#include "datacap/error.hpp"
#include "datacap/hash.hpp"
#include "datacap/merkle.hpp"
#include "datacap/page.hpp"
#include "datacap/types.hpp"
#include "datacap/version.hpp"

namespace datacap_py {

// ---- buffers -----------------------------------------------------------------------------------

namespace {

// Any buffer, any item format (the byte size is what counts); C-contiguous or TypeError.
void get_buffer(py::handle obj, Py_buffer* view, bool writable, const char* what) {
  const int flags = writable ? PyBUF_FULL : PyBUF_FULL_RO;
  if (PyObject_GetBuffer(obj.ptr(), view, flags) != 0) {
    PyErr_Clear();
    const std::string type = py::str(py::type::handle_of(obj).attr("__name__"));
    throw py::type_error(std::string(what) + ": expected " +
                         (writable ? "a writable bytes-like object (bytearray, memoryview, numpy "
                                     "array), got "
                                   : "a bytes-like object (bytes, bytearray, memoryview, numpy "
                                     "array), got ") +
                         type +
                         (writable && PyObject_CheckBuffer(obj.ptr()) ? " (read-only)" : ""));
  }
  if (!PyBuffer_IsContiguous(view, 'C')) {
    PyBuffer_Release(view);
    throw py::type_error(std::string(what) +
                         ": the buffer is not C-contiguous (copy it first, e.g. bytes(x) or "
                         "numpy.ascontiguousarray(x))");
  }
}

}  // namespace

ReadBuffer::ReadBuffer(py::handle obj, const char* what) { get_buffer(obj, &view_, false, what); }

ReadBuffer& ReadBuffer::operator=(ReadBuffer&& other) noexcept {
  if (this != &other) {
    if (view_.obj != nullptr) PyBuffer_Release(&view_);
    view_ = other.view_;
    other.view_.obj = nullptr;
  }
  return *this;
}

ReadBuffer::~ReadBuffer() {
  if (view_.obj != nullptr) PyBuffer_Release(&view_);
}

WriteBuffer::WriteBuffer(py::handle obj, const char* what) { get_buffer(obj, &view_, true, what); }

WriteBuffer::~WriteBuffer() { PyBuffer_Release(&view_); }

datacap::Digest digest_of(const std::string& name) { return datacap::parse_digest(name); }

datacap::Hash32 hash_of(py::handle obj) {
  if (PyUnicode_Check(obj.ptr())) {
    const std::string hex = py::str(obj);
    if (hex.size() != 64)
      throw py::value_error("a hash in hex is 64 characters, not " + std::to_string(hex.size()));
    return datacap::hash_from_hex(hex);
  }
  const ReadBuffer buffer(obj, "hash");
  const auto bytes = buffer.bytes();
  if (bytes.size() != 32) {
    throw py::value_error("a hash is 32 bytes, not " + std::to_string(bytes.size()));
  }
  datacap::Hash32 hash;
  std::memcpy(hash.data(), bytes.data(), 32);
  return hash;
}

WriterLock::WriterLock(Cap& cap) : cap_(cap) {
  if (cap_.writer.try_lock()) return;
  py::gil_scoped_release release;  // another thread writes this cap (possibly without the GIL)
  cap_.writer.lock();
}

// ---- exceptions --------------------------------------------------------------------------------

namespace {

// The Python exception classes, by C++ class. Created once at import, never freed (the module
// cannot be unloaded).
struct ErrorTypes {
  PyObject* error = nullptr;
  PyObject* invalid_argument = nullptr;
  PyObject* out_of_range = nullptr;
  PyObject* memory_limit_exceeded = nullptr;
  PyObject* dirty_cap = nullptr;
  PyObject* missing_page = nullptr;
  PyObject* decode = nullptr;
  PyObject* validation = nullptr;
  PyObject* io = nullptr;
  PyObject* integrity = nullptr;
  PyObject* not_found = nullptr;
  PyObject* unsupported = nullptr;
};
ErrorTypes error_types;

PyObject* new_error_type(py::module_& m, const char* name, py::tuple bases, const char* doc) {
  const std::string qualified = std::string("datacap.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), /*dict=*/nullptr);
  if (type == nullptr) throw py::error_already_set();
  m.attr(name) = py::handle(type);  // the module holds a reference too
  return type;
}

PyObject* type_for(const datacap::Error& e) {
  using datacap::ErrorKind;
  switch (e.kind()) {
    case ErrorKind::invalid_argument:
      return error_types.invalid_argument;
    case ErrorKind::out_of_range:
      return dynamic_cast<const datacap::MemoryLimitExceeded*>(&e) != nullptr
                 ? error_types.memory_limit_exceeded
                 : error_types.out_of_range;
    case ErrorKind::dirty_cap:
      return error_types.dirty_cap;
    case ErrorKind::missing_page:
      return error_types.missing_page;
    case ErrorKind::decode:
      return error_types.decode;
    case ErrorKind::validation:
      return error_types.validation;
    case ErrorKind::io:
      return error_types.io;
    case ErrorKind::integrity:
      return error_types.integrity;
    case ErrorKind::not_found:
      return error_types.not_found;
    case ErrorKind::unsupported:
      return error_types.unsupported;
  }
  return error_types.error;
}

// Sets the Python exception for a datacap::Error: the class of its kind, the library's message
// as its only argument, `kind` and what the C++ exception carries as attributes.
void raise(const datacap::Error& e) {
  PyObject* type = type_for(e);
  py::object exc = py::reinterpret_steal<py::object>(PyObject_CallFunction(type, "s", e.what()));
  if (!exc) return;  // the constructor failed: its error is set
  exc.attr("kind") = datacap::to_string(e.kind());
  if (const auto* x = dynamic_cast<const datacap::MissingPage*>(&e)) {
    exc.attr("page_index") = x->page_index();
    exc.attr("hash") = to_bytes(x->hash());
  } else if (const auto* x = dynamic_cast<const datacap::MemoryLimitExceeded*>(&e)) {
    exc.attr("needed") = x->needed();
    exc.attr("limit") = x->limit();
  } else if (const auto* x = dynamic_cast<const datacap::DecodeError*>(&e)) {
    exc.attr("field") = x->field();
    exc.attr("offset") = x->offset();
  } else if (const auto* x = dynamic_cast<const datacap::ValidationError*>(&e)) {
    exc.attr("rule") = datacap::to_string(x->rule());
    exc.attr("value") = x->value();
    exc.attr("index") = x->index();
  } else if (const auto* x = dynamic_cast<const datacap::IoError*>(&e)) {
    // Not OSError's `filename`: with it set, str() would become "[Errno None] None: 'path'".
    exc.attr("path") = x->path();
  } else if (const auto* x = dynamic_cast<const datacap::IntegrityError*>(&e)) {
    exc.attr("page_index") = x->page_index();
    exc.attr("expected") = to_bytes(x->expected());
    exc.attr("actual") = to_bytes(x->actual());
  } else if (const auto* x = dynamic_cast<const datacap::NotFound*>(&e)) {
    exc.attr("key") = to_bytes(x->key());
  }
  PyErr_SetObject(type, exc.ptr());
}

}  // namespace

void register_errors(py::module_& m) {
  auto& t = error_types;
  const py::handle exception(PyExc_Exception), value_error(PyExc_ValueError),
      os_error(PyExc_OSError);
  t.error = new_error_type(m, "Error", py::make_tuple(exception),
                           "Root of every exception datacap raises (datacap::Error). Attribute "
                           "`kind`: the C++ ErrorKind's name, e.g. 'out_of_range'.");
  t.invalid_argument = new_error_type(
      m, "InvalidArgument", py::make_tuple(py::handle(t.error), value_error),
      "Misuse: a bad combination of arguments, an unaligned offset, duplicate entries, an "
      "unknown name. Also a ValueError.");
  t.out_of_range = new_error_type(
      m, "OutOfRange", py::make_tuple(py::handle(t.invalid_argument)),
      "An offset or page index at or past the end, a range ending past the end, content longer "
      "than a page, a size over 2^32 pages.");
  t.memory_limit_exceeded = new_error_type(
      m, "MemoryLimitExceeded", py::make_tuple(py::handle(t.out_of_range)),
      "An input that would need more memory than a max_memory option allows. Attributes: "
      "needed, limit (bytes).");
  t.dirty_cap = new_error_type(
      m, "DirtyCap", py::make_tuple(py::handle(t.invalid_argument)),
      "An operation defined only on a clean cap (hash_tree_root, proofs, save_cap) was called on "
      "a dirty one: flush() first.");
  t.missing_page = new_error_type(
      m, "MissingPage", py::make_tuple(py::handle(t.error)),
      "A Missing page (known only by its hash) was read. Attributes: page_index, hash.");
  t.decode = new_error_type(
      m, "DecodeError", py::make_tuple(py::handle(t.error)),
      "Malformed or damaged bytes from outside (archives, store records, or an archive page "
      "that does not match its recorded hash). Attributes: field, offset.");
  t.validation =
      new_error_type(m, "ValidationError", py::make_tuple(py::handle(t.error)),
                     "A well-formed value that breaks a rule. Attributes: rule, value, index.");
  t.io = new_error_type(m, "IoError", py::make_tuple(py::handle(t.error), os_error),
                        "The operating system refused a file operation. Also an OSError. "
                        "Attribute: path.");
  t.integrity = new_error_type(
      m, "IntegrityError", py::make_tuple(py::handle(t.error)),
      "Bytes fetched by their hash (from a store, or given to resolve_missing) whose root is not "
      "that hash; nothing was changed. Attributes: page_index, expected, actual.");
  t.not_found = new_error_type(m, "NotFound", py::make_tuple(py::handle(t.error)),
                               "A store does not hold the key asked for. Attribute: key.");
  t.unsupported = new_error_type(
      m, "Unsupported", py::make_tuple(py::handle(t.error)),
      "The operating system lacks a feature the call needs (a kernel without it, a sandbox).");

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const datacap::Error& e) {
      raise(e);
    }
  });
}

// ---- the module --------------------------------------------------------------------------------

namespace {

void register_functions(py::module_& m) {
  m.attr("PAGE_SIZE") = datacap::PAGE_SIZE;
  m.attr("GROUP_PAGES") = datacap::GROUP_PAGES;
  m.attr("MAX_PAGE_COUNT") = datacap::MAX_PAGE_COUNT;
  m.attr("__version__") = datacap::version_string();
  m.attr("DIGESTS") = py::make_tuple("sha256", "blake2b256");

  m.def(
      "page_root",
      [](const ReadBuffer& data, const std::string& digest) {
        const auto d = digest_of(digest);
        return datacap::page_root(d, data.bytes());
      },
      py::arg("data"), py::arg("digest") = "sha256",
      "page_root(data, digest='sha256') -> bytes\n\n"
      "The root of a Loaded page holding `data` zero-padded to PAGE_SIZE (SPEC §4): what a\n"
      "Missing page carries and what resolve_missing checks. O(PAGE_SIZE). Raises OutOfRange\n"
      "when len(data) > PAGE_SIZE.");
  m.def("size_root", &datacap::size_root, py::arg("content_len"),
        "size_root(content_len) -> bytes\n\n"
        "The size root: content_len as 8 little-endian bytes, then 24 zero bytes.");
  m.def(
      "pages_depth", [](std::uint64_t page_count) { return datacap::pages_depth(page_count); },
      py::arg("page_count"),
      "pages_depth(page_count) -> int\n\nDepth of the pages tree: ceil(log2(max(page_count, 1))).");
  m.def(
      "hash_pair",
      [](const datacap::Hash32& left, const datacap::Hash32& right, const std::string& digest) {
        return datacap::hash_pair(digest_of(digest), left, right);
      },
      py::arg("left"), py::arg("right"), py::arg("digest") = "sha256",
      "hash_pair(left, right, digest='sha256') -> bytes\n\n"
      "D(left || right) for two 32-byte hashes: one node of the merkle tree. O(1).");
  m.def(
      "active_isa", [] { return std::string(datacap::to_string(datacap::active_isa())); },
      "active_isa() -> str\n\n"
      "The SHA-256 kernel in use: 'portable', 'avx2', 'avx512' or 'shani' (the environment\n"
      "variable DATACAP_ISA pins one). Raises InvalidArgument when DATACAP_ISA is unknown.");
  m.def(
      "available_isas",
      [] {
        py::list out;
        for (auto isa : datacap::available_isas()) out.append(datacap::to_string(isa));
        return out;
      },
      "available_isas() -> list[str]\n\nThe SHA-256 kernels this CPU and OS can run.");
  m.def(
      "set_isa", [](const std::string& name) { datacap::set_isa(datacap::parse_isa(name)); },
      py::arg("isa"),
      "set_isa(isa) -> None\n\n"
      "Pins the SHA-256 kernel for the whole process (every kernel gives the same bytes).\n"
      "Raises InvalidArgument for an unknown or unavailable one.");
  m.def("set_hash_threads", &datacap::set_hash_threads, py::arg("threads"),
        "set_hash_threads(threads) -> None\n\n"
        "Threads used by large root computations (the caller counts as one): 0 = one per core\n"
        "(the default), 1 = never start a thread. Not while another thread hashes.");
  m.def("hash_threads", &datacap::hash_threads,
        "hash_threads() -> int\n\nThe setting of set_hash_threads (0: one per core).");
  m.def("live_page_count", &datacap::live_page_count,
        "live_page_count() -> int\n\n"
        "Loaded pages alive in this process (every cap, view and store): for memory reports\n"
        "and leak checks.");
}

}  // namespace

}  // namespace datacap_py

PYBIND11_MODULE(_datacap, m) {
  using namespace datacap_py;
  // Every docstring here opens with its own Python signature (the C++ one pybind11 would add
  // names C++ types such as `handle`).
  py::options options;
  options.disable_function_signatures();
  m.doc() =
      "datacap: copy-on-write paged memory with merkle roots for deterministic VMs.\n\n"
      "The compiled half of the package `datacap`; import `datacap`, not this module.";
  register_errors(m);
  register_functions(m);
  register_page_view(m);
  register_cap(m);
  register_proof(m);
  register_image(m);
  register_storage(m);
}
