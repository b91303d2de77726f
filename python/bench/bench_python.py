#!/usr/bin/env python3
"""Benchmarks of the Python binding against its targets.

1. cap.page_at(off) plus reading one byte of the view: ns per call (target <= 1 us), for a
   Loaded page and an Empty one (the shared zero page); the loop's own cost is included.
2. hash_tree_root() of a fresh cap built by from_bytes of MiB mebibytes (default 1 GiB) of
   non-zero data, the root not cached, from Python, against the same operation in C++
   (datacap_py_bench_floor, run by this script with the same size and repetitions): medians
   of REPS runs; target: Python within 5% of C++.

Usage (from the repository root, after building the targets datacap_python and
datacap_py_bench_floor in build/py):
    /usr/bin/python3 python/bench/bench_python.py [--mib 1024] [--reps 5] [--json]
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_BUILD = REPO / "build" / "py"

try:
    import datacap
except ImportError:  # run from the repository without PYTHONPATH: use the build tree
    sys.path.insert(0, str(DEFAULT_BUILD / "python"))
    import datacap

import numpy as np


def page_at_ns(cap, off, calls, reps):
    """Median over reps of the ns per `cap.page_at(off)[0]`."""
    page_at = cap.page_at
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            page_at(off)[0]
        runs.append((time.perf_counter_ns() - t0) / calls)
    return statistics.median(runs), runs


def pattern(mib):
    """The floor program's data: 64-bit little-endian words w[i] = i * 0x9E3779B97F4A7C15."""
    words = np.arange((mib << 20) // 8, dtype="<u8")
    words *= np.uint64(0x9E3779B97F4A7C15)  # wraps modulo 2^64, as in C++
    return words


def python_root_ns(mib, reps):
    data = pattern(mib)
    runs, root = [], None
    for _ in range(reps):
        cap = datacap.DataCap.from_bytes(data)
        t0 = time.perf_counter_ns()
        root = cap.hash_tree_root()
        runs.append(time.perf_counter_ns() - t0)
        del cap
    return statistics.median(runs), runs, root.hex()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=1024, help="cap size for the root benchmark")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (medians are compared)")
    parser.add_argument("--calls", type=int, default=1_000_000, help="page_at calls per rep")
    parser.add_argument("--floor", type=pathlib.Path,
                        default=DEFAULT_BUILD / "python" / "bench" / "datacap_py_bench_floor",
                        help="the C++ floor program (target datacap_py_bench_floor)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args()

    results = {"datacap": datacap.__version__, "isa": datacap.active_isa(),
               "python": sys.version.split()[0], "cpus": os.cpu_count()}

    cap = datacap.DataCap.from_bytes(b"\x01" * 4096, target=1 << 20)
    loaded, loaded_runs = page_at_ns(cap, 100, args.calls, args.reps)
    empty, empty_runs = page_at_ns(cap, 4096 * 7 + 100, args.calls, args.reps)
    results["page_at_loaded_ns"] = round(loaded, 1)
    results["page_at_empty_ns"] = round(empty, 1)
    results["page_at_runs_ns"] = [round(x, 1) for x in loaded_runs + empty_runs]
    del cap

    py_median, py_runs, py_root = python_root_ns(args.mib, args.reps)
    floor = subprocess.run([str(args.floor), str(args.mib), str(args.reps)], check=True,
                           capture_output=True, text=True)
    cpp = json.loads(floor.stdout)
    if cpp["root"] != py_root:
        sys.exit(f"roots differ: Python {py_root}, C++ {cpp['root']}")
    results["root_bytes"] = args.mib << 20
    results["root_python_median_ms"] = round(py_median / 1e6, 2)
    results["root_cpp_median_ms"] = round(cpp["median_ns"] / 1e6, 2)
    results["root_python_runs_ms"] = [round(x / 1e6, 2) for x in py_runs]
    results["root_cpp_runs_ms"] = [round(x / 1e6, 2) for x in cpp["runs_ns"]]
    results["root_python_over_cpp"] = round(py_median / cpp["median_ns"], 4)
    results["root"] = py_root

    if args.json:
        print(json.dumps(results, indent=2))
        return
    gib = (args.mib << 20) / 2**30
    print(f"datacap {results['datacap']} ({results['isa']}), Python {results['python']}, "
          f"{results['cpus']} CPUs; medians of {args.reps}")
    rows = [
        ("page_at(off)[0], Loaded page", f"{loaded:8.1f} ns/call", "target <= 1000 ns"),
        ("page_at(off)[0], Empty page", f"{empty:8.1f} ns/call", "target <= 1000 ns"),
        (f"hash_tree_root {gib:g} GiB, Python", f"{py_median / 1e6:8.1f} ms", ""),
        (f"hash_tree_root {gib:g} GiB, C++", f"{cpp['median_ns'] / 1e6:8.1f} ms", ""),
        ("Python / C++", f"{py_median / cpp['median_ns']:8.3f}", "target <= 1.05"),
    ]
    for name, value, target in rows:
        print(f"  {name:<36} {value:>16}   {target}")


if __name__ == "__main__":
    main()
