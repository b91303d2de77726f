// The C++ floor of python/bench/bench_python.py: hash_tree_root of a fresh cap built by
// from_bytes from MiB mebibytes of non-zero data (the root not cached), timed alone, REPS times.
// The data is the same as the script's: 64-bit little-endian words w[i] = i * 0x9E3779B97F4A7C15
// (no two pages alike). Prints one JSON line.
//
// Usage: datacap_py_bench_floor [MiB=1024] [REPS=5]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "datacap/cap.hpp"
#include "datacap/hash.hpp"
#include "datacap/types.hpp"

int main(int argc, char** argv) {
  const std::uint64_t mib = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 1024;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  if (mib == 0 || reps <= 0) {
    std::fprintf(stderr, "usage: %s [MiB=1024] [REPS=5]\n", argv[0]);
    return 2;
  }
  std::vector<std::uint8_t> data(mib << 20);
  for (std::size_t i = 0; i < data.size() / 8; ++i) {
    const std::uint64_t word = static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ull;
    std::memcpy(data.data() + 8 * i, &word, 8);  // x86-64: little-endian, as numpy's <u8
  }
  std::vector<double> ns;
  std::string root;
  for (int r = 0; r < reps; ++r) {
    datacap::DataCap cap = datacap::DataCap::from_bytes(data);
    const auto t0 = std::chrono::steady_clock::now();
    const datacap::Hash32 h = cap.hash_tree_root();
    const auto t1 = std::chrono::steady_clock::now();
    ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    root = datacap::to_hex(h);
  }
  std::vector<double> sorted = ns;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted.size() % 2 == 1
                            ? sorted[sorted.size() / 2]
                            : (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]) / 2;
  std::printf(
      "{\"op\": \"hash_tree_root\", \"bytes\": %llu, \"reps\": %d, \"median_ns\": %.0f, "
      "\"min_ns\": %.0f, \"isa\": \"%s\", \"root\": \"%s\", \"runs_ns\": [",
      static_cast<unsigned long long>(data.size()), reps, median, sorted.front(),
      datacap::to_string(datacap::active_isa()), root.c_str());
  for (std::size_t i = 0; i < ns.size(); ++i) std::printf("%s%.0f", i ? ", " : "", ns[i]);
  std::printf("]}\n");
  return 0;
}
