// Opening a 1 GiB snapshot archive (262,144 distinct pages): structure only, and with full
// verification (every payload hashed against its recorded hash, then the cap root).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

const std::string& gib_archive() {
  static const std::string path = [] {
    const std::string p = std::filesystem::temp_directory_path() /
                          ("datacap_bench_" + std::to_string(::getpid()) + ".dcar");
    ArchiveWriter w(p);
    std::vector<std::uint8_t> chunk(std::size_t{16} << 20);
    std::mt19937_64 rng(5);
    for (int c = 0; c < 64; ++c) {
      for (std::size_t i = 0; i < chunk.size(); i += 8) {
        const std::uint64_t v = rng();
        std::memcpy(chunk.data() + i, &v, 8);
      }
      w.append_pages(chunk);
    }
    w.finish();
    return p;
  }();
  return path;
}

void archive_open(benchmark::State& state, ArchiveVerify verify) {
  const std::string& path = gib_archive();
  std::uint64_t file_size = 0, payload_bytes = 0;
  for (auto _ : state) {
    OpenedArchive a = open_archive(path, verify);
    file_size = a.info.file_size;
    payload_bytes = a.info.unique_pages * PAGE_SIZE;
    benchmark::DoNotOptimize(a);
    state.PauseTiming();
    a = OpenedArchive();  // dropping the mapping is not part of opening
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * payload_bytes));
  state.counters["overhead_pct"] =
      100.0 * static_cast<double>(file_size - payload_bytes) / static_cast<double>(payload_bytes);
}

void BM_ArchiveOpen_Structure(benchmark::State& state) {
  archive_open(state, ArchiveVerify::structure);
}
void BM_ArchiveOpen_Full(benchmark::State& state) { archive_open(state, ArchiveVerify::full); }
BENCHMARK(BM_ArchiveOpen_Structure)
    ->Name("BM_ArchiveOpen/structure")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_ArchiveOpen_Full)
    ->Name("BM_ArchiveOpen/full")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Removes the archive when the benchmark binary exits.
const struct Cleanup {
  ~Cleanup() {
    std::error_code ignored;
    std::filesystem::remove(std::filesystem::temp_directory_path() /
                                ("datacap_bench_" + std::to_string(::getpid()) + ".dcar"),
                            ignored);
  }
} cleanup;

}  // namespace
}  // namespace datacap
