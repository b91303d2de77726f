// Merkle proofs (one page, many pages, a byte range) and the diff of two caps. Proofs are plain
// mutable values (so they can be built from received fields, or tampered with in tests); the
// verifiers trust nothing in them and never raise for a bad proof.
#include <cstdint>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "datacap/error.hpp"
#include "datacap/proof.hpp"

namespace datacap_py {

namespace {

std::string hex_short(const datacap::Hash32& h) { return datacap::to_hex(h).substr(0, 16); }

}  // namespace

void register_proof(py::module_& m) {
  using datacap::MultiProof;
  using datacap::PageProof;
  using datacap::RangeProof;

  py::class_<PageProof>(
      m, "PageProof",
      "A merkle proof of one page's slot root against a cap root.\n\n"
      "leaf is the page's slot root (Empty: 32 zero bytes; Loaded: its page root;\n"
      "Missing: its hash); branch holds the siblings from the leaf's level up:\n"
      "d = pages_depth(page_count) hashes inside the pages tree, then the size\n"
      "root (len(branch) == d + 1). The page's gindex is 3·2^d + page_index.")
      .def(py::init([](std::uint64_t content_len, std::uint64_t page_index,
                       const datacap::Hash32& leaf, std::vector<datacap::Hash32> branch) {
             return PageProof{content_len, page_index, leaf, std::move(branch)};
           }),
           py::arg("content_len"), py::arg("page_index"), py::arg("leaf"), py::arg("branch"),
           "PageProof(content_len, page_index, leaf, branch)\n\nA proof from its fields (e.g. "
           "received from elsewhere): hashes are 32 bytes or 64 hex characters.")
      .def_readwrite("content_len", &PageProof::content_len, "The cap's size in bytes.")
      .def_readwrite("page_index", &PageProof::page_index)
      .def_readwrite("leaf", &PageProof::leaf, "The page's slot root (32 bytes).")
      .def_readwrite("branch", &PageProof::branch, "Sibling hashes, leaf level first.")
      .def("__repr__", [](const PageProof& p) {
        return "<datacap.PageProof content_len=" + std::to_string(p.content_len) +
               " page_index=" + std::to_string(p.page_index) + " leaf=" + hex_short(p.leaf) +
               "... branch=" + std::to_string(p.branch.size()) + " hashes>";
      });

  py::class_<MultiProof>(m, "MultiProof",
                         "One proof of several pages with shared siblings.\n\n"
                         "leaves[k] is the slot root of page_indices[k] (ascending, distinct);\n"
                         "helpers are the hashes at multiproof_helper_gindices(content_len,\n"
                         "page_indices), in that order (deepest first, the size root last).")
      .def(py::init([](std::uint64_t content_len, std::vector<std::uint64_t> page_indices,
                       std::vector<datacap::Hash32> leaves, std::vector<datacap::Hash32> helpers) {
             return MultiProof{content_len, std::move(page_indices), std::move(leaves),
                               std::move(helpers)};
           }),
           py::arg("content_len"), py::arg("page_indices"), py::arg("leaves"), py::arg("helpers"),
           "MultiProof(content_len, page_indices, leaves, helpers)\n\nA multiproof from its "
           "fields.")
      .def_readwrite("content_len", &MultiProof::content_len)
      .def_readwrite("page_indices", &MultiProof::page_indices)
      .def_readwrite("leaves", &MultiProof::leaves)
      .def_readwrite("helpers", &MultiProof::helpers)
      .def("__repr__", [](const MultiProof& p) {
        return "<datacap.MultiProof content_len=" + std::to_string(p.content_len) +
               " pages=" + std::to_string(p.page_indices.size()) +
               " helpers=" + std::to_string(p.helpers.size()) + ">";
      });

  py::class_<RangeProof>(m, "RangeProof",
                         "A proof of the bytes [offset, offset + length): the covering pages'\n"
                         "full bytes (page_bytes, PAGE_SIZE per page of pages.page_indices) and\n"
                         "a multiproof of those pages.")
      .def(py::init([](std::uint64_t offset, std::uint64_t length, MultiProof pages,
                       const ReadBuffer& page_bytes) {
             const auto b = page_bytes.bytes();
             return RangeProof{offset, length, std::move(pages),
                               std::vector<std::uint8_t>(b.begin(), b.end())};
           }),
           py::arg("offset"), py::arg("length"), py::arg("pages"), py::arg("page_bytes"),
           "RangeProof(offset, length, pages, page_bytes)\n\nA range proof from its fields.")
      .def_readwrite("offset", &RangeProof::offset)
      .def_readwrite("length", &RangeProof::length)
      .def_readwrite("pages", &RangeProof::pages, "The multiproof of the covering pages.")
      .def_property(
          "page_bytes",
          [](const RangeProof& p) {
            return py::bytes(reinterpret_cast<const char*>(p.page_bytes.data()),
                             p.page_bytes.size());
          },
          [](RangeProof& p, const ReadBuffer& b) {
            const auto bytes = b.bytes();
            p.page_bytes.assign(bytes.begin(), bytes.end());
          },
          "The covering pages' bytes, PAGE_SIZE per page (a copy as bytes).")
      .def(
          "bytes",
          [](const RangeProof& p) {
            // Checked here (the C++ accessor REQUIRES a well-formed proof).
            const std::uint64_t start = p.offset % datacap::PAGE_SIZE;
            if (p.length > p.page_bytes.size() || start > p.page_bytes.size() - p.length) {
              throw datacap::InvalidArgument("RangeProof.bytes: length " +
                                             std::to_string(p.length) + " at offset " +
                                             std::to_string(p.offset) + " is not within the " +
                                             std::to_string(p.page_bytes.size()) + " page bytes");
            }
            return py::bytes(reinterpret_cast<const char*>(p.page_bytes.data() + start), p.length);
          },
          "bytes() -> bytes\n\nThe proven bytes [offset, offset + length). Meaningful once\n"
          "verify_range_proof has accepted the proof.")
      .def("__repr__", [](const RangeProof& p) {
        return "<datacap.RangeProof offset=" + std::to_string(p.offset) +
               " length=" + std::to_string(p.length) +
               " pages=" + std::to_string(p.pages.page_indices.size()) + ">";
      });

  m.def("page_gindex", &datacap::page_gindex, py::arg("page_count"), py::arg("page_index"),
        "page_gindex(page_count, page_index) -> int\n\n"
        "The generalized index of a page: 3·2^d + page_index, d = pages_depth(page_count).\n"
        "Raises OutOfRange when page_index >= page_count.");
  m.def(
      "prove_page",
      [](const Cap& cap, std::uint64_t page_index, const std::string& digest) {
        const auto d = digest_of(digest);
        const datacap::DataCap snap = cap.snapshot();
        py::gil_scoped_release release;
        return datacap::prove_page(snap, page_index, d);
      },
      py::arg("cap"), py::arg("page_index"), py::arg("digest") = "sha256",
      "prove_page(cap, page_index, digest='sha256') -> PageProof\n\n"
      "Proof of one page of a clean cap. Computes the root if not cached, then O(d·L); without\n"
      "the GIL. Raises DirtyCap, OutOfRange.");
  m.def(
      "verify_page_proof",
      [](const PageProof& proof, const datacap::Hash32& root, const std::string& digest) {
        // O(d) hashes: kept under the GIL, which also keeps other threads off the proof object.
        return datacap::verify_page_proof(proof, root, digest_of(digest));
      },
      py::arg("proof"), py::arg("root"), py::arg("digest") = "sha256",
      "verify_page_proof(proof, root, digest='sha256') -> bool\n\n"
      "True iff the proof folds to `root` (the depth, gindex and size root are recomputed from\n"
      "content_len and page_index; nothing else in the proof is trusted). Never raises for a\n"
      "bad proof. O(d) pair hashes.");
  m.def(
      "multiproof_helper_gindices",
      [](std::uint64_t content_len, const std::vector<std::uint64_t>& page_indices) {
        return datacap::multiproof_helper_gindices(content_len, page_indices);
      },
      py::arg("content_len"), py::arg("page_indices"),
      "multiproof_helper_gindices(content_len, page_indices) -> list[int]\n\n"
      "The gindices whose hashes a multiproof of these pages carries, deepest first (the size\n"
      "root, gindex 2, last). Raises OutOfRange, InvalidArgument (empty, unsorted or repeated\n"
      "indices). O(k·d).");
  m.def(
      "prove_pages",
      [](const Cap& cap, const std::vector<std::uint64_t>& page_indices,
         const std::string& digest) {
        const auto d = digest_of(digest);
        const datacap::DataCap snap = cap.snapshot();
        py::gil_scoped_release release;
        return datacap::prove_pages(snap, page_indices, d);
      },
      py::arg("cap"), py::arg("page_indices"), py::arg("digest") = "sha256",
      "prove_pages(cap, page_indices, digest='sha256') -> MultiProof\n\n"
      "One proof of the pages at page_indices (ascending, distinct) of a clean cap, sharing\n"
      "siblings. O(k·d·L) once the root is known; without the GIL. Raises DirtyCap, OutOfRange,\n"
      "InvalidArgument.");
  m.def(
      "verify_multiproof",
      [](const MultiProof& proof, const datacap::Hash32& root, const std::string& digest) {
        const auto d = digest_of(digest);
        const MultiProof copy = proof;  // the Python object may change while the GIL is away
        py::gil_scoped_release release;
        return datacap::verify_multiproof(copy, root, d);
      },
      py::arg("proof"), py::arg("root"), py::arg("digest") = "sha256",
      "verify_multiproof(proof, root, digest='sha256') -> bool\n\n"
      "True iff the multiproof folds to `root`. Never raises for a bad proof. O(k·d) hashes.");
  m.def(
      "prove_range",
      [](const Cap& cap, std::uint64_t offset, std::uint64_t length, const std::string& digest) {
        const auto d = digest_of(digest);
        const datacap::DataCap snap = cap.snapshot();
        py::gil_scoped_release release;
        return datacap::prove_range(snap, offset, length, d);
      },
      py::arg("cap"), py::arg("offset"), py::arg("length"), py::arg("digest") = "sha256",
      "prove_range(cap, offset, length, digest='sha256') -> RangeProof\n\n"
      "Proof of bytes [offset, offset + length) of a clean cap: the covering pages' bytes and\n"
      "their multiproof. O(length + pages·d·L); without the GIL. Raises DirtyCap,\n"
      "InvalidArgument (length 0), OutOfRange, MissingPage (a covering page is Missing).");
  m.def(
      "verify_range_proof",
      [](const RangeProof& proof, const datacap::Hash32& root, const std::string& digest) {
        const auto d = digest_of(digest);
        const RangeProof copy = proof;  // the Python object may change while the GIL is away
        py::gil_scoped_release release;
        return datacap::verify_range_proof(copy, root, d);
      },
      py::arg("proof"), py::arg("root"), py::arg("digest") = "sha256",
      "verify_range_proof(proof, root, digest='sha256') -> bool\n\n"
      "True iff the pages are exactly those covering the range, each page's bytes match its\n"
      "leaf and the multiproof folds to `root`. Never raises for a bad proof. O(pages·\n"
      "PAGE_SIZE) hashing.");
  m.def(
      "diff_pages",
      [](const Cap& a, const Cap& b, const std::string& digest) {
        const auto d = digest_of(digest);
        const datacap::DataCap sa = a.snapshot();
        const datacap::DataCap sb = b.snapshot();
        py::gil_scoped_release release;
        return datacap::diff_pages(sa, sb, d);
      },
      py::arg("a"), py::arg("b"), py::arg("digest") = "sha256",
      "diff_pages(a, b, digest='sha256') -> list[int]\n\n"
      "The page indices (ascending) at which two clean caps' slot roots differ, over the pages\n"
      "of the larger (a page past the smaller's end counts as Empty; compare content_len for\n"
      "the size). Computes either root if not cached, then descends only where cached hashes\n"
      "differ: O(d·log n) for d differing pages; without the GIL. Raises DirtyCap.");
}

}  // namespace datacap_py
