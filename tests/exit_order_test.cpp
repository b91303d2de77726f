// Regression: caps destroyed after their thread's thread-local caches (a static cap dropped at
// exit, a cap outliving the thread that built it) once pushed pages into a destroyed cache and
// corrupted the heap at exit. A failure here shows as a crash when the test process exits.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

// Destroyed by static teardown, after the main thread's thread-local destructors.
DataCap g_static_cap;

TEST(ExitOrder, StaticCapAndCapsOutlivingTheirThreadRelease) {
  std::vector<std::uint8_t> bytes(200 * PAGE_SIZE, 0x5a);
  g_static_cap = DataCap::from_bytes(bytes);
  g_static_cap.write(10, std::vector<std::uint8_t>(9000, 1));  // overlay pages too
  DataCap from_thread;
  std::thread maker([&] {
    from_thread = DataCap::from_bytes(bytes);  // pages from that thread's cache
    from_thread.write(5, std::vector<std::uint8_t>(3, 2));
    (void)from_thread.flush().hash_tree_root();
  });
  maker.join();  // the thread's caches are gone; its pages now live on here
  Hash32 root = from_thread.flush().hash_tree_root();
  from_thread = DataCap();  // released on this thread, into this thread's cache
  EXPECT_NE(root, Hash32{});
  EXPECT_EQ(g_static_cap.dirty_page_count(), 3u);  // bytes 10 .. 9010
}

}  // namespace
}  // namespace datacap
