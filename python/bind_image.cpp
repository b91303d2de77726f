// Image data descriptors (SPEC §6) and instance memory: ArenaPageRef, DataDesc (with its SSZ
// wire form), ImageBuilder and ImageMemory.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "datacap/codec.hpp"
#include "datacap/image.hpp"

namespace datacap_py {

void register_image(py::module_& m) {
  using datacap::ArenaPageRef;
  using datacap::DataDesc;

  py::class_<ArenaPageRef>(m, "ArenaPageRef",
                           "Logical page page_index is arena[arena_off : arena_off + len],\n"
                           "zero-padded to a page (1 <= len <= PAGE_SIZE).")
      .def(py::init([](std::uint32_t page_index, std::uint32_t arena_off, std::uint32_t len) {
             return ArenaPageRef{page_index, arena_off, len};
           }),
           py::arg("page_index"), py::arg("arena_off"), py::arg("len"),
           "ArenaPageRef(page_index, arena_off, len)")
      .def_readwrite("page_index", &ArenaPageRef::page_index)
      .def_readwrite("arena_off", &ArenaPageRef::arena_off)
      .def_readwrite("len", &ArenaPageRef::len)
      .def(py::self == py::self)  // NOLINT(misc-redundant-expression)
      .def("__repr__", [](const ArenaPageRef& r) {
        return "ArenaPageRef(page_index=" + std::to_string(r.page_index) +
               ", arena_off=" + std::to_string(r.arena_off) + ", len=" + std::to_string(r.len) +
               ")";
      });

  py::class_<DataDesc>(m, "DataDesc",
                       "One data cap of an image as windows of a byte arena: size (bytes, a\n"
                       "PAGE_SIZE multiple) and the non-zero pages, strictly ascending.")
      .def(py::init([](std::uint64_t size, std::vector<ArenaPageRef> pages) {
             return DataDesc{size, std::move(pages)};
           }),
           py::arg("size"), py::arg("pages") = std::vector<ArenaPageRef>{},
           "DataDesc(size, pages=[])\n\nA descriptor from its fields (validate() checks them).")
      .def_readwrite("size", &DataDesc::size)
      .def_readwrite("pages", &DataDesc::pages)
      .def("validate", &DataDesc::validate, py::arg("arena_len"),
           "validate(arena_len) -> None\n\n"
           "Checks SPEC §6's rules against an arena of arena_len bytes and raises\n"
           "ValidationError (rule, value, index) for the first broken one, in the SPEC's order.\n"
           "O(pages).")
      .def(
          "to_data_cap",
          [](const DataDesc& d, const ReadBuffer& arena) {
            const auto bytes = arena.bytes();
            datacap::DataCap cap = [&] {
              py::gil_scoped_release release;
              return d.to_data_cap(bytes);
            }();
            return std::make_unique<Cap>(std::move(cap));
          },
          py::arg("arena"),
          "to_data_cap(arena) -> DataCap\n\n"
          "validate(len(arena)), then from_sparse_pages(size, the windows). Raises\n"
          "ValidationError. O(window bytes + pages·L), without the GIL.")
      .def(
          "encode",
          [](const DataDesc& d) {
            const auto bytes = datacap::encode_data_desc(d);
            return py::bytes(reinterpret_cast<const char*>(bytes.data()), bytes.size());
          },
          "encode() -> bytes\n\nThe SSZ wire form (SPEC §5). O(pages).")
      .def_static(
          "decode", [](const ReadBuffer& data) { return datacap::decode_data_desc(data.bytes()); },
          py::arg("data"),
          "decode(data) -> DataDesc\n\n"
          "Parses the SSZ wire form (the form only: validate() checks the rules). Raises\n"
          "DecodeError (field, offset) for malformed bytes. O(pages).")
      .def(py::self == py::self)  // NOLINT(misc-redundant-expression)
      .def("__repr__", [](const DataDesc& d) {
        return "<datacap.DataDesc size=" + std::to_string(d.size) +
               " pages=" + std::to_string(d.pages.size()) + ">";
      });

  py::class_<datacap::ImageBuilder>(
      m, "ImageBuilder",
      "Builds one arena and the descriptors of several caps or byte regions: zero pages\n"
      "elided, trailing zeros trimmed, identical pages stored once across everything added.")
      .def(py::init<>(), "ImageBuilder()\n\nAn empty arena.")
      .def(
          "add_cap",
          [](datacap::ImageBuilder& b, const Cap& cap) {
            const datacap::DataCap snap = cap.snapshot();
            py::gil_scoped_release release;
            return b.add_cap(snap);
          },
          py::arg("cap"),
          "add_cap(cap) -> DataDesc\n\n"
          "The descriptor of the cap's effective pages. Raises MissingPage, OutOfRange (arena\n"
          "over 4 GiB).")
      .def(
          "add_bytes",
          [](datacap::ImageBuilder& b, const ReadBuffer& data, std::uint64_t size) {
            const auto bytes = data.bytes();
            py::gil_scoped_release release;
            return b.add_bytes(bytes, size);
          },
          py::arg("data"), py::arg("size") = 0,
          "add_bytes(data, size=0) -> DataDesc\n\n"
          "The descriptor of DataCap.from_bytes(data, size). Raises OutOfRange.")
      .def_property_readonly(
          "arena",
          [](const datacap::ImageBuilder& b) {
            return py::bytes(reinterpret_cast<const char*>(b.arena().data()), b.arena().size());
          },
          "The arena so far (a copy, as bytes).")
      .def_property_readonly("unique_pages", &datacap::ImageBuilder::unique_pages,
                             "Pages stored in the arena (after deduplication).");

  py::class_<datacap::ImageMemory>(
      m, "ImageMemory",
      "An image's data caps, built once, and the instances composed from them: each instance\n"
      "shares the image's pages and copies only what it writes.")
      .def(py::init([](const ReadBuffer& arena, const std::vector<DataDesc>& data,
                       std::uint64_t extent,
                       const std::vector<std::pair<std::uint64_t, std::uint32_t>>& mappings) {
             datacap::ImageLayout layout{extent, {}};
             for (const auto& [offset, index] : mappings)
               layout.mappings.push_back({offset, index});
             const auto bytes = arena.bytes();
             py::gil_scoped_release release;
             return std::make_unique<datacap::ImageMemory>(bytes, data, std::move(layout));
           }),
           py::arg("arena"), py::arg("data"), py::arg("extent"), py::arg("mappings"),
           "ImageMemory(arena, data, extent, mappings)\n\n"
           "Builds each DataDesc's cap from `arena` and checks the layout: an instance is\n"
           "`extent` bytes with data[data_index] placed at each (offset, data_index) of\n"
           "`mappings`. Raises ValidationError, InvalidArgument, OutOfRange.")
      .def(
          "instantiate",
          [](const datacap::ImageMemory& im) { return std::make_unique<Cap>(im.instantiate()); },
          "instantiate() -> DataCap\n\n"
          "A new clean instance sharing the image's pages (and aligned subtrees with their\n"
          "cached hashes). O(mappings·L) for 64-page-aligned mappings.")
      .def_property_readonly(
          "data_caps",
          [](const datacap::ImageMemory& im) {
            py::list out;
            for (const auto& c : im.data_caps()) out.append(py::cast(std::make_unique<Cap>(c)));
            return out;
          },
          "The data caps (O(1) copies).")
      .def_property_readonly("extent",
                             [](const datacap::ImageMemory& im) { return im.layout().extent; });
}

}  // namespace datacap_py
