// Internal: the reference-counted page object behind PageRef and PageSlot.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/block_pool.hpp"
#include "datacap/hash.hpp"
#include "datacap/page.hpp"
#include "page/mapped_file.hpp"

namespace datacap::detail {

// A lazily computed hash, cached race-free: the first caller to claim the slot publishes it;
// callers that race with it compute their own copy and return it without writing.
class HashCache {
 public:
  [[nodiscard]] bool get(Hash32& out) const noexcept {
    if (state_.load(std::memory_order_acquire) != READY) return false;
    out = hash_;
    return true;
  }
  void publish(const Hash32& hash) noexcept {
    std::uint8_t expected = EMPTY;
    if (state_.compare_exchange_strong(expected, WRITING, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      hash_ = hash;
      state_.store(READY, std::memory_order_release);
    }
  }
  // The published hash. REQUIRES: get() would succeed (the hash is READY).
  [[nodiscard]] const Hash32& value() const noexcept { return hash_; }
  // REQUIRES: no other thread can reach the owner (it is uniquely referenced).
  void reset() noexcept { state_.store(EMPTY, std::memory_order_relaxed); }
  // REQUIRES: as reset().
  void set(const Hash32& hash) noexcept {
    hash_ = hash;
    state_.store(READY, std::memory_order_release);
  }

 private:
  static constexpr std::uint8_t EMPTY = 0, WRITING = 1, READY = 2;
  std::atomic<std::uint8_t> state_{EMPTY};
  Hash32 hash_{};
};

// One page (data != nullptr: Loaded) or one Missing hash holder (data == nullptr).
// Counts start at one (the creator's reference); increments are relaxed, decrements
// acquire-release, as for any intrusive count.
//
// 64 bytes, from a BlockPool: the SHA-256 root is cached inline; the BLAKE2b root, rarely
// needed, is cached out of line. A Missing holder's hash is its root under any digest. A page
// whose bytes live in a file mapping has an owner; its bytes are read-only (never patched in
// place) and go back with the mapping, not to the page pool.
struct PageNode {
  DATACAP_POOLED(PageNode)

  std::atomic<std::uint32_t> refs{1};
  HashCache sha256_root;
  std::uint8_t* data = nullptr;  // PAGE_SIZE bytes, PAGE_SIZE-aligned; nullptr for Missing
  std::atomic<Hash32*> blake2b_root{nullptr};
  MappedFile* owner = nullptr;

  // A page whose bytes are `bytes` inside `file` (PAGE_SIZE-aligned, read-only). With
  // retain_file it takes a reference to the file; otherwise the caller adds one per page itself
  // (in one step for many pages).
  static PageNode* borrowed(MappedFile* file, const std::uint8_t* bytes, bool retain_file = true);
  // True when the bytes may be changed in place by the one holder of this page.
  [[nodiscard]] bool writable() const noexcept { return data != nullptr && owner == nullptr; }

  // A new page with uninitialized bytes. Throws std::bad_alloc.
  static PageNode* allocate();
  // A new page holding `bytes` (≤ PAGE_SIZE) zero-padded.
  static PageNode* copy_of(const std::uint8_t* bytes, std::size_t len);
  static PageNode* missing(const Hash32& hash);

  void retain() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }
  [[nodiscard]] bool unique() const noexcept { return refs.load(std::memory_order_acquire) == 1; }
  [[nodiscard]] bool is_missing() const noexcept { return data == nullptr; }
  // REQUIRES: is_missing().
  [[nodiscard]] const Hash32& missing_hash() const noexcept { return sha256_root.value(); }

  // Page root (Loaded) or the hash (Missing), computed on first need and cached.
  [[nodiscard]] Hash32 root(Digest digest);
  // The cached root, if any (a Missing holder always has one).
  [[nodiscard]] bool cached_root(Digest digest, Hash32& out) const noexcept;
  // Caches a root computed elsewhere (batched page hashing); a racing value is dropped.
  void publish_root(Digest digest, const Hash32& root);
  // For a page borrowed from a file that checks its pages on first use (see MappedFile::check):
  // throws when `root`, just computed from the bytes, is not the one the file expects. A no-op
  // for every other page.
  void check_borrowed_root(Digest digest, const Hash32& root) const {
    if (owner != nullptr && owner->check != nullptr) owner->check->check(data, digest, root);
  }
  // REQUIRES: unique(); called before the bytes change.
  void invalidate_roots() noexcept;

  // Adopting / borrowing conversions for the public handles.
  static PageSlot adopt_slot(PageNode* node) noexcept { return PageSlot(node); }
  // A slot holding a new reference to `node` (null: Empty), which stays the caller's too.
  static PageSlot share_slot(PageNode* node) noexcept {
    if (node != nullptr) node->retain();
    return PageSlot(node);
  }
  static PageRef adopt_ref(PageNode* node) noexcept { return PageRef(node); }
  static PageNode* node_of(const PageSlot& slot) noexcept { return slot.node_; }
  static PageNode* node_of(const PageRef& ref) noexcept { return ref.node_; }
  static PageNode* release_slot(PageSlot& slot) noexcept {
    PageNode* n = slot.node_;
    slot.node_ = nullptr;
    return n;
  }

 private:
  void destroy() noexcept;
};

// Leaf of a slot in the pages tree: Empty (null) → 0^32.
inline Hash32 slot_root(PageNode* node, Digest digest) {
  return node == nullptr ? Hash32{} : node->root(digest);
}

}  // namespace datacap::detail
