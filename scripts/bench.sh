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
build/bench/datacap_bench --benchmark_filter="$filter" --benchmark_repetitions=5 \
  --benchmark_report_aggregates_only=true --benchmark_out=build/bench/results.json \
  --benchmark_out_format=json
python3 bench/report.py build/bench/results.json > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
