// datacap.DataCap: construction, reads (zero-copy page views, copies into buffers), writes,
// flush, roots, eliding and resolving Missing pages. See bindings.hpp for the GIL rules.
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "datacap/cap.hpp"
#include "datacap/error.hpp"
#include "datacap/page.hpp"

namespace datacap_py {

namespace {

// A write of at least this many bytes runs without the GIL (on a copy, committed after).
constexpr std::size_t HEAVY_WRITE_BYTES = std::size_t{1} << 20;
// elide_pages / resolve_missing of at least this many pages run without the GIL.
constexpr std::size_t HEAVY_PAGES = 256;

std::unique_ptr<Cap> wrap(datacap::DataCap cap) { return std::make_unique<Cap>(std::move(cap)); }

std::uint64_t page_index_of(py::handle obj, const char* what) {
  if (!PyIndex_Check(obj.ptr())) {
    throw py::type_error(std::string(what) + ": a page_index is an int");
  }
  const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(obj.ptr()));
  if (!index) throw py::error_already_set();
  const unsigned long long value = PyLong_AsUnsignedLongLong(index.ptr());
  if (value == static_cast<unsigned long long>(-1) && PyErr_Occurred() != nullptr) {
    PyErr_Clear();
    throw datacap::OutOfRange(std::string(what) + ": page_index " + std::string(py::str(index)) +
                              " is not in [0, 2^64)");
  }
  return value;
}

// (page_index, bytes) pairs from a dict {page_index: bytes} or an iterable of pairs. The buffers
// are kept in `buffers` (alive, unmoved) while the spans are used.
template <class Fn>
void for_each_pair(py::handle pages, const char* what, Fn&& fn) {
  py::object items = py::isinstance<py::dict>(pages)
                         ? py::reinterpret_borrow<py::dict>(pages).attr("items")()
                         : py::reinterpret_borrow<py::object>(pages);
  for (py::handle item : py::iter(items)) {
    if (!py::isinstance<py::sequence>(item) || py::len(item) != 2) {
      throw py::type_error(std::string(what) +
                           ": expected {page_index: bytes} or an iterable of (page_index, bytes)");
    }
    const auto pair = py::reinterpret_borrow<py::sequence>(item);
    fn(page_index_of(pair[0], what), ReadBuffer(pair[1], what));
  }
}

std::string kind_name(const datacap::PageSlot& slot) {
  switch (slot.kind()) {
    case datacap::PageSlot::Kind::empty:
      return "empty";
    case datacap::PageSlot::Kind::loaded:
      return "loaded";
    case datacap::PageSlot::Kind::missing:
      return "missing";
  }
  return "?";
}

const char* const CAP_DOC = R"doc(A VM's memory object: whole 4 KiB pages, copy-on-write.

A cap is an immutable backing shared by reference count plus a private overlay of the pages
this cap has written. copy() (MGMT_COPY) is O(1) whatever the size; writes to a copy never show
in the original and vice versa. A flushed (clean) cap has a content identity, hash_tree_root(),
identical on every machine (SPEC §4). A page may be Missing: known only by its hash, never read
as zeros (reading it raises MissingPage).

Costs (n pages, L = ceil(log2 n / 6) <= 6 radix levels, k pages touched):
  copy() O(1); page_at / is_dirty O(L); write O(bytes + L·pages); flush() O(k·L·64);
  hash_tree_root() O(1) when cached, else only what changed since the last root is hashed.

Bytes-like arguments (bytes, bytearray, memoryview, numpy arrays, mmap) are read in place
through the buffer protocol, never copied first; they must be C-contiguous (TypeError).

Threads: every method may be called from any Python thread. Hashing, flushing, large copies
and large writes release the GIL; a method that releases it works on an O(1) copy of the cap,
and writes to one cap object are serialized, so a reader never sees half a write.

Errors: subclasses of datacap.Error (OutOfRange, DirtyCap, MissingPage, ...). Every mutating
method leaves the cap unchanged when it raises.)doc";

}  // namespace

