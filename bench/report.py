#!/usr/bin/env python3
"""Renders Google Benchmark JSON (medians of repetitions) as BENCHMARKS.md: every figure, then
the ratios and targets of the speed issue with a verdict each."""
import json
import pathlib
import platform
import subprocess
import sys

data = json.load(open(sys.argv[1]))
for extra in sys.argv[2:]:  # further runs (the store benchmarks run in a process of their own)
    data["benchmarks"].extend(json.load(open(extra))["benchmarks"])
med = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    med[b["run_name"]] = b

UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(name):
    b = med.get(name)
    return None if b is None else b["real_time"] * UNIT[b["time_unit"]]


def counter(name, key):
    b = med.get(name)
    return None if b is None or key not in b else b[key]


def fmt_time(s):
    if s is None:
        return "n/a"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def isa_names(prefix):
    return sorted(n[len(prefix):] for n in med if n.startswith(prefix))


out = []
ctx = data["context"]
cpu = "unknown CPU"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
out.append("# datacap benchmarks\n")
out.append(f"Produced by `scripts/bench.sh` on {ctx.get('date', '?')}: {cpu}, "
           f"{ctx.get('num_cpus', '?')} cores, {platform.system()} {platform.release()}. "
           "Medians of 5 repetitions (Google Benchmark); times are wall-clock per iteration.\n")

# ---- targets ----
rows = []


def target(figure, measured, goal, ok):
    verdict = "n/a" if ok is None else ("**met**" if ok else "**missed**")
    rows.append(f"| {figure} | {measured} | {goal} | {verdict} |")


pairs = {isa: counter(f"BM_PairHash/{isa}", "pairs/s") for isa in isa_names("BM_PairHash/")}
openssl = counter("BM_OpenSSLPairHash", "pairs/s")
for isa in ("avx512", "avx2"):
    p = pairs.get(isa)
    goal = 24e6 if isa == "avx512" else 12e6
    target(f"`BM_PairHash/{isa}`", "n/a" if p is None else f"{p / 1e6:.1f} M pairs/s",
           f"≥ {goal / 1e6:.0f} M pairs/s", None if p is None else p >= goal)
# The AVX2 ceiling: BM_Avx2PortCeiling's vector operations per second (the kernel's mix, nothing
# waiting on a result) over the kernel's own vector operations per 8 pairs, counted in its object
# code (hash8: each instruction whose mnemonic starts with "vp").
ceiling_ops = counter("BM_Avx2PortCeiling", "ops/s")
kernel_ops = None
try:
    obj = next(pathlib.Path("build/bench").rglob("sha256_avx2_x8.cpp.o"))
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(obj)], capture_output=True,
                             text=True, check=True).stdout
    in_hash8 = False
    kernel_ops = 0
    for line in listing.splitlines():
        if line.endswith(">:"):
            in_hash8 = "hash8" in line
        elif in_hash8 and "\t" in line and line.split("\t")[1].startswith("vp"):
            kernel_ops += 1
except (StopIteration, OSError, subprocess.CalledProcessError):
    kernel_ops = None
if ceiling_ops and kernel_ops and pairs.get("avx2"):
    ceiling = ceiling_ops / kernel_ops * 8
    target("`BM_PairHash/avx2` vs this machine's AVX2 ceiling for its operations "
           f"(`BM_Avx2PortCeiling` {ceiling_ops / 1e9:.2f} G ops/s ÷ {kernel_ops} ops per 8 pairs)",
           f"{pairs['avx2'] / ceiling:.0%} of {ceiling / 1e6:.1f} M pairs/s",
           f"12 M pairs/s would be {12e6 / ceiling:.0%}", None)
if pairs and openssl:
    best_isa = max(pairs, key=lambda k: pairs[k] or 0)
    ratio = pairs[best_isa] / openssl
    target(f"best kernel ({best_isa}) vs `BM_OpenSSLPairHash`", f"{ratio:.1f}× ({openssl / 1e6:.2f} M pairs/s)", "≥ 10×", ratio >= 10)
page = {isa: counter(f"BM_PageRoot/{isa}", "bytes_per_second") for isa in isa_names("BM_PageRoot/")}
if page:
    best = max(page, key=lambda k: page[k] or 0)
    target(f"`BM_PageRoot/{best}` (best ISA)", f"{page[best] / 1e9:.2f} GB/s", "≥ 0.75 GB/s", page[best] >= 0.75e9)
