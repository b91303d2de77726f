// The C API's caps and diff (datacap.h): thin wrappers over datacap::DataCap.
#include <vector>

#include "capi/boundary.hpp"
#include "datacap/proof.hpp"

using namespace datacap::capi;
using datacap::DataCap;

namespace {

// Hands a new cap to the caller: *out is set only once the handle exists.
datacap_status new_cap(datacap_cap** out, const char* who, auto&& make) {
  if (out == nullptr) return misuse(who);
  return guard([&] { *out = new datacap_cap{make()}; });
}

datacap_status malloc_indices(const std::vector<std::uint64_t>& indices, uint64_t** out_indices,
                              size_t* out_count) {
  *out_indices = malloc_copy(std::span<const std::uint64_t>(indices));
  *out_count = indices.size();
  return DATACAP_OK;
}

}  // namespace

extern "C" {

datacap_status datacap_cap_new_zeroed(uint64_t content_len, datacap_cap** out) {
  return new_cap(out, "datacap_cap_new_zeroed: NULL out",
                 [&] { return DataCap::zeroed(content_len); });
}

datacap_status datacap_cap_new_from_bytes(const uint8_t* bytes, size_t len, uint64_t target,
                                          datacap_cap** out) {
  if (!bytes_ok(bytes, len)) return misuse("datacap_cap_new_from_bytes: NULL bytes");
  return new_cap(out, "datacap_cap_new_from_bytes: NULL out",
                 [&] { return DataCap::from_bytes_sized(bytes_of(bytes, len), target); });
}

datacap_status datacap_cap_new_from_sparse_pages(uint64_t content_len,
                                                 const datacap_sparse_page* pages, size_t count,
                                                 datacap_cap** out) {
  if (!bytes_ok(pages, count)) return misuse("datacap_cap_new_from_sparse_pages: NULL pages");
  for (size_t i = 0; i < count; ++i) {
    if (!bytes_ok(pages[i].bytes, pages[i].len)) {
      return misuse("datacap_cap_new_from_sparse_pages: a page with NULL bytes");
    }
  }
  return new_cap(out, "datacap_cap_new_from_sparse_pages: NULL out", [&] {
    std::vector<datacap::SparsePage> sparse;
    sparse.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      sparse.push_back({pages[i].page_index, bytes_of(pages[i].bytes, pages[i].len)});
    }
    return DataCap::from_sparse_pages(content_len, sparse);
  });
}

datacap_status datacap_cap_copy(const datacap_cap* cap, datacap_cap** out) {
  if (cap == nullptr) return misuse("datacap_cap_copy: NULL cap");
  return new_cap(out, "datacap_cap_copy: NULL out", [&] { return cap->cap; });
}

void datacap_cap_free(datacap_cap* cap) { delete cap; }

uint64_t datacap_cap_content_len(const datacap_cap* cap) {
  return cap == nullptr ? 0 : cap->cap.content_len();
}
uint64_t datacap_cap_page_count(const datacap_cap* cap) {
  return cap == nullptr ? 0 : cap->cap.page_count();
}
uint64_t datacap_cap_dirty_page_count(const datacap_cap* cap) {
  return cap == nullptr ? 0 : cap->cap.dirty_page_count();
}
bool datacap_cap_is_clean(const datacap_cap* cap) { return cap != nullptr && cap->cap.is_clean(); }
bool datacap_cap_is_dirty(const datacap_cap* cap, uint64_t page_index) {
  return cap != nullptr && cap->cap.is_dirty(page_index);
}

datacap_status datacap_cap_page_at(const datacap_cap* cap, uint64_t off, datacap_page* out) {
  if (cap == nullptr || out == nullptr) return misuse("datacap_cap_page_at: NULL argument");
  return guard([&] {
    const datacap::PageResolution page = cap->cap.page_at(off);
    out->kind = static_cast<datacap_page_kind>(page.kind);
    out->page_index = page.page_index;
    out->data = page.data;
    out->missing_hash = c_hash_of(page.missing_hash);
  });
}
static_assert(static_cast<int>(datacap::PageResolution::Kind::zero) == DATACAP_PAGE_ZERO);
static_assert(static_cast<int>(datacap::PageResolution::Kind::bytes) == DATACAP_PAGE_BYTES);
static_assert(static_cast<int>(datacap::PageResolution::Kind::missing) == DATACAP_PAGE_MISSING);

