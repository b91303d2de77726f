// detail::StoreAccess: how a store built on other stores (the tiered store) reaches their
// protected do_* hooks. The hooks keep their contract (store.hpp, "Writing a store"): the caller
// gives what the base class would (roots computed, spans sized, locks held).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "datacap/store.hpp"

namespace datacap::detail {

struct StoreAccess {
  using PageRecord = PageStore::PageRecord;

  static void put_pages(PageStore& store, std::span<const PageRecord> pages) {
    store.do_put_pages(pages);
  }
  static void get_pages(const PageStore& store, std::span<const Hash32> roots,
                        std::span<PageRef> out) {
    store.do_get_pages(roots, out);
  }
  static bool has_page(const PageStore& store, const Hash32& root) {
    return store.do_has_page(root);
  }
  static void has_pages(const PageStore& store, std::span<const Hash32> roots,
                        std::vector<bool>& out) {
    store.do_has_pages(roots, out);
  }
  static std::uint64_t page_count(const PageStore& store) { return store.do_page_count(); }
  static void put_cap(PageStore& store, const Hash32& root, std::span<const std::uint8_t> record) {
    store.do_put_cap(root, record);
  }
  static bool has_cap(const PageStore& store, const Hash32& root) { return store.do_has_cap(root); }
  static bool get_cap(const PageStore& store, const Hash32& root,
                      std::vector<std::uint8_t>& record) {
    return store.do_get_cap(root, record);
  }
  static void for_each_cap(
      const PageStore& store,
      const std::function<void(const Hash32&, std::span<const std::uint8_t>)>& fn) {
    store.do_for_each_cap(fn);
  }
  static GcReport gc(PageStore& store, std::span<const Hash32> keep) { return store.do_gc(keep); }
  static std::unique_ptr<PageStore::Lock> lock(const PageStore& store, bool exclusive) {
    return store.do_lock(exclusive);
  }
};

}  // namespace datacap::detail
