#!/usr/bin/env bash
# Builds the Release benchmarks, runs every benchmark (5 repetitions, medians) and writes
# BENCHMARKS.md with each figure, the ratios the issues ask for, and the targets.
#   scripts/bench.sh                 # all benchmarks
#   scripts/bench.sh --filter REGEX  # a subset (BENCHMARKS.md then lists only those)
set -euo pipefail
cd "$(dirname "$0")/.."
filter="."
if [[ "${1:-}" == "--filter" ]]; then filter="$2"; fi

scripts/install-deps.sh
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DDATACAP_BUILD_BENCHMARKS=ON \
  -DDATACAP_BUILD_TESTS=OFF >/dev/null
cmake --build build/bench -j"$(nproc)" --target datacap_bench
# The store benchmarks write gigabytes to disk; the kernel's writeback after them would steal
# CPU from whatever ran next, so they run last, each in a process of its own after a `sync`
# (their commits sync too, and would otherwise wait behind the previous one's writeback).
run() {
  build/bench/datacap_bench --benchmark_filter="$1" --benchmark_repetitions=5 \
    --benchmark_report_aggregates_only=true --benchmark_out="$2" --benchmark_out_format=json
}
# The Redis benchmarks run against a local 3-master + 3-replica cluster started here and stopped
# on exit (scripts/redis-servers.sh); each compares with a raw-hiredis floor of the same run.
servers="$(pwd)/build/bench/redis-servers"
trap 'scripts/redis-servers.sh stop "$servers" >/dev/null 2>&1 || true' EXIT
scripts/redis-servers.sh start "$servers" >/dev/null
DATACAP_REDIS_CLUSTER_URL=$(grep '^DATACAP_REDIS_CLUSTER_URL=' "$servers/urls.env" | cut -d= -f2-)
export DATACAP_REDIS_CLUSTER_URL
store='BM_Store|BM_Hydrate|BM_Redis|BM_Tiered'
if [[ "$filter" == "." ]]; then
  sync
  run "-($store)" build/bench/results.json
  results=(build/bench/results.json)
  for bench in 'BM_StorePut/' 'BM_StorePutAgain' 'BM_Hydrate1000' 'BM_HydrateRemote' 'BM_Redis' 'BM_Tiered'; do
    out="build/bench/results_${bench//[^A-Za-z0-9]/}.json"
    sync
    run "$bench" "$out"
    results+=("$out")
  done
  python3 bench/report.py "${results[@]}" > BENCHMARKS.md
else
  run "$filter" build/bench/results.json
  python3 bench/report.py build/bench/results.json > BENCHMARKS.md
fi
echo "wrote BENCHMARKS.md"