datacap_status datacap_cap_copy_into(const datacap_cap* cap, uint64_t start, uint8_t* out,
                                     size_t len) {
  if (cap == nullptr || !bytes_ok(out, len)) return misuse("datacap_cap_copy_into: NULL argument");
  return guard([&] {
    cap->cap.copy_into(start, out == nullptr ? std::span<std::uint8_t>() : std::span(out, len));
  });
}

datacap_status datacap_cap_write(datacap_cap* cap, uint64_t off, const uint8_t* bytes, size_t len) {
  if (cap == nullptr || !bytes_ok(bytes, len)) return misuse("datacap_cap_write: NULL argument");
  return guard([&] { cap->cap.write(off, bytes_of(bytes, len)); });
}

datacap_status datacap_cap_write_page(datacap_cap* cap, uint64_t off, const uint8_t* bytes,
                                      size_t len) {
  if (cap == nullptr || !bytes_ok(bytes, len)) {
    return misuse("datacap_cap_write_page: NULL argument");
  }
  return guard([&] { cap->cap.write_page(off, bytes_of(bytes, len)); });
}

datacap_status datacap_cap_put_page(datacap_cap* cap, uint64_t off, const uint8_t* bytes,
                                    size_t len) {
  if (cap == nullptr || !bytes_ok(bytes, len)) return misuse("datacap_cap_put_page: NULL argument");
  return guard([&] { cap->cap.put_page(off, bytes_of(bytes, len)); });
}

datacap_status datacap_cap_place_shared(datacap_cap* cap, uint64_t dst_off,
                                        const datacap_cap* src) {
  if (cap == nullptr || src == nullptr) return misuse("datacap_cap_place_shared: NULL cap");
  return guard([&] {
    if (cap == src) {  // place_shared reads src while it changes cap: give it a copy (O(1))
      const DataCap source = src->cap;
      cap->cap.place_shared(dst_off, source);
    } else {
      cap->cap.place_shared(dst_off, src->cap);
    }
  });
}

datacap_status datacap_cap_flush(datacap_cap* cap) {
  if (cap == nullptr) return misuse("datacap_cap_flush: NULL cap");
  // flush() const& leaves the cap intact when it throws; the result replaces it only then.
  return guard([&] { cap->cap = cap->cap.flush(); });
}

datacap_status datacap_cap_root(const datacap_cap* cap, datacap_digest digest, datacap_hash* out) {
  if (cap == nullptr || out == nullptr) return misuse("datacap_cap_root: NULL argument");
  return guard([&] { *out = c_hash_of(cap->cap.hash_tree_root(digest_of(digest))); });
}

datacap_status datacap_cap_elide_pages(datacap_cap* cap, const uint64_t* page_indices,
                                       size_t count) {
  if (cap == nullptr || !bytes_ok(page_indices, count)) {
    return misuse("datacap_cap_elide_pages: NULL argument");
  }
  return guard([&] {
    cap->cap.elide_pages(page_indices == nullptr ? std::span<const std::uint64_t>()
                                                 : std::span(page_indices, count));
  });
}

datacap_status datacap_cap_missing_pages(const datacap_cap* cap, uint64_t** out_indices,
                                         size_t* out_count) {
  if (cap == nullptr || out_indices == nullptr || out_count == nullptr) {
    return misuse("datacap_cap_missing_pages: NULL argument");
  }
  return guard([&] { malloc_indices(cap->cap.missing_pages(), out_indices, out_count); });
}

datacap_status datacap_cap_resolve_missing(datacap_cap* cap, const datacap_resolved_page* pages,
                                           size_t count) {
  if (cap == nullptr || !bytes_ok(pages, count)) {
    return misuse("datacap_cap_resolve_missing: NULL argument");
  }
  for (size_t i = 0; i < count; ++i) {
    if (!bytes_ok(pages[i].bytes, pages[i].len)) {
      return misuse("datacap_cap_resolve_missing: a page with NULL bytes");
    }
  }
  return guard([&] {
    std::vector<DataCap::ResolvedPage> resolved;
    resolved.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      resolved.push_back(
          {pages[i].page_index, datacap::PageRef::copy_of(bytes_of(pages[i].bytes, pages[i].len))});
    }
    cap->cap.resolve_missing(resolved);
  });
}

datacap_status datacap_diff_pages(const datacap_cap* a, const datacap_cap* b, datacap_digest digest,
                                  uint64_t** out_indices, size_t* out_count) {
  if (a == nullptr || b == nullptr || out_indices == nullptr || out_count == nullptr) {
    return misuse("datacap_diff_pages: NULL argument");
  }
  return guard([&] {
    malloc_indices(datacap::diff_pages(a->cap, b->cap, digest_of(digest)), out_indices, out_count);
  });
}

}  // extern "C"
