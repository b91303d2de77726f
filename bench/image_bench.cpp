// Instance memory: spawning an instance of a 64 MiB image (BM_SpawnInstance), and the memory an
// instance holds privately before it writes anything.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "datacap/datacap.hpp"

namespace datacap {
namespace {

void BM_SpawnInstance(benchmark::State& state) {
  constexpr std::uint64_t IMAGE = std::uint64_t{64} << 20;
  std::vector<std::uint8_t> code(IMAGE);
  std::mt19937_64 rng(17);
  for (std::size_t i = 0; i < code.size(); i += 8) {
    const std::uint64_t v = (i / PAGE_SIZE) % 4 == 3 ? 0 : rng();  // a quarter of pages empty
    std::memcpy(code.data() + i, &v, 8);
  }
  ImageBuilder builder;
  const std::vector<DataDesc> descs = {builder.add_bytes(code),
                                       builder.add_bytes(std::vector<std::uint8_t>(3000, 7))};
  // 256 MiB of instance memory: the image at 0, a small data segment at 192 MiB.
  const ImageMemory image(
      builder.arena(), descs,
      ImageLayout{std::uint64_t{256} << 20, {{0, 0}, {std::uint64_t{192} << 20, 1}}});
  std::uint64_t private_bytes = 0;
  for (auto _ : state) {
    DataCap instance = image.instantiate();
    benchmark::DoNotOptimize(instance);
    state.PauseTiming();
    private_bytes = instance.backing().exclusive_bytes() + sizeof(DataCap);
    state.ResumeTiming();
  }
  state.counters["private_bytes"] = static_cast<double>(private_bytes);
}
BENCHMARK(BM_SpawnInstance)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace datacap
