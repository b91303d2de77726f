// The page pool's memory policy: freed pages stay resident for reuse while they are reused, and
// go back to the kernel once they sat unused through a whole decay period.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "datacap/types.hpp"
#include "page/page_pool.hpp"

namespace datacap::detail {
namespace {

// How many of `pages` are resident (mincore, one call per page: they need not be adjacent).
std::size_t resident(const std::vector<std::uint8_t*>& pages) {
  std::size_t n = 0;
  for (std::uint8_t* page : pages) {
    unsigned char in_core = 0;
    if (::mincore(page, PAGE_SIZE, &in_core) == 0 && (in_core & 1) != 0) ++n;
  }
  return n;
}

// Allocations and releases that reach the shared pool past the thread's own cache of 64 pages:
// the pool decays on them.
void touch_pool() {
  std::vector<std::uint8_t*> some;
  for (int i = 0; i < 200; ++i) some.push_back(allocate_page_memory());
  for (std::uint8_t* page : some) release_page_memory(page);
}

TEST(PagePool, FreedPagesStayForReuseThenDecayToTheKernel) {
  if (::sysconf(_SC_PAGESIZE) != static_cast<long>(PAGE_SIZE)) {
    GTEST_SKIP() << "kernel pages are not 4 KiB: freed pages are never given back one by one";
  }
  // 64 MiB always stays; 32 MiB more than that is what must decay (touch_pool reuses a few
  // hundred of these pages, which stay resident as its own).
  constexpr std::size_t ALWAYS = 16384, EXTRA = 8192;
  if (page_pool_retained_limit_bytes() < (ALWAYS + EXTRA + 1024) * PAGE_SIZE) {
    GTEST_SKIP() << "this machine's memory (or cgroup limit) keeps less than 100 MiB for reuse";
  }
  std::vector<std::uint8_t*> pages;
  for (std::size_t i = 0; i < ALWAYS + EXTRA; ++i) {
    std::uint8_t* page = allocate_page_memory();
    page[0] = 1;  // resident
    page[PAGE_SIZE - 1] = 2;
    pages.push_back(page);
  }
  ASSERT_EQ(resident(pages), pages.size());
  for (std::uint8_t* page : pages) release_page_memory(page);
  touch_pool();
  // Dropped, but kept for the next cap: nothing went back to the kernel.
  EXPECT_EQ(resident(pages), pages.size());

  // Two decay periods with no reuse: the first ends the period in which they were freed (its
  // low-water mark predates them), the second finds them unused throughout.
  for (int period = 0; period < 2; ++period) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    touch_pool();
  }
  const std::size_t still = resident(pages);
  EXPECT_LE(still, ALWAYS + 512) << "pages unused for a whole period stay resident";
  EXPECT_GE(still, ALWAYS / 2) << "the always-kept part went back too";

  // Reused after that: they read as fresh memory, and work.
  std::vector<std::uint8_t*> again;
  for (std::size_t i = 0; i < ALWAYS + EXTRA; ++i) {
    std::uint8_t* page = allocate_page_memory();
    page[7] = 7;
    EXPECT_EQ(page[7], 7);
    again.push_back(page);
  }
  for (std::uint8_t* page : again) release_page_memory(page);
}

// With arenas (after the first guest window), fork() copies them into the child: the free pages
// past the always-kept 64 MiB are given back first, so the child does not copy dropped pages.
TEST(PagePool, ForkGivesBackFreePagesBeforeCopying) {
  if (::sysconf(_SC_PAGESIZE) != static_cast<long>(PAGE_SIZE)) {
    GTEST_SKIP() << "kernel pages are not 4 KiB: freed pages are never given back one by one";
  }
  constexpr std::size_t ALWAYS = 16384, EXTRA = 8192;
  if (page_pool_retained_limit_bytes() < (ALWAYS + EXTRA + 1024) * PAGE_SIZE) {
    GTEST_SKIP() << "this machine's memory (or cgroup limit) keeps less than 100 MiB for reuse";
  }
  use_mappable_page_memory();
  std::vector<std::uint8_t*> pages;
  for (std::size_t i = 0; i < ALWAYS + EXTRA; ++i) {
    std::uint8_t* page = allocate_page_memory();
    page[0] = 1;
    pages.push_back(page);
  }
  for (std::uint8_t* page : pages) release_page_memory(page);
  touch_pool();
  ASSERT_EQ(resident(pages), pages.size()) << "kept for reuse before the fork";
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_LE(resident(pages), ALWAYS + 512)
      << "dropped pages were still there for the child to copy";
}

}  // namespace
}  // namespace datacap::detail
