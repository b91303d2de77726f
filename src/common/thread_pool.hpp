// Internal: the process-wide pool that runs large root computations on several cores.
//
// parallel_for(n, fn) runs fn(0) … fn(n-1), the caller taking part, and returns when all are
// done; if any item threw, the first exception is rethrown on the caller (after all items
// ran). Any number of threads may call it at once (their batches share the workers), and fn may
// itself call parallel_for: a caller never waits for work it could run itself, so nesting
// cannot deadlock. With one thread configured, everything runs inline on the caller.
#pragma once

#include <cstddef>
#include <functional>

namespace datacap::detail {

void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn);
// Threads a computation may use (workers + the caller).
unsigned pool_threads() noexcept;
// Resizes the pool: 0 = one thread per core. Not concurrently with parallel_for.
void set_pool_threads(unsigned threads);

}  // namespace datacap::detail
