// Internal: fixed-size blocks for the library's small, hot objects (page objects, tree nodes,
// node hash arrays), with a lock-free cache per thread.
//
// Why: a copy-on-write or a flush allocates and frees several such objects; through malloc each
// costs a call, a size header (so more than 3% metadata per page) and, as the heap top shrinks
// and grows, page faults. Here a block costs a pointer pop from the thread's own list; blocks
// move between threads in batches through one mutex-protected list. Memory is carved from
// 64-block chunks that are kept for reuse (never returned to the system).
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

template <std::size_t SIZE>
class BlockPool {
  static_assert(SIZE >= sizeof(void*) && SIZE % 8 == 0, "blocks hold a pointer and keep 8-byte alignment");

 public:
  static void* allocate() {
#ifdef DATACAP_POOL_BYPASS
    return ::operator new(SIZE);
#else
    Local& l = local();
    if (l.dead) return shared_take_one();
    if (l.head == nullptr) {
      guard().armed = true;  // registers the guard's destructor for this thread
      l.refill();
    }
    Block* b = l.head;
    l.head = b->next;
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
      shared_give_one(b);
      return;
    }
    b->next = l.head;
    l.head = b;
    if (++l.count > LOCAL_MAX) l.spill(LOCAL_MAX / 2);
#endif
  }

 private:
  static constexpr std::size_t BATCH = 64;
  static constexpr std::size_t LOCAL_MAX = 256;

  struct Block {
    Block* next;
  };

  struct Shared {
    std::mutex mu;
    Block* head = nullptr;
    std::size_t count = 0;
  };
  static Shared& shared() {
    static Shared* s = new Shared();  // never destroyed: threads may exit after static teardown
    return *s;
  }

  static void* shared_take_one() {
    Local one{};
    one.refill();  // takes a batch; keep one, return the rest
    Block* b = one.head;
    one.head = b->next;
    --one.count;
    one.spill(one.count);
    return b;
  }
  static void shared_give_one(Block* b) noexcept {
    Shared& s = shared();
    std::lock_guard<std::mutex> lock(s.mu);
    b->next = s.head;
    s.head = b;
    ++s.count;
  }

  // Trivially destructible, so it stays usable for the whole life of its thread; the guard
  // below returns its blocks when the thread ends and marks it dead, after which the thread
  // (e.g. static destructors at exit) uses the shared list directly.
  struct Local {
    Block* head;
    std::size_t count;
    bool dead;

    void refill() {
      Shared& s = shared();
      {
        std::lock_guard<std::mutex> lock(s.mu);
        while (s.head != nullptr && count < BATCH) {
          Block* b = s.head;
          s.head = b->next;
          --s.count;
          b->next = head;
          head = b;
          ++count;
        }
      }
      if (head != nullptr) return;
      auto* chunk = static_cast<unsigned char*>(::operator new(SIZE * BATCH, std::align_val_t{64}));
      for (std::size_t i = BATCH; i-- > 0;) {
        auto* b = reinterpret_cast<Block*>(chunk + i * SIZE);
        b->next = head;
        head = b;
      }
      count = BATCH;
    }

    void spill(std::size_t n) noexcept {
      Shared& s = shared();
      std::lock_guard<std::mutex> lock(s.mu);
      for (; n > 0 && head != nullptr; --n) {
        Block* b = head;
        head = b->next;
        --count;
        b->next = s.head;
        s.head = b;
        ++s.count;
      }
    }

  };

  struct Guard {
    bool armed = false;
    ~Guard() {
      Local& l = local();
      l.spill(l.count);
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
#define DATACAP_POOLED(Type)                                                                      \
  static void* operator new(std::size_t size) {                                                   \
    (void)size;                                                                                   \
    return ::datacap::detail::BlockPool<(sizeof(Type) + 7) / 8 * 8>::allocate();                  \
  }                                                                                               \
  static void operator delete(void* p) noexcept {                                                 \
    ::datacap::detail::BlockPool<(sizeof(Type) + 7) / 8 * 8>::release(p);                         \
  }

}  // namespace datacap::detail