one, two = seconds("BM_CapRootFull/pages:262144/threads:1/real_time"), seconds("BM_CapRootFull/pages:262144/threads:2/real_time")
if one and two:
    target("`BM_CapRootFull/262144/2` vs 1 thread", f"{one / two:.2f}× ({fmt_time(one)} → {fmt_time(two)})", "≥ 1.7×", one / two >= 1.7)
full, inc64 = seconds("BM_FullRehash/262144"), seconds("BM_IncrementalRoot/pages:262144/k:64")
if full and inc64:
    target("`BM_IncrementalRoot/262144/64` vs `BM_FullRehash/262144`", f"{full / inc64:.1f}× ({fmt_time(inc64)} vs {fmt_time(full)})", "≥ 20×", full / inc64 >= 20)
inc1 = seconds("BM_IncrementalRoot/pages:262144/k:1")
if inc1:
    target("`BM_IncrementalRoot/262144/1`", fmt_time(inc1), "≤ 15 µs", inc1 <= 15e-6)
for k, goal in ((1, 5e-6), (64, 150e-6), (4096, 5e-3)):
    t = seconds(f"BM_TreeUpdate/pages:262144/k:{k}")
    if t:
        target(f"`BM_TreeUpdate/262144/{k}`", fmt_time(t), f"≤ {fmt_time(goal)}", t <= goal)
for pages in (4096, 262144):
    t = seconds(f"BM_Copy/{pages}")
    if t:
        target(f"`BM_Copy/{pages}`", fmt_time(t), "≤ 100 ns", t <= 100e-9)
for pct in (0, 10):
    t = seconds(f"BM_PageAtRandom/pages:262144/dirty_pct:{pct}")
    if t:
        target(f"`BM_PageAtRandom/262144`, {pct}% dirty", fmt_time(t), "≤ 25 ns", t <= 25e-9)
cpp_at, c_at = seconds("BM_CppPageAt"), seconds("BM_CApiPageAt")
if cpp_at and c_at:
    target("C API per-call overhead: `BM_CApiPageAt` − `BM_CppPageAt`", f"{(c_at - cpp_at) * 1e9:+.1f} ns ({fmt_time(c_at)} vs {fmt_time(cpp_at)})", "≤ 10 ns", c_at - cpp_at <= 10e-9)
cow, floor = seconds("BM_WritePageCow"), seconds("BM_AllocCopyFloor")
if cow and floor:
    target("`BM_WritePageCow` vs `BM_AllocCopyFloor`", f"{cow / floor:.2f}× ({fmt_time(cow)} vs {fmt_time(floor)})", "≤ 2×", cow / floor <= 2)
sparse = seconds("BM_SparseRoot")
if sparse:
    target("`BM_SparseRoot`", fmt_time(sparse), "≤ 10 ms", sparse <= 10e-3)
meta = counter("BM_CapRootFull/pages:262144/threads:1/real_time", "metadata_pct")
if meta is not None:
    target("metadata + cached hashes of a clean 1 GiB cap", f"{meta:.2f}% of page bytes", "≤ 3%", meta <= 3)

spawn = seconds("BM_SpawnInstance")
if spawn:
    target("`BM_SpawnInstance` (64 MiB image)", fmt_time(spawn), "≤ 20 µs", spawn <= 20e-6)
    priv = counter("BM_SpawnInstance", "private_bytes")
    if priv is not None:
        target("private memory per instance before it writes", f"{priv:.0f} B", "≤ 4 KiB", priv <= 4096)
structure = seconds("BM_ArchiveOpen/structure/real_time")
if structure:
    target("`BM_ArchiveOpen` structure only, 1 GiB", fmt_time(structure), "≤ 5 ms", structure <= 5e-3)
full_rate = counter("BM_ArchiveOpen/full/real_time", "bytes_per_second")
if full_rate:
    target("`BM_ArchiveOpen` full verification, 1 GiB", f"{full_rate / 1e9:.2f} GB/s", "≥ 0.7 GB/s", full_rate >= 0.7e9)
