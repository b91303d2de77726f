// datacap demo: the main job. Builds a 64 MiB base image, spawns 1000 copies (MGMT_COPY), runs
// a deterministic workload in each, flushes and roots each, and reports what it measured —
// checking, not assuming, that every copy stayed isolated from the base and from the others.
// Then runs the first 64 workloads again as a recompiler would: plain stores into guest windows
// of the image, harvested, with roots that must equal the interpreter path's.
#include <unistd.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/process.hpp"
#include "datacap/datacap.hpp"

namespace datacap::cli {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// splitmix64: a tiny deterministic generator, so every run (and machine) builds the same caps.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return next() % n; }
  void fill(std::uint8_t* out, std::size_t len) {
    for (std::size_t i = 0; i < len; i += 8) {
      const std::uint64_t v = next();
      for (std::size_t j = 0; j < 8 && i + j < len; ++j)
        out[i + j] = static_cast<std::uint8_t>(v >> (8 * j));
    }
  }
};

std::uint64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
}

// The base image's page i: a quarter of pages stay Empty (sparse), an eighth hold a short
// header, the rest are full pseudo-random pages.
std::vector<std::uint8_t> base_page(std::uint64_t i) {
  std::vector<std::uint8_t> bytes(PAGE_SIZE, 0);
  if (i % 4 == 3) return bytes;
  Rng rng{0xda7aca9ULL ^ (i * 0x100000001b3ULL)};
  rng.fill(bytes.data(), i % 8 == 1 ? 100 : PAGE_SIZE);
  return bytes;
}

struct Write {
  std::uint64_t off;
  std::vector<std::uint8_t> bytes;
};

// The deterministic workload of copy `id`: a few whole pages (one of them all zeros, to shadow
// a non-zero base page) and byte ranges, some straddling page boundaries.
std::vector<Write> workload(std::uint64_t id, std::uint64_t page_count) {
  Rng rng{id * 7919 + 17};
  std::vector<Write> writes;
  for (int k = 0; k < 4; ++k) {
    Write w{rng.below(page_count) * PAGE_SIZE, std::vector<std::uint8_t>(PAGE_SIZE)};
    rng.fill(w.bytes.data(), PAGE_SIZE);
    if (k == 0) {
      w.off = (rng.below(page_count / 4) * 4) * PAGE_SIZE;  // i % 4 == 0: a non-zero base page
      std::fill(w.bytes.begin(), w.bytes.end(), 0);
    }
    writes.push_back(std::move(w));
  }
  for (int k = 0; k < 12; ++k) {
    const std::size_t len = 1 + rng.below(k % 3 == 0 ? 6000 : 64);
    Write w{rng.below(page_count * PAGE_SIZE - len), std::vector<std::uint8_t>(len)};
    rng.fill(w.bytes.data(), len);
    writes.push_back(std::move(w));
  }
  return writes;
}

// Private memory (smaps Private_Dirty + Private_Clean) of the mappings inside the windows.
std::uint64_t private_bytes_of(const std::vector<GuestWindow>& windows) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  std::uint64_t total = 0;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    char dash = 0;
    if (std::sscanf(line.c_str(), "%lx%c%lx", &lo, &dash, &hi) == 3 && dash == '-') {
      inside = false;
      for (const GuestWindow& w : windows) {
        const auto b = reinterpret_cast<std::uintptr_t>(w.base());
        if (lo >= b && hi <= b + w.size()) inside = true;
      }
      continue;
    }
    unsigned long kb = 0;
    if (inside && (std::sscanf(line.c_str(), "Private_Dirty: %lu kB", &kb) == 1 ||
                   std::sscanf(line.c_str(), "Private_Clean: %lu kB", &kb) == 1)) {
      total += kb * 1024;
    }
  }
  return total;
}

// 6. The recompiler's path: the first copies' workloads run as plain stores into guest windows
// of the base image, harvested; each root must equal the interpreter path's. Returns the number
// of failed checks (0 when windows are unsupported here: that is reported, not failed).
std::uint64_t run_windows(const DataCap& base, const std::vector<Hash32>& interpreter_roots,
                          const std::vector<std::vector<Write>>& plans) {
  const std::size_t n = interpreter_roots.size();
  std::vector<GuestWindow> windows;
  windows.reserve(n);
  auto t = Clock::now();
  try {
    for (std::size_t j = 0; j < n; ++j) windows.emplace_back(base);
  } catch (const Unsupported& e) {
    std::printf("  windows          not available on this host: %s\n", e.what());
    return 0;
  }
  const double map_s = seconds_since(t);
  t = Clock::now();
  for (std::size_t j = 0; j < n; ++j) {
    for (const Write& w : plans[j])
      std::memcpy(windows[j].base() + w.off, w.bytes.data(), w.bytes.size());
  }
  const double store_s = seconds_since(t);
  const std::uint64_t private_bytes = private_bytes_of(windows);
  t = Clock::now();
  std::uint64_t failures = 0, harvested_pages = 0;
  std::set<Hash32> distinct;
  for (std::size_t j = 0; j < n; ++j) {
    const DataCap h = windows[j].harvest();
    harvested_pages += h.dirty_page_count();
    const Hash32 root = h.flush().hash_tree_root();
    distinct.insert(root);
    if (root != interpreter_roots[j]) ++failures;
  }
  const double harvest_s = seconds_since(t);
  if (distinct.size() != n) ++failures;
  const double mib = 1 << 20;
  std::printf(
      "  windows          %zu guest windows of the image (%s): map %.1f us, plain stores %.1f us, "
      "harvest + flush + root %.1f us per window; %llu pages harvested; roots %s the interpreter "
      "path's, %zu distinct; private memory of all windows %.2f MiB (the image's pages are "
      "shared; %zu private copies would take %.0f MiB)\n",
      n, to_string(windows.front().tracking()), map_s * 1e6 / static_cast<double>(n),
      store_s * 1e6 / static_cast<double>(n), harvest_s * 1e6 / static_cast<double>(n),
      static_cast<unsigned long long>(harvested_pages), failures == 0 ? "equal" : "DIFFER FROM",
      distinct.size(), static_cast<double>(private_bytes) / mib, n,
      static_cast<double>(n) * static_cast<double>(base.content_len()) / mib);
  return failures;
}

