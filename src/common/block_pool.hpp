// Internal: fixed-size blocks for the library's small, hot objects (page objects, tree nodes,
// node hash arrays), with a lock-free cache per thread.
//
// Why: a copy-on-write or a flush allocates and frees several such objects; through malloc each
// costs a call, a size header (so more than 3% metadata per page) and, as the heap top shrinks
// and grows, page faults. Here a block costs a pointer pop from the thread's own list; blocks
// move between threads in whole batches of 64 through one mutex-protected list, O(1) per batch.
// Memory is carved from 64-block chunks as blocks are first used, and kept for reuse (never
// returned to the system).
//
// Under AddressSanitizer or ThreadSanitizer the pool steps aside (plain operator new/delete) so
// the sanitizers see every allocation.
#pragma once

#include <cstddef>
#include <mutex>
#include <new>

namespace datacap::detail {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DATACAP_POOL_BYPASS 1
#endif

// Memory for a pool's next chunk of blocks: 64-byte aligned, from huge-page regions shared by
// every pool (block_pool.cpp), kept for the life of the process. Throws std::bad_alloc.
void* pool_chunk(std::size_t bytes);

template <std::size_t SIZE>
class BlockPool {
  static_assert(SIZE >= 3 * sizeof(void*) && SIZE % 8 == 0,
                "blocks hold a batch header and keep 8-byte alignment");

 public:
  static void* allocate() {
#ifdef DATACAP_POOL_BYPASS
    return ::operator new(SIZE);
#else
    Local& l = local();
    if (l.dead) return shared_take_one();
    if (l.head == nullptr) {
      // Reused blocks first (a kept batch: no lock), then fresh memory, touched only now that
      // it is used, then the shared list or a new chunk.
      if (l.full == nullptr && l.carve_left > 0) {
        --l.carve_left;
        void* p = l.carve;
        l.carve += SIZE;
        return p;
      }
      guard().armed = true;  // registers the guard's destructor for this thread
      l.refill();
      if (l.head == nullptr) return allocate();  // refill carved a new chunk
    }
    Block* b = l.head;
    l.head = b->next;
    // A freed block is usually cold (a page's object freed long ago): fetch the next one now,
    // so the next allocation does not wait for it (it did: most of PageNode::allocate's time
    // in a load was this miss).
    if (l.head != nullptr) __builtin_prefetch(l.head, 1);
    --l.count;
    return b;
#endif
  }

  static void release(void* p) noexcept {
#ifdef DATACAP_POOL_BYPASS
    ::operator delete(p);
#else
    Local& l = local();
    auto* b = static_cast<Block*>(p);
    if (l.dead) {
      shared_give(b, 1);
      return;
    }
    b->next = l.head;
    l.head = b;
    if (++l.count == BATCH) l.stash();
#endif
  }

 private:
  static constexpr std::size_t BATCH = 64;         // blocks per batch, and per carved chunk
  static constexpr std::size_t LOCAL_BATCHES = 4;  // full batches a thread keeps before sharing

  // A free block. Free blocks form chains through `next`; the first block of a chain that is
  // handed around whole (a batch) also records the chain's length and the next batch, so a
  // batch moves between a thread and the shared list in O(1), never walking its blocks (which
  // may be cold: walking them was one dependent cache miss per block).
  struct Block {
    Block* next;
    Block* next_batch;
    std::size_t count;
  };

  struct Shared {
    std::mutex mu;
    Block* batches = nullptr;
  };
  static Shared& shared() {
    static Shared* s = new Shared();  // never destroyed: threads may exit after static teardown
    return *s;
  }

  static void shared_give(Block* head, std::size_t count) noexcept {
    Shared& s = shared();
    std::lock_guard<std::mutex> lock(s.mu);
    head->count = count;
    head->next_batch = s.batches;
    s.batches = head;
  }
  // A whole batch from the shared list (its length in `count`), or null.
  static Block* shared_take_batch(std::size_t& count) noexcept {
    Shared& s = shared();
    std::lock_guard<std::mutex> lock(s.mu);
    Block* head = s.batches;
    if (head == nullptr) return nullptr;
    s.batches = head->next_batch;
    count = head->count;
    return head;
  }
  // For threads whose cache is gone (static destructors at exit): one block, the rest of its
  // batch going back.
  static void* shared_take_one() {
    std::size_t count = 0;
    Block* head = shared_take_batch(count);
    if (head == nullptr) return ::operator new (SIZE, std::align_val_t{64});  // a block of its own
    if (count > 1) shared_give(head->next, count - 1);
    return head;
  }

  // Trivially destructible, so it stays usable for the whole life of its thread; the guard
  // below returns its blocks when the thread ends and marks it dead, after which the thread
  // (e.g. static destructors at exit) uses the shared list directly.
  struct Local {
    Block* head;  // the current chain, count blocks (< BATCH)
    std::size_t count;
    Block* full;  // full batches kept here, linked through next_batch
    std::size_t full_count;
    unsigned char* carve;  // the unused rest of the newest chunk
    std::size_t carve_left;
    bool dead;

    // Makes `head` non-empty from a kept batch or the shared list, or else starts a new chunk
    // (only when the last one is used up: allocate calls it with carve_left > 0 only when a
    // kept batch is there to take).
    void refill() {
      if (full != nullptr) {
        head = full;
        full = full->next_batch;
        count = head->count;
        --full_count;
        return;
      }
      std::size_t n = 0;
      if (Block* batch = shared_take_batch(n)) {
        head = batch;
        count = n;
        return;
      }
      carve = static_cast<unsigned char*>(pool_chunk(SIZE * BATCH));
      carve_left = BATCH;
    }

    // The current chain just became a full batch: keep it, or share it when enough are kept.
    void stash() noexcept {
      Block* batch = head;
      head = nullptr;
      count = 0;
      if (full_count < LOCAL_BATCHES) {
        batch->count = BATCH;
        batch->next_batch = full;
        full = batch;
        ++full_count;
        return;
      }
      shared_give(batch, BATCH);
    }

    // Everything back to the shared list (the thread is ending). Carved-but-unused blocks are
    // chained only now.
    void give_all() noexcept {
      if (head != nullptr) shared_give(head, count);
      head = nullptr;
      count = 0;
      while (full != nullptr) {
        Block* batch = full;
        full = full->next_batch;
        shared_give(batch, batch->count);
      }
      full_count = 0;
      if (carve_left == 0) return;
      Block* chain = nullptr;
      for (std::size_t i = carve_left; i-- > 0;) {
        auto* b = reinterpret_cast<Block*>(carve + i * SIZE);
        b->next = chain;
        chain = b;
      }
      shared_give(chain, carve_left);
      carve_left = 0;
    }
  };

  struct Guard {
    bool armed = false;
    ~Guard() {
      Local& l = local();
      l.give_all();
      l.dead = true;
    }
  };

  static Local& local() {
    thread_local Local l{};
    return l;
  }
  static Guard& guard() {
    thread_local Guard g;
    return g;
  }
};

// Class-scope operator new/delete that route a type through its BlockPool.
#define DATACAP_POOLED(Type)                                                     \
  static void* operator new(std::size_t size) {                                  \
    (void)size;                                                                  \
    return ::datacap::detail::BlockPool<(sizeof(Type) + 7) / 8 * 8>::allocate(); \
  }                                                                              \
  static void operator delete(void* p) noexcept {                                \
    ::datacap::detail::BlockPool<(sizeof(Type) + 7) / 8 * 8>::release(p);        \
  }

}  // namespace datacap::detail