void register_cap(py::module_& m) {
  py::class_<Cap> c(m, "DataCap", CAP_DOC);
  c.def(py::init<>(), "DataCap()\n\nThe empty cap: size 0, no pages. O(1).");

  c.def_static(
      "from_bytes",
      [](const ReadBuffer& data, std::uint64_t target) {
        const auto bytes = data.bytes();
        py::gil_scoped_release release;
        return wrap(target == 0 ? datacap::DataCap::from_bytes(bytes)
                                : datacap::DataCap::from_bytes_sized(bytes, target));
      },
      py::arg("data"), py::arg("target") = 0,
      "from_bytes(data, target=0) -> DataCap\n\n"
      "A clean cap holding `data`: size max(target, len(data)) rounded up to a page, at least\n"
      "one page; the rest is zero, all-zero pages Empty. O(len(data)), without the GIL; `data`\n"
      "is read in place. Raises OutOfRange above 2^32 pages.");
  c.def_static(
      "zeroed",
      [](std::uint64_t content_len) { return wrap(datacap::DataCap::zeroed(content_len)); },
      py::arg("content_len"),
      "zeroed(content_len) -> DataCap\n\n"
      "A clean cap of content_len bytes, every page Empty. O(1). Raises InvalidArgument when\n"
      "content_len is not a PAGE_SIZE multiple, OutOfRange above 2^32 pages.");
  c.def_static(
      "from_sparse_pages",
      [](std::uint64_t content_len, py::handle pages) {
        std::vector<ReadBuffer> buffers;
        std::vector<datacap::SparsePage> sparse;
        std::vector<std::uint64_t> indices;
        for_each_pair(pages, "from_sparse_pages", [&](std::uint64_t index, ReadBuffer buffer) {
          indices.push_back(index);
          buffers.push_back(std::move(buffer));
        });
        for (std::size_t k = 0; k < buffers.size(); ++k) {
          if (indices[k] > std::numeric_limits<std::uint32_t>::max()) {
            throw datacap::OutOfRange("from_sparse_pages: page_index " +
                                      std::to_string(indices[k]) + " >= 2^32");
          }
          sparse.push_back({static_cast<std::uint32_t>(indices[k]), buffers[k].bytes()});
        }
        py::gil_scoped_release release;
        return wrap(datacap::DataCap::from_sparse_pages(content_len, sparse));
      },
      py::arg("content_len"), py::arg("pages"),
      "from_sparse_pages(content_len, pages) -> DataCap\n\n"
      "A clean cap of content_len bytes (rounded up to a page, at least one page) whose named\n"
      "pages hold their bytes zero-padded: `pages` is {page_index: bytes} or an iterable of\n"
      "(page_index, bytes). Same bytes and root as from_bytes of the contiguous content.\n"
      "O(total bytes + pages·L), without the GIL. Raises OutOfRange for a page_index >=\n"
      "page_count or bytes longer than a page, InvalidArgument for a page named twice.");

  // ---- sizes and state ----
  c.def_property_readonly(
      "content_len", [](const Cap& self) { return self.cap.content_len(); },
      "Size in bytes (a PAGE_SIZE multiple).");
  c.def_property_readonly(
      "page_count", [](const Cap& self) { return self.cap.page_count(); }, "Size in pages.");
  c.def_property_readonly(
      "is_clean", [](const Cap& self) { return self.cap.is_clean(); },
      "True when the overlay is empty: hash_tree_root(), proofs and save_cap need it.");
  c.def_property_readonly(
      "dirty_page_count", [](const Cap& self) { return self.cap.dirty_page_count(); },
      "Pages in the overlay (written since the last flush). O(1).");
  c.def(
      "is_dirty", [](const Cap& self, std::uint64_t i) { return self.cap.is_dirty(i); },
      py::arg("page_index"),
      "is_dirty(page_index) -> bool\n\n"
      "True when the overlay holds page_index (False past the end). O(L).");
  c.def(
      "page_kind",
      [](const Cap& self, std::uint64_t i) { return kind_name(self.cap.page_slot(i)); },
      py::arg("page_index"),
      "page_kind(page_index) -> str\n\n"
      "'empty', 'loaded' or 'missing': the effective slot of the page (the overlay's where it\n"
      "shadows the backing). O(L). Raises OutOfRange when page_index >= page_count.");
  c.def(
      "slot_root",
      [](const Cap& self, std::uint64_t i, const std::string& digest) {
        const auto d = digest_of(digest);
        return self.cap.page_slot(i).root(d);
      },
      py::arg("page_index"), py::arg("digest") = "sha256",
      "slot_root(page_index, digest='sha256') -> bytes\n\n"
      "The page's leaf in the pages tree: Empty -> 32 zero bytes, Loaded -> its page root,\n"
      "Missing -> its hash. O(PAGE_SIZE) the first time for a Loaded page, then cached.\n"
      "Raises OutOfRange.");
  c.def(
      "missing_pages", [](const Cap& self) { return self.cap.missing_pages(); },
      "missing_pages() -> list[int]\n\nThe effective Missing pages, ascending. O(stored pages).");

  // ---- reads ----
  c.def(
      "page_at",
      [](const Cap& self, std::uint64_t off) {
        if (off >= self.cap.content_len()) (void)self.cap.page_at(off);  // raises OutOfRange
        const std::uint64_t index = off / datacap::PAGE_SIZE;
        return page_memoryview(self.cap.page_slot(index), index, "page_at");
      },
      py::arg("off"),
      "page_at(off) -> memoryview\n\n"
      "The PAGE_SIZE bytes of the page containing byte `off`, as a read-only memoryview of the\n"
      "page itself (no copy; an Empty page is the shared zero page). The view keeps the page\n"
      "alive: it stays valid, and unchanged, after the cap is written, flushed or dropped.\n"
      "O(L), no page copied. Raises OutOfRange when off >= content_len, MissingPage for a\n"
      "Missing page.");
  c.def(
      "copy_into",
      [](const Cap& self, std::uint64_t start, py::handle out) {
        const WriteBuffer buffer(out, "out");
        const auto bytes = buffer.bytes();
        if (bytes.size() <= datacap::PAGE_SIZE) return self.cap.copy_into(start, bytes);
        const datacap::DataCap snap = self.snapshot();
        py::gil_scoped_release release;
        snap.copy_into(start, bytes);
      },
      py::arg("start"), py::arg("out"),
      "copy_into(start, out) -> None\n\n"
      "Fills the writable buffer `out` (bytearray, memoryview, numpy array) with the bytes\n"
      "from `start`; Empty pages read as zeros. O(len(out) + L·pages), without the GIL above\n"
      "a page. Raises OutOfRange when the range ends past content_len, MissingPage when it\n"
      "covers a Missing page (out may then be partly written), TypeError for a read-only or\n"
      "non-contiguous buffer.");
  c.def(
      "read",
      [](const Cap& self, std::uint64_t start, std::uint64_t length) {
        const std::uint64_t len = self.cap.content_len();
        if (length > len || start > len - length) {
          throw datacap::OutOfRange("read: range [" + std::to_string(start) + ", " +
                                    std::to_string(start) + " + " + std::to_string(length) +
                                    ") ends past content_len " + std::to_string(len));
        }
        PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(length));
        if (raw == nullptr) throw py::error_already_set();
        py::bytes result = py::reinterpret_steal<py::bytes>(raw);
        const std::span<std::uint8_t> out(reinterpret_cast<std::uint8_t*>(PyBytes_AS_STRING(raw)),
                                          length);
        if (length <= datacap::PAGE_SIZE) {
          self.cap.copy_into(start, out);
        } else {
          const datacap::DataCap snap = self.snapshot();
          py::gil_scoped_release release;  // `result` is not visible to anyone else yet
          snap.copy_into(start, out);
        }
        return result;
      },
      py::arg("start"), py::arg("length"),
      "read(start, length) -> bytes\n\n"
      "A copy of bytes [start, start + length) (Empty pages read as zeros). O(length + L·pages),\n"
      "without the GIL above a page. Raises OutOfRange, MissingPage. For no copy at all, see\n"
      "page_at and copy_into.");

  // ---- writes ----
  c.def(
      "write",
      [](Cap& self, std::uint64_t off, const ReadBuffer& data) {
        const auto bytes = data.bytes();
        mutate(self, bytes.size() >= HEAVY_WRITE_BYTES,
               [&](datacap::DataCap& cap) { cap.write(off, bytes); });
      },
      py::arg("off"), py::arg("data"),
      "write(off, data) -> None\n\n"
      "Writes `data` at byte offset `off` into the overlay, across page boundaries (copy on\n"
      "write: no other cap sees it). O(len(data) + L·pages); without the GIL from 1 MiB.\n"
      "Raises OutOfRange when the range ends past content_len, MissingPage when a partly\n"
      "covered page is Missing (nothing is written then).");
  c.def(
      "write_page",
      [](Cap& self, std::uint64_t off, const ReadBuffer& data) {
        mutate(self, false, [&](datacap::DataCap& cap) { cap.write_page(off, data.bytes()); });
      },
      py::arg("off"), py::arg("data"),
      "write_page(off, data) -> None\n\n"
      "Sets the overlay page containing `off` to `data` zero-padded, always as a Loaded page\n"
      "(even all zeros, so it shadows the backing). O(PAGE_SIZE + L·64). Raises OutOfRange when\n"
      "off >= content_len or len(data) > PAGE_SIZE.");
  c.def(
      "put_page",
      [](Cap& self, std::uint64_t off, const ReadBuffer& data) {
        mutate(self, false, [&](datacap::DataCap& cap) { cap.put_page(off, data.bytes()); });
      },
      py::arg("off"), py::arg("data"),
      "put_page(off, data) -> None\n\n"
      "Overwrites the BACKING page containing `off` with `data` zero-padded, canonically (all\n"
      "zeros become Empty); the overlay is not touched (an overlay page there keeps shadowing).\n"
      "O(PAGE_SIZE + L·64). Same errors as write_page.");
  c.def(
      "place_shared",
      [](Cap& self, std::uint64_t dst_off, const Cap& src) {
        const datacap::DataCap source = src.snapshot();  // src may be self
        mutate(self, false, [&](datacap::DataCap& cap) { cap.place_shared(dst_off, source); });
      },
      py::arg("dst_off"), py::arg("src"),
      "place_shared(dst_off, src) -> None\n\n"
      "Backing page dst_off / PAGE_SIZE + i becomes src's page i for every page of src, by\n"
      "reference (no byte copy); pages past this cap's end are dropped. O(pages stored in the\n"
      "range). Raises InvalidArgument when dst_off is not page-aligned.");
  c.def(
      "flush",
      [](const Cap& self) {
        const datacap::DataCap snap = self.snapshot();
        py::gil_scoped_release release;
        return wrap(snap.flush());
      },
      "flush() -> DataCap\n\n"
      "A new clean cap: the backing with every overlay page folded in (a zero page becomes\n"
      "Empty, Missing stays Missing). This cap is unchanged; write `cap = cap.flush()` to settle\n"
      "it. O(k·L·64) for k overlay pages, without the GIL.");
  c.def(
      "hash_tree_root",
      [](const Cap& self, const std::string& digest) {
        const auto d = digest_of(digest);
        const datacap::DataCap snap = self.snapshot();
        py::gil_scoped_release release;
        return snap.hash_tree_root(d);
      },
      py::arg("digest") = "sha256",
      "hash_tree_root(digest='sha256') -> bytes\n\n"
      "The 32-byte cap root (SPEC §4) under 'sha256' or 'blake2b256'. O(1) when cached; else\n"
      "hashes only the pages and nodes changed since the last root (zero subtrees never), on\n"
      "every core, without the GIL. Raises DirtyCap when the cap is not clean (flush first),\n"
      "InvalidArgument for an unknown digest, DecodeError for an archive page that does not\n"
      "match its recorded hash.");

  // ---- copies ----
  const char* copy_doc =
      "copy() -> DataCap\n\n"
      "MGMT_COPY: a new cap sharing every page and node with this one; writes to either never\n"
      "show in the other. O(1) whatever the size or overlay.";
  c.def(
      "copy", [](const Cap& self) { return wrap(self.snapshot()); }, copy_doc);
  c.def(
      "__copy__", [](const Cap& self) { return wrap(self.snapshot()); }, copy_doc);
  c.def(
      "__deepcopy__", [](const Cap& self, py::handle) { return wrap(self.snapshot()); },
      py::arg("memo"),
      "__deepcopy__(memo) -> DataCap\n\nThe same as copy(): pages are immutable, so an O(1) "
      "copy is already independent.");

  // ---- partial state ----
  c.def(
      "elide_pages",
      [](Cap& self, const std::vector<std::uint64_t>& page_indices) {
        mutate(self, page_indices.size() >= HEAVY_PAGES,
               [&](datacap::DataCap& cap) { cap.elide_pages(page_indices); });
      },
      py::arg("page_indices"),
      "elide_pages(page_indices) -> None\n\n"
      "Turns the Loaded pages at page_indices into Missing(SHA-256 page root); Empty and Missing\n"
      "pages stay as they are. The SHA-256 root is unchanged (the BLAKE2b one is not). O(k·\n"
      "(PAGE_SIZE hash if not cached + L·64)). Raises OutOfRange (nothing changed) for an index\n"
      ">= page_count.");
  c.def(
      "resolve_missing",
      [](Cap& self, py::handle pages) {
        std::vector<datacap::DataCap::ResolvedPage> resolved;
        for_each_pair(pages, "resolve_missing", [&](std::uint64_t index, ReadBuffer buffer) {
          resolved.push_back({index, datacap::PageRef::copy_of(buffer.bytes())});
        });
        mutate(self, resolved.size() >= HEAVY_PAGES,
               [&](datacap::DataCap& cap) { cap.resolve_missing(resolved); });
      },
      py::arg("pages"),
      "resolve_missing(pages) -> None\n\n"
      "Replaces Missing pages by their bytes: `pages` is {page_index: bytes} or an iterable of\n"
      "(page_index, bytes). Every page is checked first: raises OutOfRange for an index >=\n"
      "page_count (or bytes longer than a page), InvalidArgument for a page that is not\n"
      "Missing or named twice, IntegrityError when a page's root is not its Missing hash — and\n"
      "then nothing has changed. Keeps the SHA-256 root. O(k·(PAGE_SIZE hash + L·64)).");

  c.def("__repr__", [](const Cap& self) {
    return "<datacap.DataCap content_len=" + std::to_string(self.cap.content_len()) +
           " page_count=" + std::to_string(self.cap.page_count()) +
           " dirty_page_count=" + std::to_string(self.cap.dirty_page_count()) + ">";
  });
}

}  // namespace datacap_py