void run_demo(std::uint64_t copies_n) {
  constexpr std::uint64_t IMAGE_SIZE = std::uint64_t{64} << 20;
  constexpr std::uint64_t PAGES = IMAGE_SIZE / PAGE_SIZE;
  const std::uint64_t rss_start = resident_bytes();
  const std::uint64_t pages_start = live_page_count();

  // 1. The base image.
  auto t = Clock::now();
  DataCap base = DataCap::zeroed(IMAGE_SIZE);
  for (std::uint64_t i = 0; i < PAGES; ++i) {
    if (i % 4 == 3) continue;
    base.put_page(i * PAGE_SIZE, base_page(i));
  }
  const double build_s = seconds_since(t);
  t = Clock::now();
  const Hash32 base_root = base.hash_tree_root();
  const double base_root_s = seconds_since(t);
  const std::uint64_t base_pages = base.backing().stored_page_count();
  const std::uint64_t rss_base = resident_bytes();

  // 2. MGMT_COPY × N.
  std::vector<DataCap> copies;
  copies.reserve(copies_n);
  t = Clock::now();
  for (std::uint64_t j = 0; j < copies_n; ++j) copies.push_back(base);
  const double copy_s = seconds_since(t);

  // 3. Each copy's workload.
  std::vector<std::vector<Write>> plans(copies_n);
  std::uint64_t write_count = 0;
  for (std::uint64_t j = 0; j < copies_n; ++j) plans[j] = workload(j, PAGES);
  t = Clock::now();
  for (std::uint64_t j = 0; j < copies_n; ++j) {
    for (const Write& w : plans[j]) {
      if (w.bytes.size() == PAGE_SIZE && w.off % PAGE_SIZE == 0) {
        copies[j].write_page(w.off, w.bytes);
      } else {
        copies[j].write(w.off, w.bytes);
      }
      ++write_count;
    }
  }
  const double write_s = seconds_since(t);
  std::uint64_t dirty_pages = 0;
  for (const DataCap& c : copies) dirty_pages += c.dirty_page_count();

  // 4. Flush + root each.
  std::vector<Hash32> roots(copies_n);
  t = Clock::now();
  for (std::uint64_t j = 0; j < copies_n; ++j) {
    copies[j] = std::move(copies[j]).flush();
    roots[j] = copies[j].hash_tree_root();
  }
  const double flush_s = seconds_since(t);
  const std::uint64_t rss_end = resident_bytes();
  const std::uint64_t pages_end = live_page_count();

  // 5. Checks. Every copy holds exactly its own writes over the base; the base is untouched.
  t = Clock::now();
  std::uint64_t isolation_failures = 0, pages_checked = 0, shared_pages = 0;
  std::vector<std::uint8_t> got(PAGE_SIZE);
  for (std::uint64_t j = 0; j < copies_n; ++j) {
    std::map<std::uint64_t, std::vector<std::uint8_t>> expected;  // touched pages: final bytes
    for (const Write& w : plans[j]) {
      for (std::uint64_t off = w.off; off < w.off + w.bytes.size();) {
        const std::uint64_t p = off / PAGE_SIZE;
        auto [it, fresh] = expected.try_emplace(p);
        if (fresh) it->second = base_page(p);
        const std::size_t in_page = off % PAGE_SIZE;
        const std::size_t n =
            std::min<std::uint64_t>(PAGE_SIZE - in_page, w.off + w.bytes.size() - off);
        std::copy_n(w.bytes.begin() + static_cast<std::ptrdiff_t>(off - w.off), n,
                    it->second.begin() + static_cast<std::ptrdiff_t>(in_page));
        off += n;
      }
    }
    for (const auto& [p, bytes] : expected) {
      copies[j].copy_into(p * PAGE_SIZE, got);
      ++pages_checked;
      if (got != bytes) ++isolation_failures;
    }
    // An untouched page must still be the base's very page (shared, not copied).
    Rng rng{j};
    for (int k = 0; k < 8; ++k) {
      const std::uint64_t p = rng.below(PAGES);
      if (expected.count(p)) continue;
      const PageResolution mine = copies[j].page_at(p * PAGE_SIZE);
      const PageResolution theirs = base.page_at(p * PAGE_SIZE);
      ++pages_checked;
      if (mine.data != theirs.data)
        ++isolation_failures;
      else
        ++shared_pages;
    }
  }
  for (std::uint64_t i = 0; i < PAGES; ++i) {
    base.copy_into(i * PAGE_SIZE, got);
    if (got != base_page(i)) ++isolation_failures;
  }
  if (base.hash_tree_root() != base_root) ++isolation_failures;
  // Recompute a few copies' roots from scratch (fresh cap, no cached hashes) to check the
  // incremental roots.
  std::uint64_t root_mismatches = 0;
  for (std::uint64_t j : {std::uint64_t{0}, copies_n / 2, copies_n - 1}) {
    std::vector<std::uint8_t> flat(IMAGE_SIZE);
    copies[j].copy_into(0, flat);
    if (DataCap::from_bytes(flat).hash_tree_root() != roots[j]) ++root_mismatches;
  }
  std::set<Hash32> distinct(roots.begin(), roots.end());
  const double check_s = seconds_since(t);

  const double mib = 1 << 20;
  const double private_total = static_cast<double>(copies_n) * static_cast<double>(IMAGE_SIZE);
  const double resident = static_cast<double>(rss_end - rss_start);
  std::printf("datacap demo: %llu copies of a 64 MiB base image\n",
              static_cast<unsigned long long>(copies_n));
  std::printf(
      "  base image       %llu pages, %llu stored (%llu Empty), built in %.1f ms, root in %.1f "
      "ms\n",
      static_cast<unsigned long long>(PAGES), static_cast<unsigned long long>(base_pages),
      static_cast<unsigned long long>(PAGES - base_pages), build_s * 1e3, base_root_s * 1e3);
  std::printf("  base root        %s\n", to_hex(base_root).c_str());
  std::printf("  copy (MGMT_COPY) %.0f ns per copy\n",
              copy_s * 1e9 / static_cast<double>(copies_n));
  std::printf("  writes           %llu writes (%llu dirty pages), %.2f us per write\n",
              static_cast<unsigned long long>(write_count),
              static_cast<unsigned long long>(dirty_pages),
              write_s * 1e6 / static_cast<double>(write_count));
  std::printf("  flush + root     %.1f us per copy\n",
              flush_s * 1e6 / static_cast<double>(copies_n));
  std::printf("  distinct roots   %zu of %llu\n", distinct.size(),
              static_cast<unsigned long long>(copies_n));
  std::printf(
      "  isolation        %s: %llu pages checked (%llu untouched pages still shared with the "
      "base), "
      "base bytes and root unchanged: %s\n",
      isolation_failures == 0 ? "held" : "VIOLATED", static_cast<unsigned long long>(pages_checked),
      static_cast<unsigned long long>(shared_pages), isolation_failures == 0 ? "yes" : "no");
  std::printf("  roots from scratch  %s (3 copies recomputed without caches)\n",
              root_mismatches == 0 ? "match" : "MISMATCH");
  std::printf(
      "  memory           %.1f MiB resident for base + %llu copies (%.1f MiB for the base alone); "
      "%llu live pages = %.1f MiB; %llu private copies would take %.0f MiB (%.0fx more)\n",
      resident / mib, static_cast<unsigned long long>(copies_n),
      static_cast<double>(rss_base - rss_start) / mib,
      static_cast<unsigned long long>(pages_end - pages_start),
      static_cast<double>((pages_end - pages_start) * PAGE_SIZE) / mib,
      static_cast<unsigned long long>(copies_n), private_total / mib,
      resident > 0 ? private_total / resident : 0.0);
  std::printf("  checks took      %.2f s\n", check_s);
  const std::size_t window_n = static_cast<std::size_t>(std::min<std::uint64_t>(copies_n, 64));
  const std::uint64_t window_failures = run_windows(
      base,
      std::vector<Hash32>(roots.begin(), roots.begin() + static_cast<std::ptrdiff_t>(window_n)),
      plans);
  if (isolation_failures != 0 || root_mismatches != 0 || distinct.size() != copies_n ||
      window_failures != 0) {
    throw Error(ErrorKind::invalid_argument, "demo: a check failed (see the report above)");
  }
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto copies = std::make_shared<std::uint64_t>(1000);
  CLI::App* cmd = app.add_subcommand(
      "demo", "Spawn copies of a 64 MiB image, write, flush, root, and report cost and isolation");
  add_u64_option(*cmd, "--copies", *copies, "number of copies, 1 to 100000 (default 1000)");
  cmd->callback([copies] {
    if (*copies < 1 || *copies > 100000)
      throw InvalidArgument("--copies: " + std::to_string(*copies) + " is not 1 to 100000");
    run_demo(*copies);
  });
}

}  // namespace datacap::cli