overhead = counter("BM_ArchiveOpen/structure/real_time", "overhead_pct")
if overhead is not None:
    target("archive size over its unique pages (1 GiB, distinct pages)", f"+{overhead:.2f}%", "≤ +1%", overhead <= 1)

put = seconds("BM_StorePut/iterations:1/real_time")
if put:
    rate = (262144 * 4096) / put
    target("`BM_StorePut`: first save of a 1 GiB cap into LMDB (page hashing included)", f"{rate / 1e6:.0f} MB/s ({fmt_time(put)})", "≥ 300 MB/s", rate >= 300e6)
    for case, what in ((1, "the same cap again (its saved record is found)"),
                       (2, "the same pages as a new cap (every page found stored)"),
                       (0, "a separately built cap of the same bytes (every page re-hashed)")):
        again = seconds(f"BM_StorePutAgain/case:{case}/real_time")
        if again:
            ok = again * 10 <= put if case != 0 else None
            target(f"`BM_StorePutAgain/{case}`: {what}", f"{put / again:.3g}× faster ({fmt_time(again)})",
                   "≥ 10× faster" if case != 0 else "(for information)", ok)
hyd = seconds("BM_Hydrate1000/real_time")
if hyd:
    target("`BM_Hydrate1000`: 1,000 random Missing pages from LMDB", fmt_time(hyd), "≤ 20 ms", hyd <= 20e-3)
set_floor, redis_put = seconds("BM_RedisSetFloor/iterations:1/real_time"), seconds("BM_RedisPut/iterations:1/real_time")
if set_floor and redis_put:
    target("`BM_RedisPut` (1 GiB cap into the 3-master cluster) vs `BM_RedisSetFloor` (raw pipelined SETs)", f"{set_floor / redis_put:.2f}× the floor's rate ({fmt_time(redis_put)} vs {fmt_time(set_floor)})", "≥ 0.7×", set_floor / redis_put >= 0.7)
    for case, what in ((1, "the same cap (its record is found)"), (2, "the same pages as a new cap (every page sent again with SET NX)")):
        again = seconds(f"BM_RedisPutAgain/case:{case}/real_time")
        if again:
            target(f"`BM_RedisPutAgain/{case}`: {what}", f"{redis_put / again:.3g}× faster ({fmt_time(again)})",
                   "≥ 10× faster" if case == 1 else "(for information)", redis_put / again >= 10 if case == 1 else None)
get_floor, redis_get = seconds("BM_RedisGetFloor/real_time"), seconds("BM_RedisGet/real_time")
if get_floor and redis_get:
    target("`BM_RedisGet` (load_cap of 1 GiB, every page checked) vs `BM_RedisGetFloor` (raw pipelined GETs)", f"{get_floor / redis_get:.2f}× the floor's rate ({fmt_time(redis_get)} vs {fmt_time(get_floor)})", "≥ 0.7×", get_floor / redis_get >= 0.7)
hyd_remote, hyd_floor = seconds("BM_HydrateRemote1000/real_time"), seconds("BM_HydrateRemote1000Floor/real_time")
if hyd_remote and hyd_floor:
    target("`BM_HydrateRemote1000` vs fetching the 1,000 pages raw", f"{hyd_remote / hyd_floor:.2f}× ({fmt_time(hyd_remote)} vs {fmt_time(hyd_floor)})", "≤ 2×", hyd_remote / hyd_floor <= 2)
first_load, second_load = seconds("BM_TieredLoad/second:0/real_time"), seconds("BM_TieredLoad/second:1/real_time")
if first_load and second_load:
    target("`BM_TieredLoad` (256 MiB): second load (local tier) vs first (cluster)", f"{first_load / second_load:.2f}× faster ({fmt_time(second_load)} vs {fmt_time(first_load)})", "≥ 5×", first_load / second_load >= 5)
proof = seconds("BM_PageProof")
if proof:
    target("`BM_PageProof`: single-page proof build + verify, 1 GiB cap", fmt_time(proof), "≤ 20 µs", proof <= 20e-6)
for shared in (1, 0):
    d = seconds(f"BM_Diff/shared:{shared}")
    if d:
        how = "copy sharing unchanged subtrees" if shared else "separately built (all compared by hash)"
        target(f"`BM_Diff/{shared}`: two 1 GiB caps, 64 pages differ, {how}", fmt_time(d), "≤ 1 ms", d <= 1e-3)

