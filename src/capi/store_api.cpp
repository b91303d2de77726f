// The C API's page stores (datacap.h): LMDB and memory stores behind datacap::PageStore.
#include <algorithm>

#include "capi/boundary.hpp"
#include "datacap/merkle.hpp"

using namespace datacap::capi;

extern "C" {

datacap_status datacap_store_open_lmdb(const char* path, const datacap_lmdb_options* options,
                                       datacap_store** out) {
  if (path == nullptr || out == nullptr) return misuse("datacap_store_open_lmdb: NULL argument");
  return guard([&] {
    datacap::LmdbOptions lmdb;
    if (options != nullptr) {
      if (options->map_size != 0) lmdb.map_size = options->map_size;
      lmdb.create = options->create;
      lmdb.read_only = options->read_only;
    }
    *out = new datacap_store{datacap::open_lmdb_store(path, lmdb)};
  });
}

datacap_status datacap_store_new_memory(datacap_store** out) {
  if (out == nullptr) return misuse("datacap_store_new_memory: NULL out");
  return guard([&] { *out = new datacap_store{datacap::make_memory_store()}; });
}

void datacap_store_free(datacap_store* store) { delete store; }

datacap_status datacap_store_save_cap(datacap_store* store, const datacap_cap* cap,
                                      datacap_hash* out_root) {
  if (store == nullptr || cap == nullptr) return misuse("datacap_store_save_cap: NULL argument");
  return guard([&] {
    const datacap::Hash32 root = store->store->save_cap(cap->cap);
    if (out_root != nullptr) *out_root = c_hash_of(root);
  });
}

datacap_status datacap_store_load_cap(const datacap_store* store, const datacap_hash* root,
                                      datacap_cap** out) {
  if (store == nullptr || root == nullptr || out == nullptr) {
    return misuse("datacap_store_load_cap: NULL argument");
  }
  return guard([&] { *out = new datacap_cap{store->store->load_cap(hash_of(*root))}; });
}

datacap_status datacap_store_has_cap(const datacap_store* store, const datacap_hash* root,
                                     bool* out) {
  if (store == nullptr || root == nullptr || out == nullptr) {
    return misuse("datacap_store_has_cap: NULL argument");
  }
  return guard([&] { *out = store->store->has_cap(hash_of(*root)); });
}

datacap_status datacap_store_has_page(const datacap_store* store, const datacap_hash* root,
                                      bool* out) {
  if (store == nullptr || root == nullptr || out == nullptr) {
    return misuse("datacap_store_has_page: NULL argument");
  }
  return guard([&] { *out = store->store->has(hash_of(*root)); });
}

datacap_status datacap_store_put_page(datacap_store* store, const uint8_t* bytes, size_t len,
                                      datacap_hash* out_root) {
  if (store == nullptr || !bytes_ok(bytes, len)) {
    return misuse("datacap_store_put_page: NULL argument");
  }
  return guard([&] {
    const datacap::Hash32 root = store->store->put(datacap::PageRef::copy_of(bytes_of(bytes, len)));
    if (out_root != nullptr) *out_root = c_hash_of(root);
  });
}

datacap_status datacap_store_get_page(const datacap_store* store, const datacap_hash* root,
                                      uint8_t* out, bool* found) {
  if (store == nullptr || root == nullptr || out == nullptr || found == nullptr) {
    return misuse("datacap_store_get_page: NULL argument");
  }
  return guard([&] {
    const datacap::Hash32 key = hash_of(*root);
    const datacap::PageRef page = store->store->get(key);
    if (!page) {
      *found = false;
      return;
    }
    // get() hands back the bytes as stored; a C caller gets only bytes that match their key.
    const datacap::Hash32 actual = page.root();
    if (actual != key) {
      throw datacap::Error(datacap::ErrorKind::integrity,
                           store->store->name() + ": page " + datacap::to_hex(key) +
                               ": the stored bytes have root " + datacap::to_hex(actual));
    }
    std::copy_n(page.data(), datacap::PAGE_SIZE, out);
    *found = true;
  });
}

datacap_status datacap_store_gc(datacap_store* store, const datacap_hash* keep, size_t count,
                                datacap_gc_report* report) {
  if (store == nullptr || !bytes_ok(keep, count)) return misuse("datacap_store_gc: NULL argument");
  return guard([&] {
    std::vector<datacap::Hash32> roots;
    roots.reserve(count);
    for (size_t i = 0; i < count; ++i) roots.push_back(hash_of(keep[i]));
    const datacap::GcReport done = store->store->gc(roots);
    if (report != nullptr) {
      *report = {done.caps_kept, done.caps_removed, done.pages_kept, done.pages_removed};
    }
  });
}

datacap_status datacap_store_list_caps(const datacap_store* store, datacap_saved_cap** out_caps,
                                       size_t* out_count) {
  if (store == nullptr || out_caps == nullptr || out_count == nullptr) {
    return misuse("datacap_store_list_caps: NULL argument");
  }
  return guard([&] {
    const std::vector<datacap::SavedCap> caps = store->store->list_caps();
    std::vector<datacap_saved_cap> listed;
    listed.reserve(caps.size());
    for (const datacap::SavedCap& cap : caps) {
      listed.push_back({c_hash_of(cap.root), cap.content_len, cap.page_entries});
    }
    *out_caps = malloc_copy(std::span<const datacap_saved_cap>(listed));
    *out_count = listed.size();
  });
}

datacap_status datacap_store_hydrate(const datacap_store* store, datacap_cap* cap,
                                     uint64_t* hydrated, uint64_t* still_missing) {
  if (store == nullptr || cap == nullptr) return misuse("datacap_store_hydrate: NULL argument");
  return guard([&] {
    const datacap::HydrateReport report = datacap::hydrate(cap->cap, *store->store);
    if (hydrated != nullptr) *hydrated = report.hydrated;
    if (still_missing != nullptr) *still_missing = report.still_missing;
  });
}

}  // extern "C"
