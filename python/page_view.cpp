// Zero-copy page views: DataCap.page_at returns memoryview(PageBuffer), where PageBuffer is a
// tiny object holding a PageRef (or nothing, for the process-wide zero page) and exporting the
// page's PAGE_SIZE bytes read-only through the buffer protocol. The memoryview keeps its
// PageBuffer, and the PageBuffer the page, alive: the view stays valid and unchanged whatever
// happens to the cap afterwards (a cap never writes a page another handle can see).
//
// A plain CPython type rather than a pybind11 class: the buffer export is PyBuffer_FillInfo on
// one pointer (no allocation), which keeps page_at + one byte read well under a microsecond.
#include <new>

#include "bindings.hpp"
#include "datacap/error.hpp"
#include "datacap/page.hpp"

namespace datacap_py {

namespace {

struct PageBuffer {
  PyObject ob_base;           // what PyObject_HEAD expands to, spelled out for clang-format
  datacap::PageRef page;      // null for the zero page
  const std::uint8_t* bytes;  // PAGE_SIZE bytes, valid while `page` lives
};

PyTypeObject page_buffer_type;
PyBufferProcs page_buffer_procs;

void page_buffer_dealloc(PyObject* self) {
  auto* p = reinterpret_cast<PageBuffer*>(self);
  p->page.~PageRef();
  PyObject_Free(self);
}

int page_buffer_getbuffer(PyObject* self, Py_buffer* view, int flags) {
  auto* p = reinterpret_cast<PageBuffer*>(self);
  // readonly=1: a request for a writable buffer fails with BufferError.
  return PyBuffer_FillInfo(view, self, const_cast<std::uint8_t*>(p->bytes),
                           static_cast<Py_ssize_t>(datacap::PAGE_SIZE), /*readonly=*/1, flags);
}

}  // namespace

py::object page_memoryview(const datacap::PageSlot& slot, std::uint64_t page_index,
                           const char* context) {
  datacap::PageRef page;
  const std::uint8_t* bytes;
  switch (slot.kind()) {
    case datacap::PageSlot::Kind::empty:
      bytes = datacap::zero_page();
      break;
    case datacap::PageSlot::Kind::loaded:
      page = slot.page();
      bytes = page.data();
      break;
    default:
      throw datacap::MissingPage(context, static_cast<std::uint32_t>(page_index),
                                 slot.missing_hash());
  }
  auto* p = static_cast<PageBuffer*>(PyObject_Malloc(sizeof(PageBuffer)));
  if (p == nullptr) throw std::bad_alloc();
  PyObject_Init(reinterpret_cast<PyObject*>(p), &page_buffer_type);
  new (&p->page) datacap::PageRef(std::move(page));
  p->bytes = bytes;
  py::object owner = py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(p));
  PyObject* view = PyMemoryView_FromObject(owner.ptr());
  if (view == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(view);
}

void register_page_view(py::module_& m) {
  page_buffer_procs.bf_getbuffer = page_buffer_getbuffer;
  page_buffer_procs.bf_releasebuffer = nullptr;
  PyTypeObject& t = page_buffer_type;
  Py_SET_REFCNT(reinterpret_cast<PyObject*>(&t), 1);  // static type: never freed
  t.tp_name = "datacap.PageBuffer";
  t.tp_basicsize = sizeof(PageBuffer);
  t.tp_itemsize = 0;
  t.tp_dealloc = page_buffer_dealloc;
  t.tp_as_buffer = &page_buffer_procs;
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc =
      "The owner of one page's bytes: the base object (memoryview.obj) of the views that\n"
      "DataCap.page_at returns. It holds a reference to the page, so those views stay valid\n"
      "after the cap is changed or dropped. Exports PAGE_SIZE read-only bytes.";
  if (PyType_Ready(&t) < 0) throw py::error_already_set();
  m.attr("PageBuffer") = py::handle(reinterpret_cast<PyObject*>(&t));
}

}  // namespace datacap_py