# ---- guest windows (#12): every figure a ratio to a floor of the same run ----
mmap_floor = seconds("BM_MmapFloor")
for arg, what, goal in ((0, "clean 1 GiB cap from from_bytes", 3), (1, "1 GiB cap from place_shared of 8 sources + 4,096 writes + flush", 30)):
    t = seconds(f"BM_WindowMap/{262144}/{arg}")
    if t and mmap_floor:
        target(f"`BM_WindowMap/262144/{arg}` ({what}) vs `BM_MmapFloor`", f"{t / mmap_floor:.2f}× ({fmt_time(t)} vs {fmt_time(mmap_floor)})", f"≤ {goal}×", t / mmap_floor <= goal)
calls = counter("BM_WindowRemapSame", "syscalls")
if calls is not None:
    target("`BM_WindowRemapSame`: system calls per remap onto the cap it holds", f"{calls:.2f} ({fmt_time(seconds('BM_WindowRemapSame'))})", "≤ 2", calls <= 2)
cow, first = seconds("BM_KernelCowFloor"), seconds("BM_WindowFirstWrite")
if cow and first:
    target("`BM_WindowFirstWrite` vs `BM_KernelCowFloor`", f"{first / cow:.2f}× ({fmt_time(first)} vs {fmt_time(cow)})", "≤ 1.3×", first / cow <= 1.3)
for k in (1, 64, 4096):
    h, f = seconds(f"BM_WindowHarvest/262144/{k}"), seconds(f"BM_PagemapScanFloor/262144/{k}")
    if h and f:
        target(f"`BM_WindowHarvest/262144/{k}` vs `BM_PagemapScanFloor/262144/{k}` (scan + {k} page copies)", f"{h / f:.2f}× ({fmt_time(h)} vs {fmt_time(f)})", "≤ 2×", h / f <= 2)
run_w, run_c = seconds("BM_RunWindow/64"), seconds("BM_RunCopyInOut/64")
if run_w and run_c:
    target("`BM_RunWindow/64` vs `BM_RunCopyInOut/64`", f"{run_c / run_w:.0f}× faster ({fmt_time(run_w)} vs {fmt_time(run_c)})", "≥ 20×", run_c / run_w >= 20)
priv, limit = counter("BM_WindowMemory64/iterations:1", "private_bytes"), counter("BM_WindowMemory64/iterations:1", "limit_bytes")
if priv is not None and limit:
    target("private memory of 64 windows of a 64 MiB image, 16 pages written each", f"{priv / 2**20:.2f} MiB", f"≤ {limit / 2**20:.2f} MiB", priv <= limit)

out.append("## Targets of the speed (#3), archive (#4), store/proof (#5), guest window (#12), C API (#13) and Redis store (#14) issues\n")
out.append("| figure | measured | target | verdict |")
out.append("|---|---|---|---|")
out.extend(rows)
out.append("")

# ---- every figure ----
out.append("## Every benchmark (medians)\n")
out.append("| benchmark | time | counters |")
out.append("|---|---|---|")
skip = {"name", "run_name", "run_type", "repetitions", "repetition_index", "threads", "iterations",
        "real_time", "cpu_time", "time_unit", "aggregate_name", "aggregate_unit", "family_index",
        "per_family_instance_index", "label"}
for name, b in med.items():
    extras = []
    for key, value in b.items():
        if key in skip or not isinstance(value, (int, float)):
            continue
        if key == "bytes_per_second":
            extras.append(f"{value / 1e9:.3g} GB/s")
        elif key == "pairs/s":
            extras.append(f"{value / 1e6:.3g} M pairs/s")
        else:
            extras.append(f"{key}={value:.3g}")
    out.append(f"| `{name}` | {fmt_time(seconds(name))} | {', '.join(extras)} |")
out.append("")
out.append("Notes: `BM_WritePageCow` stores into 256 cache-resident pages, like the floor's single page; "
           "`BM_WritePageCowCold` is the same over 4096 pages (16 MiB) whose copies miss the caches. "
           "`BM_PairHashSmall` sets the crossovers at which short hash calls use a narrower kernel.")
print("\n".join(out))
