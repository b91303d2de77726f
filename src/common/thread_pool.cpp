#include "common/thread_pool.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace datacap {
namespace detail {
namespace {

struct Batch {
  const std::function<void(std::size_t)>* fn;
  std::size_t n;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::mutex mu;
  std::condition_variable finished;
  std::exception_ptr error;  // the first item's exception, rethrown to the caller (under mu)

  // Runs items until none are left to claim. An item that throws is recorded, never lost or
  // allowed to escape a worker thread; the remaining items still run.
  void drain() {
    for (std::size_t i; (i = next.fetch_add(1, std::memory_order_relaxed)) < n;) {
      try {
        (*fn)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
      }
      if (done.fetch_add(1, std::memory_order_acq_rel) + 1 == n) {
        std::lock_guard<std::mutex> lock(mu);
        finished.notify_all();
      }
    }
  }
};

// More threads than this only cost memory (hashing is bound by cores and memory bandwidth).
constexpr unsigned MAX_POOL_THREADS = 1024;

class Pool {
 public:
  ~Pool() { resize(1); }

  void resize(unsigned threads) {
    if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
    threads = std::min(threads, MAX_POOL_THREADS);
    std::lock_guard<std::mutex> resize_lock(resize_mu_);
    stop_workers();
    // The count is what started: a thread that cannot start (the system's limit) leaves the
    // pool with those that did, and the error goes to the caller.
    threads_.store(1, std::memory_order_release);
    try {
      for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this] { work(); });
    } catch (...) {
      threads_.store(static_cast<unsigned>(workers_.size()) + 1, std::memory_order_release);
      throw;
    }
    threads_.store(threads, std::memory_order_release);
  }

  unsigned threads() const noexcept { return threads_.load(std::memory_order_acquire); }

  void run(std::size_t n, const std::function<void(std::size_t)>& fn) {
    if (n == 0) return;
    const unsigned t = threads();
    if (t <= 1 || n == 1) {
      for (std::size_t i = 0; i < n; ++i) fn(i);
      return;
    }
    auto batch = std::make_shared<Batch>();
    batch->fn = &fn;
    batch->n = n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (std::size_t k = 1; k < std::min<std::size_t>(t, n); ++k) queue_.push_back(batch);
    }
    cv_.notify_all();
    batch->drain();
    std::unique_lock<std::mutex> lock(batch->mu);
    batch->finished.wait(lock, [&] { return batch->done.load(std::memory_order_acquire) == n; });
    if (batch->error) std::rethrow_exception(batch->error);
  }

 private:
  void work() {
    for (;;) {
      std::shared_ptr<Batch> batch;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_ && queue_.empty()) return;
        batch = std::move(queue_.front());
        queue_.pop_front();
      }
      batch->drain();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = false;
  }

  std::mutex resize_mu_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Batch>> queue_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  std::atomic<unsigned> threads_{1};
};

Pool& pool() {
  static Pool* instance = [] {
    auto* p = new Pool();  // never destroyed: workers may outlive static destructors' order
    p->resize(0);
    return p;
  }();
  return *instance;
}

}  // namespace

void parallel_for(std::size_t n, const std::function<void(std::size_t)>& fn) { pool().run(n, fn); }
unsigned pool_threads() noexcept { return pool().threads(); }
void set_pool_threads(unsigned threads) { pool().resize(threads); }

}  // namespace detail
}  // namespace datacap
