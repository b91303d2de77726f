#!/usr/bin/env python3
"""Hostile-inputs suite for the datacap CLI (issue 11).

Runs the real `datacap` binary against inputs nobody made by hand -- generated at random from
one seed -- and checks the CLI's promises: never a signal or a hang; exit 0, 1 or 2 with exactly
one `datacap: error: ` line naming the input; bounded memory on hostile archives and proofs;
sparse inputs rooted like their dense copies; outputs that are not regular files left as they
are; no half-written outputs or `*.tmp-*` files after errors, races and signals.

    python3 tests/hostile/hostile.py --cli build/release/datacap [--seed N] [--seconds S]
        [--no-memory-checks] [--workdir DIR] [--only CLASS[,CLASS]] [--case K]

The seed is printed first. Every case class gets an equal share of the time; each case draws
its own seed from the class's generator, so `--seed N --only CLASS --case K` reruns case K
(the concurrent classes -- races, signals -- are timing dependent). A failing case's inputs are
kept in the work directory, passing ones are deleted; the directory is removed at the end when
nothing failed. Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import array
import hashlib
import json
import os
import random
import re
import resource
import select
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

PAGE = 4096
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
MAX_PAGES = 1 << 32
ERROR_PREFIX = "datacap: error: "
HEX64 = re.compile(r"[0-9a-f]{64}")
BASE_BOUND = 64 * MiB  # issue 11: peak memory <= 64 MiB + 64 x the input's size
BIG_MIB = 384  # the signals class's input

# ---------------------------------------------------------------------------------------------
# Model: cap roots (SPEC §4), proofs (docs/format.md §4) and archives (docs/format.md §2).
# ---------------------------------------------------------------------------------------------


class Digest:
    """One of the two tree digests, with its zero-subtree table."""

    def __init__(self, name: str, ident: int, fn):
        self.name, self.id, self.h = name, ident, fn
        self.zero = [bytes(32)]
        for _ in range(48):
            self.zero.append(fn(self.zero[-1] * 2))

    def page_root(self, page: bytes) -> bytes:
        level = page.ljust(PAGE, b"\0")
        nodes = [level[i:i + 32] for i in range(0, PAGE, 32)]
        h = self.h
        while len(nodes) > 1:
            nodes = [h(nodes[i] + nodes[i + 1]) for i in range(0, len(nodes), 2)]
        return nodes[0]

    def pages_root(self, page_count: int, leaves: dict) -> bytes:
        """Sparse merkleize: leaves maps page index -> slot root; absent pages are Empty."""
        depth = depth_of(page_count)
        nodes = {i: r for i, r in leaves.items() if r != self.zero[0]}
        for level in range(depth):
            z, nxt = self.zero[level], {}
            for i in nodes:
                p = i >> 1
                if p not in nxt:
                    nxt[p] = self.h(nodes.get(2 * p, z) + nodes.get(2 * p + 1, z))
            nodes = nxt
        return nodes.get(0, self.zero[depth])

    def cap_root(self, size: int, leaves: dict) -> bytes:
        return self.h(size_root(size) + self.pages_root(size // PAGE, leaves))


DIGESTS = {
    "sha256": Digest("sha256", 0, lambda b: hashlib.sha256(b).digest()),
    "blake2b256": Digest("blake2b256", 1, lambda b: hashlib.blake2b(b, digest_size=32).digest()),
}
DIGEST_BY_ID = {d.id: d for d in DIGESTS.values()}


def depth_of(page_count: int) -> int:
    return (max(page_count, 1) - 1).bit_length()


def size_root(size: int) -> bytes:
    return struct.pack("<Q", size % (1 << 64)) + bytes(24)


def cap_size(length: int, size: int = 0) -> int:
    """The cap size `root FILE --size S` uses: max(len, S) rounded up to a page, >= 1 page."""
    return max(1, -(-max(length, size) // PAGE)) * PAGE


def pages_of(data: bytes) -> dict:
    """Non-zero pages of a byte string: index -> 4096 bytes."""
    out = {}
    for off in range(0, len(data), PAGE):
        p = data[off:off + PAGE]
        if p.count(0) != len(p):
            out[off // PAGE] = p.ljust(PAGE, b"\0")
    return out


def root_of_pages(digest: str, size: int, pages: dict) -> str:
    d = DIGESTS[digest]
    return d.cap_root(size, {i: d.page_root(p) for i, p in pages.items()}).hex()


def proof_problem(obj) -> str | None:
    """None when a proof JSON object holds (format.md §4, size root included), else why not."""
    if not isinstance(obj, dict):
        return "not an object"
    dname = obj.get("digest", "sha256")
    d = DIGESTS.get(dname) if isinstance(dname, str) else None
    if d is None:
        return "digest"

    def integer(name):
        v = obj.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 64 else None

    def hexhash(v):
        return bytes.fromhex(v) if isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{64}", v) else None

    size, index, depth, gindex = (integer(n) for n in ("size", "page_index", "depth", "gindex"))
    root, leaf = hexhash(obj.get("root")), hexhash(obj.get("leaf"))
    branch = obj.get("branch")
    if None in (size, index, depth, gindex, root, leaf) or not isinstance(branch, list):
        return "a field is missing or of the wrong type"
    branch = [hexhash(b) for b in branch]
    if None in branch:
        return "branch entry"
    if size % PAGE or size == 0 or size // PAGE > MAX_PAGES:
        return "size"
    pc = size // PAGE
    if index >= pc:
        return "page_index"
    dd = depth_of(pc)
    if depth != dd:
        return "depth"
    if gindex != 3 * (1 << dd) + index:
        return "gindex"
    if len(branch) != dd + 1:
        return "branch length"
    if branch[dd] != size_root(size):
        return "size root"
    node = leaf
    for k in range(dd):
        node = d.h(branch[k] + node) if (index >> k) & 1 else d.h(node + branch[k])
    return None if d.h(branch[dd] + node) == root else "fold"


HEADER = struct.Struct("<8sIBBHQQQQQQQ32s")  # the 104 hashed header bytes
REF_ZERO, REF_MISSING = 0xFFFFFFFF, 0x80000000


def rehash_header(buf: bytearray, digest_id: int | None = None) -> None:
    """Recompute the header hash so a crafted header passes the header check."""
    d = DIGEST_BY_ID.get(buf[12] if digest_id is None else digest_id, DIGESTS["sha256"])
    buf[104:136] = d.h(bytes(buf[:104]))


def entries_bytes(entries) -> bytes:
    a = array.array("I")
    for idx, ref in entries:
        a.append(idx)
        a.append(ref)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


def encode_archive(d: Digest, content_len: int, payloads: list, backing: bytes, overlay: bytes = b"",
                   missing: list = (), root: bytes | None = None, hashes: list | None = None) -> bytearray:
    """An archive from its parts (entries already encoded, 8 bytes each)."""
    hashes = [d.page_root(p) for p in payloads] if hashes is None else hashes
    head = HEADER.pack(b"DCAPARC\0", 1, d.id, 1 if overlay else 0, 0, content_len, PAGE, len(payloads),
                       len(backing) // 8, len(overlay) // 8, len(missing), PAGE + PAGE * len(payloads),
                       root if root is not None else bytes(32))
    buf = bytearray(PAGE)
    buf[:104] = head
    rehash_header(buf)
    for part in (*payloads, *hashes, *missing, backing, overlay):
        buf += part
    return buf


# ---------------------------------------------------------------------------------------------
# Running the CLI: one child at a time, polled for its peak memory, timed out, signalled.
# ---------------------------------------------------------------------------------------------


class Result:
    def __init__(self, shown, rc, out, err, peak, hang, mem_killed, elapsed):
        self.shown, self.rc, self.out, self.err = shown, rc, out, err
        self.peak, self.hang, self.mem_killed, self.elapsed = peak, hang, mem_killed, elapsed

    @property
    def cmd(self) -> str:
        return shlex.join(self.shown)

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    @property
    def err_lines(self) -> list:
        return self.err.decode("utf-8", "replace").splitlines()


def proc_memory(pid: int) -> tuple:
    """(VmRSS, VmHWM) in bytes of a live process; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * KiB
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * KiB
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


class Runner:
    """Runs `datacap ARGS` and measures it.

    The peak memory is the child's ru_maxrss from os.wait4 when that exceeds this process's own
    peak (a freshly forked or vforked child inherits its parent's high-water mark, so below that
    the figure says nothing); otherwise the VmHWM polled from /proc while it ran. A child whose
    RSS passes the guard is killed (a runaway, reported as such)."""

    def __init__(self, cli, shown_cli, env, timeout, mem_checks, guard, tmpdir):
        self.cli, self.shown_cli, self.env = cli, shown_cli, env
        self.timeout, self.mem_checks, self.guard, self.tmpdir = timeout, mem_checks, guard, tmpdir

    def run(self, args, cwd, stdin=None, stdout="capture", timeout=None, guard=None, signal_after=None) -> Result:
        args = [str(a) for a in args]
        argv, shown = [self.cli] + args, [self.shown_cli] + args
        if stdout == "closed":
            wrap = ["/bin/sh", "-c", 'exec 1>&-; exec "$@"', "sh"]
            argv, shown = wrap + argv, wrap + shown
        timeout = timeout or self.timeout
        guard = min(guard or self.guard, self.guard)
        out_f = tempfile.TemporaryFile(dir=self.tmpdir)
        err_f = tempfile.TemporaryFile(dir=self.tmpdir)
        in_f = open(stdin, "rb") if isinstance(stdin, str) else subprocess.DEVNULL
        out_target = {"capture": out_f, "closed": None}.get(stdout, stdout)
        own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KiB
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, env=self.env, stdin=in_f, stdout=out_target, stderr=err_f,
                                start_new_session=True)
        hang = mem_killed = sent = False
        hwm, pause = 0, 0.0005
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            elapsed = time.monotonic() - t0
            rss, h = proc_memory(proc.pid)
            hwm = max(hwm, h)
            if rss > guard and not mem_killed:
                mem_killed = True
                self._kill(proc.pid)
            if signal_after and not sent and elapsed >= signal_after[1]:
                sent = True
                try:
                    os.kill(proc.pid, signal_after[0])
                except ProcessLookupError:
                    pass
            if elapsed > timeout and not hang:
                hang = True
                self._kill(proc.pid)
            if hang or mem_killed:
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.01)
        elapsed = time.monotonic() - t0
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc
        if in_f is not subprocess.DEVNULL:
            in_f.close()
        maxrss = usage.ru_maxrss * KiB
        peak = maxrss if maxrss > own_peak else hwm
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
        out_f.close()
        err_f.close()
        return Result(shown, rc, out, err, peak, hang, mem_killed, elapsed)

    @staticmethod
    def _kill(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def mem_bound(*paths, extra=0) -> int:
    """The issue's bound for commands reading these inputs: 64 MiB + 64 x their size."""
    total = 0
    for p in paths:
        try:
            total += os.stat(p).st_size
        except OSError:
            pass
    return BASE_BOUND + 64 * total + extra


# ---------------------------------------------------------------------------------------------
# Bookkeeping: cases, checks, failures.
# ---------------------------------------------------------------------------------------------


class Suite:
    def __init__(self, args, runner, workdir):
        self.args, self.runner, self.workdir = args, runner, workdir
        self.passed = self.failed = 0
        self.failures = []
        self.printed = {}
        self.log = open(os.path.join(workdir, "failures.txt"), "w")
        self._store_verify = None

    def store_has_verify(self) -> bool:
        if self._store_verify is None:
            r = self.runner.run(["store", "--help"], cwd=self.workdir)
            self._store_verify = bool(re.search(r"^\s+verify\b", r.text + r.err.decode(errors="replace"), re.M))
        return self._store_verify

    def record(self, case, what, problem, res=None):
        self.failed += 1
        case.failed = True
        f = {"class": case.cls, "case": case.index, "what": what, "problem": problem, "dir": case.dir,
             "stderr": (res.err_lines[:2] if res is not None else [])}
        self.failures.append(f)
        text = (f"FAIL seed={self.args.seed} class={case.cls} case={case.index}: {problem}\n"
                f"  command: {what}\n  inputs:  {case.dir}/\n")
        if f["stderr"]:
            text += "  stderr:  " + " | ".join(s[:300] for s in f["stderr"]) + "\n"
        text += (f"  rerun:   python3 {sys.argv[0]} --cli {self.args.cli} --seed {self.args.seed}"
                 f" --only {case.cls} --case {case.index}\n")
        self.log.write(text)
        self.log.flush()
        n = self.printed.get(case.cls, 0)
        self.printed[case.cls] = n + 1
        if n < self.args.max_print:
            print(text, end="", flush=True)
        elif n == self.args.max_print:
            print(f"  ({case.cls}: further failures only in {self.log.name})", flush=True)


class Case:
    """One generated case: its own directory and random generator; checks count one each."""

    def __init__(self, suite, cls, index, seed, directory, shared):
        self.suite, self.cls, self.index, self.seed, self.dir = suite, cls, index, seed, directory
        self.rng = random.Random(seed)
        self.shared = shared
        self.failed = False
        os.makedirs(directory, exist_ok=True)

    def path(self, name) -> str:
        return os.path.join(self.dir, name)

    def run(self, args, **kw) -> Result:
        return self.suite.runner.run(args, cwd=self.dir, **kw)

    def check(self, ok, what, problem, res=None) -> bool:
        if ok:
            self.suite.passed += 1
        else:
            self.suite.record(self, what, problem, res)
        return bool(ok)

    def expect(self, res, codes, names=(), bound=None, diff=False, field=None, lines=True) -> bool:
        """The promises every command keeps, plus the exit codes this one may use.

        codes: allowed exit statuses. names: paths of which the error line must name one.
        bound: peak memory bound in bytes. diff: diff's convention (0 equal, 1 differ, 2 error).
        field: a word the error line must contain. lines: check the one-error-line rule."""
        problems = []
        if res.hang:
            problems.append(f"hang: still running after {self.suite.runner.timeout if res.elapsed < 1e9 else 0:.0f}+ s (killed)")
        elif res.mem_killed:
            problems.append(f"memory runaway: RSS passed {res.peak / MiB:.0f}+ MiB (killed; guard "
                            f"{min(bound or 1 << 62, self.suite.runner.guard) / MiB:.0f} MiB)")
        elif res.rc < 0:
            problems.append(f"killed by signal {signal.Signals(-res.rc).name}")
        elif res.rc not in codes:
            problems.append(f"exit {res.rc}, expected {'/'.join(map(str, sorted(codes)))}")
        if not (res.hang or res.mem_killed or res.rc < 0):
            is_error = res.rc == 2 if diff else res.rc != 0
            if is_error and lines:
                el = res.err_lines
                if len(el) != 1:
                    problems.append(f"{len(el)} lines on stderr, expected exactly one error line")
                elif not el[0].startswith(ERROR_PREFIX):
                    problems.append(f"stderr line does not start with '{ERROR_PREFIX}'")
                else:
                    if names and not any(n in el[0] for n in names):
                        problems.append(f"error line does not name {names[0]}")
                    if field and field not in el[0]:
                        problems.append(f"error line does not name the field '{field}'")
            elif not is_error and ERROR_PREFIX.encode() in res.err:
                problems.append(f"exit {res.rc} but an error line on stderr")
            if diff and res.rc == 0 and res.out.strip():
                problems.append("diff exit 0 (equal) but it printed differences")
            if diff and res.rc == 1 and not res.out.strip():
                problems.append("diff exit 1 (differ) but it printed no differences")
        if bound and self.suite.runner.mem_checks and not res.mem_killed and res.peak > bound:
            problems.append(f"peak memory {res.peak / MiB:.1f} MiB > bound {bound / MiB:.1f} MiB")
        if problems:
            return self.check(False, res.cmd, "; ".join(problems), res)
        return self.check(True, res.cmd, "")


# ---------------------------------------------------------------------------------------------
# Generators and file helpers.
# ---------------------------------------------------------------------------------------------


def random_content(rng, size, zero=0.25, dup=0.1) -> bytes:
    """Random bytes with all-zero pages, repeated pages and pages with zero tails."""
    pages, stored = [], []
    for _ in range(-(-size // PAGE)):
        r = rng.random()
        if r < zero:
            pages.append(bytes(PAGE))
        elif r < zero + dup and stored:
            pages.append(rng.choice(stored))
        else:
            n = PAGE if rng.random() < 0.7 else rng.randrange(1, PAGE + 1)
            p = rng.randbytes(n).ljust(PAGE, b"\0")
            if p.count(0) == PAGE:
                p = b"\1" + p[1:]
            pages.append(p)
            stored.append(p)
    return b"".join(pages)[:size]


def write(path, data) -> str:
    with open(path, "wb") as fh:
        fh.write(data)
    return path


def padded(data: bytes, size: int = 0) -> bytes:
    return data.ljust(cap_size(len(data), size), b"\0")


def sha_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def compare_file(path, pages: dict, size: int) -> str | None:
    """None when the file is exactly `size` bytes: `pages` (index -> 4096 bytes) and zeros."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f"output missing: {e.strerror}"
    if not stat.S_ISREG(st.st_mode):
        return "output is not a regular file"
    if st.st_size != size:
        return f"output is {st.st_size} bytes, expected {size}"
    with open(path, "rb") as fh:
        for off in range(0, size, MiB):
            chunk = fh.read(min(MiB, size - off))
            want = bytearray(len(chunk))
            for i in range(off // PAGE, (off + len(chunk)) // PAGE):
                if i in pages:
                    at = i * PAGE - off
                    want[at:at + PAGE] = pages[i]
            if chunk != want:
                bad = next(i for i in range(len(chunk)) if chunk[i] != want[i])
                return f"output differs from the expected bytes at offset {off + bad}"
    return None


def tmp_leftovers(*dirs) -> list:
    out = []
    for d in dirs:
        try:
            out += [os.path.join(d, n) for n in os.listdir(d) if ".tmp-" in n]
        except OSError:
            pass
    return out


def first_line(res) -> str:
    return res.text.split("\n", 1)[0].strip()


def parse_json(res):
    try:
        return json.loads(res.out)
    except ValueError:
        return None


def pack(case, src, out, digest=None, what="setup: pack"):
    """Packs with the CLI; returns the info JSON or None (a failure is recorded)."""
    args = ["pack", src, "-o", out] + (["--digest", digest] if digest else [])
    r = case.run(args)
    if not case.expect(r, {0}, names=[src]):
        return None
    info = parse_json(r)
    case.check(isinstance(info, dict) and HEX64.fullmatch(str(info.get("root", ""))), r.cmd,
               "pack printed no JSON info with a root", r)
    return info if isinstance(info, dict) else None


def store_put(case, files, db):
    r = case.run(["store", "put", *files, "--db", db])
    if not case.expect(r, {0}, names=list(files) + [db]):
        return None
    roots = r.text.split()
    if not case.check(len(roots) == len(files) and all(HEX64.fullmatch(x) for x in roots), r.cmd,
                      f"store put printed {r.text!r}, expected {len(files)} roots", r):
        return None
    return roots


# ---------------------------------------------------------------------------------------------
# Case classes.
# ---------------------------------------------------------------------------------------------

BAD_NUMBER_FIXED = ["-1", "18446744073709551616", "1e3", "12abc", "1.5", "-0.5", "1e30", "abc", "",
                    "4096.0", "inf", "nan", "-inf", "+-1", "--1", "1-", "9" * 25, "99999999999999999999",
                    "340282366920938463463374607431768211456", "1,000", "12 abc", "0.0"]


def bad_number(rng) -> str:
    return rng.choice([
        lambda: rng.choice(BAD_NUMBER_FIXED),
        lambda: "-" + str(rng.randrange(1, 1 << 64)),
        lambda: str((1 << 64) + rng.randrange(1 << 80)),
        lambda: f"{rng.randrange(10 ** 9)}.{rng.randrange(1, 10)}",
        lambda: f"{rng.randrange(1, 10)}e{rng.randrange(1, 30)}",
        lambda: str(rng.randrange(1, 10 ** 6)) + rng.choice(["k", "K", "M", "abc", "x", "_", "."]),
    ])()


def numbers(case: Case):
    """Usage errors: --size/--page values that are not whole numbers 0..2^64-1 (negative, too
    big, float, scientific, trailing junk), unknown options and commands, bad or contradictory
    --digest, missing required options -> exit 2 with one `datacap: error:` line, and no work
    done (no output file, no store created)."""
    rng = case.rng
    f = write(case.path("f"), random_content(rng, rng.randrange(1, 30000)))
    a = case.path("a.dcar")
    if pack(case, f, a) is None:
        return
    out, db = case.path("out"), case.path("db")
    for _ in range(4):
        v = bad_number(rng)
        form = rng.randrange(12)
        if form == 0:
            args = ["root", f, "--size", v]
        elif form == 1:
            args = ["pack", f, "-o", out, "--size", v]
        elif form == 2:
            args = ["proof", f, "--page", "0", "--size", v]
        elif form == 3:
            args = ["store", "put", f, "--db", db, "--size", v]
        elif form == 4:
            args = ["proof", rng.choice([f, a]), "--page", v]
        elif form == 5:
            args = ["root", "--archive", a, "--size", v]
        elif form == 6:
            base = rng.choice([["root", f], ["info", a], ["verify", a], ["unpack", a, "-o", out],
                               ["diff", f, a], ["store", "ls", "--db", db]])
            args = base + [rng.choice(["--bogus", "-z", "--size-", f"--x{rng.randrange(999)}"])]
        elif form == 7:
            args = rng.choice([["root", f], ["pack", f, "-o", out]]) + ["--digest", rng.choice(
                ["md5", "sha512", "SHA256", "", "blake2b", "sha256 "])]
        elif form == 8:
            d1, d2 = rng.sample(["sha256", "blake2b256"], 2)
            args = rng.choice([["root", f], ["pack", f, "-o", out]]) + ["--digest", d1, "--digest", d2]
        elif form == 9:
            args = rng.choice([["proof", f], ["unpack", a], ["store", "get", "00" * 32, "-o", out],
                               ["diff", f], ["pack", f], ["store", "put", f]])
        elif form == 10:
            args = [rng.choice(["frob", "roots", "Root", "packk"]), f]
        else:
            args = ["store", rng.choice(["frob", "list", "rm"]), "--db", db]
        r = case.run(args)
        case.expect(r, {2})
        case.check(not os.path.lexists(out) and not tmp_leftovers(case.dir), r.cmd,
                   "a usage error left an output file behind", r)
        case.check(not os.path.lexists(db), r.cmd, "a usage error created the store directory", r)
    # Out of range but well formed: beyond 2^32 pages. An error (1 or 2), one line.
    r = case.run(["root", f, "--size", str((1 << 44) + rng.randrange(1, 1 << 50))])
    case.expect(r, {1, 2})


FIELD_VALUES = ["3002368.7", "-1", "-4096", "1e30", '"4096"', str(1 << 64), str((1 << 64) + 4096), "1.5",
                "true", "null", "[]", "{}", "-9223372036854775808", "18446744073709551615", '""', "1e3",
                str(1 << 70), "0.5"]


def proofs(case: Case):
    """verify-proof against proofs nobody printed: integer fields of the wrong type or range
    (float, negative, 1e30, string, > 2^64) -> exit 1 or 2 naming the field; hashes, sizes and
    indices changed -> never "valid" unless the proof still holds (a Python verifier decides);
    truncated, random and deeply nested JSON -> an error; /dev/zero and 100 MiB files -> an error
    in bounded memory (< 64 MiB + 8 MiB). Also checks `proof` itself: it prints a proof that
    holds for `root FILE`."""
    rng, shared = case.rng, case.shared
    if "big" not in shared:  # once per class: inputs that must not be slurped
        shared["big"] = True
        bound = BASE_BOUND + 8 * MiB
        r = case.run(["verify-proof", "/dev/zero"], guard=bound + 16 * MiB)
        case.expect(r, {1, 2}, names=["/dev/zero"], bound=bound)
        case.check("valid" not in first_line(r).replace("invalid", ""), r.cmd, "said valid", r)
        for kind in ("zeros", "string", "nesting", "spaces"):
            p = case.path(f"big-{kind}.json")
            with open(p, "wb") as fh:
                if kind == "zeros":
                    fh.truncate(100 * MiB)
                else:
                    lead, fill = {"string": (b'{"root": "', b"a"), "nesting": (b"", b"["),
                                  "spaces": (b"", b" ")}[kind]
                    fh.write(lead)
                    for _ in range(100):
                        fh.write(fill * MiB)
            r = case.run(["verify-proof", p], guard=bound + 16 * MiB)
            case.expect(r, {1, 2}, names=[p], bound=bound)
            os.unlink(p)
    # A real proof to start from.
    size = rng.choice([rng.randrange(1, 3 * PAGE), rng.randrange(1, 200 * PAGE), 3002368 - rng.randrange(PAGE)])
    data = random_content(rng, size)
    f = write(case.path("f"), data)
    pc = cap_size(size) // PAGE
    index = rng.choice([0, pc - 1, rng.randrange(pc)])
    r = case.run(["proof", f, "--page", index])
    if not case.expect(r, {0}, names=[f]):
        return
    obj = parse_json(r)
    want_root = root_of_pages("sha256", cap_size(size), pages_of(data))
    if not case.check(isinstance(obj, dict) and proof_problem(obj) is None and obj.get("root") == want_root, r.cmd,
                      f"proof does not hold or is not for the file's root {want_root[:16]}..: "
                      f"{proof_problem(obj) if isinstance(obj, dict) else 'not JSON'}", r):
        return
    p = case.path("proof.json")

    def verify(text, expect_valid, codes=None, field=None, extra=(), stdin=False):
        write(p, text.encode() if isinstance(text, str) else text)
        args = ["verify-proof", "-" if stdin else p, *extra]
        res = case.run(args, stdin=p if stdin else None)
        bad_option = codes == {2}  # a malformed --root: a usage error about the option, not the file
        said_valid = first_line(res).startswith("valid")
        if expect_valid:
            case.expect(res, {0}, names=[p])
            case.check(said_valid, res.cmd, "a proof that holds was not reported valid", res)
        else:
            ok = case.expect(res, codes or {1, 2}, names=[] if stdin or bad_option else [p], field=field)
            if ok:
                case.check(not said_valid and res.rc != 0, res.cmd, "an altered proof was reported valid", res)

    kind = rng.randrange(8)
    if kind == 0:  # an integer field of the wrong type or out of range
        fld = rng.choice(["size", "page_index", "depth", "gindex"])
        val = rng.choice(FIELD_VALUES)
        text = json.dumps(dict(obj, **{fld: "@@V@@"})).replace('"@@V@@"', val)
        verify(text, False, field=fld)
    elif kind == 1:  # hashes altered
        o = json.loads(json.dumps(obj))
        what = rng.randrange(7)
        if what == 0:
            o["root"] = rng.randbytes(32).hex()
        elif what == 1:
            o["leaf"] = rng.randbytes(32).hex()
        elif what == 2:
            k = rng.randrange(len(o["branch"]))
            b = bytearray.fromhex(o["branch"][k])
            bit = rng.randrange(256)
            b[bit // 8] ^= 1 << (bit % 8)
            o["branch"][k] = b.hex()
        elif what == 3:
            del o["branch"][rng.randrange(len(o["branch"]))]
        elif what == 4:
            o["branch"].insert(rng.randrange(len(o["branch"]) + 1), rng.randbytes(32).hex())
        elif what == 5:
            o["branch"].reverse()
        else:
            o["leaf"], o["root"] = o["root"], o["leaf"]
        verify(json.dumps(o), proof_problem(o) is None)
    elif kind == 2:  # other sizes and indices, depth and gindex made consistent
        o = json.loads(json.dumps(obj))
        if rng.random() < 0.5:
            o["page_index"] = rng.randrange(pc)
        else:
            o["size"] = rng.choice([o["size"] + PAGE, max(PAGE, o["size"] - PAGE), o["size"] * 2,
                                    PAGE * rng.randrange(1, 1 << 20)])
            if rng.random() < 0.5:
                o["branch"][-1] = size_root(o["size"]).hex()
            o["page_index"] = min(o["page_index"], o["size"] // PAGE - 1)
        dd = depth_of(o["size"] // PAGE)
        o["depth"], o["gindex"] = dd, 3 * (1 << dd) + o["page_index"]
        verify(json.dumps(o), proof_problem(o) is None)
    elif kind == 3:  # --root
        choice = rng.randrange(3)
        if choice == 0:
            verify(json.dumps(obj), True, extra=["--root", obj["root"]])
        elif choice == 1:
            verify(json.dumps(obj), False, extra=["--root", rng.randbytes(32).hex()])
        else:
            verify(json.dumps(obj), False, codes={2},
                   extra=["--root", rng.choice(["xyz", obj["root"][:63], obj["root"] + "0", "", "g" * 64])])
    elif kind == 4:  # not a proof at all
        text = json.dumps(obj)
        how = rng.randrange(6)
        if how == 0:
            text = text[:rng.randrange(len(text))]
        elif how == 1:
            text = rng.randbytes(rng.randrange(1, 2000))
        elif how == 2:
            n = rng.randrange(1000, 300000)
            text = rng.choice(["[", '{"a":', "[{\"b\":"]) * n
        elif how == 3:
            text = rng.choice(["[]", "42", '"x"', "null", "", "[" + text + "]"])
        elif how == 4:
            text = text.replace('"branch"', '"branch": "x", "b"', 1)
        else:
            text = json.dumps(dict(obj, branch={"0": obj["branch"][0]}))
        verify(text, False)
    elif kind == 5:  # a required field missing
        fld = rng.choice(["root", "size", "page_index", "depth", "gindex", "leaf", "branch"])
        o = dict(obj)
        del o[fld]
        verify(json.dumps(o), False, field=fld)
    elif kind == 6:  # unchanged, through standard input
        verify(json.dumps(obj), True, stdin=True)
    else:  # unchanged
        verify(json.dumps(obj), True)


class SparseFile:
    """A file described by its size and data extents; written sparse or dense."""

    def __init__(self, size, extents):
        self.size, self.extents = size, extents

    def pages(self) -> dict:
        pages = {}
        for off, data in self.extents:
            for i in range(off // PAGE, -(-(off + len(data)) // PAGE)):
                page = pages.setdefault(i, bytearray(PAGE))
                lo, hi = max(off, i * PAGE), min(off + len(data), (i + 1) * PAGE)
                page[lo - i * PAGE:hi - i * PAGE] = data[lo - off:hi - off]
        return {i: bytes(p) for i, p in pages.items() if i * PAGE < self.size and p.count(0) != PAGE}

    def write_sparse(self, path, size=None):
        with open(path, "wb") as fh:
            for off, data in self.extents:
                fh.seek(off)
                fh.write(data)
            fh.truncate(self.size if size is None else size)

    def write_dense(self, path):
        with open(path, "wb") as fh:
            for off in range(0, self.size, MiB):
                fh.write(bytes(min(MiB, self.size - off)))
            for off, data in self.extents:
                fh.seek(off)
                fh.write(data)


def sparse(case: Case):
    """Sparse files, most ending in a hole with a partial last page (`truncate -s 5000`,
    `printf a; truncate -s 10000`, random extents): `root` finishes and equals the root of the
    dense copy (and of the Python model); `pack` finishes, the archive unpacks to the bytes padded
    to a page; `--size` beyond the file equals the root of the file zero-extended; `diff`, `proof`
    and `store put`/`get` agree."""
    rng = case.rng
    kind = rng.randrange(5)
    big = rng.random() < 0.1
    size = rng.randrange(1, (64 if big else 4) * MiB)
    if kind == 0:
        sf = SparseFile(rng.choice([5000, 4097, 1, size]), [])
    elif kind == 1:
        sf = SparseFile(rng.choice([10000, 8193, size]), [(0, b"a")])
    elif kind == 2:  # data right up to a partial last page
        n = rng.randrange(1, 3 * PAGE)
        sf = SparseFile(size, [(max(0, size - n), rng.randbytes(min(n, size)))])
    else:
        ext = []
        for _ in range(rng.randrange(1, 9)):
            n = rng.randrange(1, 20000)
            off = rng.randrange(size)
            ext.append((off, rng.randbytes(min(n, size - off))))
        sf = SparseFile(size, ext)
    size = sf.size
    f, dense = case.path("f"), case.path("dense")
    sf.write_sparse(f)
    sf.write_dense(dense)
    pages = sf.pages()
    csize = cap_size(size)
    want = root_of_pages("sha256", csize, pages)
    r1 = case.run(["root", f])
    r2 = case.run(["root", dense])
    if case.expect(r1, {0}, names=[f]) & case.expect(r2, {0}, names=[dense]):
        case.check(first_line(r1) == first_line(r2) == want, r1.cmd,
                   f"sparse root {first_line(r1)[:16]}.. dense root {first_line(r2)[:16]}.. model {want[:16]}..", r1)
    r = case.run(["root", f, "--digest", "blake2b256"])
    if case.expect(r, {0}, names=[f]):
        bw = root_of_pages("blake2b256", csize, pages)
        case.check(first_line(r) == bw, r.cmd, f"BLAKE2b root {first_line(r)[:16]}.. != model {bw[:16]}..", r)
    a, u = case.path("a.dcar"), case.path("u")
    info = pack(case, f, a)
    if info is not None:
        case.check(info.get("root") == want, "pack " + f, f"pack's root {info.get('root')} != {want}")
        r = case.run(["unpack", a, "-o", u])
        if case.expect(r, {0}, names=[a]):
            bad = compare_file(u, pages, csize)
            case.check(bad is None, r.cmd, f"unpack: {bad}", r)
        for other in (dense, a):
            r = case.run(["diff", f, other])
            case.expect(r, {0}, diff=True, names=[f, other])
    # --size beyond the file: the same as the file zero-extended.
    s2 = size + rng.choice([1, PAGE - 1, PAGE, rng.randrange(1, MiB), rng.randrange(1, 4 * GiB)])
    ext = case.path("ext")
    sf.write_sparse(ext, s2)
    want2 = root_of_pages("sha256", cap_size(s2), pages)
    r1 = case.run(["root", f, "--size", s2])
    r2 = case.run(["root", ext])
    if case.expect(r1, {0}, names=[f]) & case.expect(r2, {0}, names=[ext]):
        case.check(first_line(r1) == first_line(r2) == want2, r1.cmd,
                   f"--size root {first_line(r1)[:16]}.., extended file {first_line(r2)[:16]}.., model {want2[:16]}..", r1)
    os.unlink(ext)
    # A proof of some page, and the store.
    index = rng.choice([csize // PAGE - 1, rng.randrange(csize // PAGE)] + list(pages)[:1])
    r = case.run(["proof", f, "--page", index])
    if case.expect(r, {0}, names=[f]):
        o = parse_json(r)
        case.check(isinstance(o, dict) and proof_problem(o) is None and o.get("root") == want, r.cmd,
                   "the proof does not hold for the file's root", r)
    if size <= 8 * MiB:
        db, got = case.path("db"), case.path("got")
        roots = store_put(case, [f], db)
        if roots:
            case.check(roots[0] == want, "store put " + f, f"store put root {roots[0]} != {want}")
            r = case.run(["store", "get", roots[0], "--db", db, "-o", got])
            if case.expect(r, {0}, names=[db]):
                bad = compare_file(got, pages, csize)
                case.check(bad is None, r.cmd, f"store get: {bad}", r)


def archive_craft(case: Case, base: bytearray, content: bytes, digest: str):
    """Returns (bytes, expected) for a damaged or crafted archive. expected is None for a
    damaged one, else {"root", "pages", "size", "missing"} of the valid cap it describes."""
    rng, d = case.rng, DIGESTS[digest]
    orig = {"root": bytes(base[72:104]).hex(), "pages": pages_of(content), "size": cap_size(len(content)),
            "missing": False}
    m = bytearray(base)
    (_, _, _, _, _, content_len, _, payload_count, backing_count, overlay_count, missing_count,
     tables_offset, _) = HEADER.unpack_from(m)
    kind = rng.choice(["flip", "flip", "truncate", "append", "count", "content_len", "header", "root",
                       "digest", "entries", "payload", "valid", "valid", "overlay", "big"])
    case.kind = kind
    if kind == "flip":
        spots = []
        for _ in range(rng.randrange(1, 9)):
            region = rng.random()
            if region < 0.3:
                at = rng.randrange(PAGE)
            elif region < 0.6 and len(m) > tables_offset:
                at = rng.randrange(tables_offset, len(m))
            else:
                at = rng.randrange(len(m))
            m[at] ^= rng.randrange(1, 256)
            spots.append(at)
        return m, (orig if all(136 <= s < PAGE for s in spots) else None)
    if kind == "truncate":
        return m[:rng.randrange(len(m))], None
    if kind == "append":
        return m + rng.randbytes(rng.randrange(1, 10000)), None
    if kind == "count":
        at = rng.choice([32, 40, 48, 56])
        v = rng.choice([(1 << 31) - 1, 1 << 31, 1 << 32, (1 << 32) + 1, 1 << 63, (1 << 64) - 1,
                        content_len // PAGE, content_len // PAGE + 1, struct.unpack_from("<Q", m, at)[0] + 1,
                        rng.randrange(1 << 64)])
        struct.pack_into("<Q", m, at, v)
        if at == 32 and rng.random() < 0.7:
            struct.pack_into("<Q", m, 64, (PAGE + PAGE * v) % (1 << 64))
        if at == 48 and rng.random() < 0.7:
            m[13] = 1 if v else 0
        rehash_header(m)
        return m, None
    if kind == "content_len":
        v = rng.choice([0, PAGE - 1, PAGE + 1, max(0, content_len - PAGE), content_len + PAGE, 1 << 44,
                        (1 << 44) + PAGE, (1 << 64) - PAGE, 1 << 63])
        struct.pack_into("<Q", m, 16, v)
        rehash_header(m)
        return m, (dict(orig, root=None) if v == content_len else None)
    if kind == "header":
        what = rng.randrange(7)
        if what == 0:
            m[13] = rng.randrange(1, 256)
        elif what == 1:
            m[14 + rng.randrange(2)] = rng.randrange(1, 256)
        elif what == 2:
            struct.pack_into("<I", m, 8, rng.choice([0, 2, 0xFFFFFFFF]))
        elif what == 3:
            m[12] = rng.randrange(2, 256)
        elif what == 4:
            struct.pack_into("<Q", m, 24, rng.choice([0, 8192, 4095, 1 << 63]))
        elif what == 5:
            struct.pack_into("<Q", m, 64, rng.randrange(1 << 64))
        else:
            m[0:8] = rng.choice([b"DCAPARC\1", b"\0" * 8, b"DCAPAR\0\0"])
        rehash_header(m, m[12] if m[12] < 2 else d.id)
        return m, None
    if kind == "root":
        m[72:104] = rng.randbytes(32)
        rehash_header(m)
        return m, None
    if kind == "digest":
        m[12] ^= 1
        rehash_header(m)
        return m, None
    if kind == "entries":
        first = tables_offset + 32 * (payload_count + missing_count)
        n = backing_count + overlay_count
        if n == 0:
            return m[:-1], None
        k = rng.randrange(n)
        at = first + 8 * k
        what = rng.randrange(6)
        if what == 0 and n > 1:
            k2 = rng.randrange(n)
            a2 = first + 8 * k2
            m[at:at + 8], m[a2:a2 + 8] = m[a2:a2 + 8], m[at:at + 8]
            return m, (orig if k == k2 else None)
        if what == 1 and k > 0:
            m[at:at + 4] = m[at - 8:at - 4]
        elif what == 2:
            struct.pack_into("<I", m, at, rng.choice([content_len // PAGE, 0xFFFFFFFF, rng.randrange(1 << 32)]))
        elif what == 3:
            struct.pack_into("<I", m, at + 4, REF_ZERO)
        elif what == 4:
            struct.pack_into("<I", m, at + 4, rng.choice([payload_count, REF_MISSING | missing_count,
                                                          REF_MISSING | 0x7FFFFFFF, rng.randrange(1 << 32)]))
        else:
            m[at + rng.randrange(8)] ^= rng.randrange(1, 256)
        return m, (orig if m == base else None)
    if kind == "payload":
        if payload_count == 0:
            return m + b"\0", None
        i = rng.randrange(payload_count)
        at = PAGE + PAGE * i
        how = rng.randrange(3)
        if how == 0:  # payload changed and its recorded hash made to match: the root catches it
            m[at + rng.randrange(PAGE)] ^= rng.randrange(1, 256)
            h = d.page_root(bytes(m[at:at + PAGE]))
            m[tables_offset + 32 * i:tables_offset + 32 * i + 32] = h
        elif how == 1:  # an all-zero payload with a matching hash
            m[at:at + PAGE] = bytes(PAGE)
            m[tables_offset + 32 * i:tables_offset + 32 * i + 32] = d.page_root(bytes(PAGE))
        else:  # recorded hash wrong
            m[tables_offset + 32 * i + rng.randrange(32)] ^= rng.randrange(1, 256)
        return m, None
    # Crafted from scratch.
    if kind in ("valid", "overlay"):
        pc = rng.choice([1, 2, 3, 64, 65, 4096, rng.randrange(1, 1 << 14), rng.randrange(1, 1 << 20)])
        npay = rng.randrange(0 if pc else 1, min(pc, 40) + 1)
        payloads = []
        while len(payloads) < npay:
            p = rng.randbytes(rng.choice([PAGE, rng.randrange(1, PAGE)])).ljust(PAGE, b"\0")
            if p not in payloads and p.count(0) != PAGE:
                payloads.append(p)
        missing = [rng.randbytes(32) for _ in range(rng.randrange(3))] if rng.random() < 0.3 else []
        idx = sorted(rng.sample(range(pc), min(pc, rng.randrange(0, 200))))
        refs = [i for i in range(len(payloads))] + [REF_MISSING | k for k in range(len(missing))]
        backing = [(i, rng.choice(refs)) for i in idx] if refs else []
        overlay = []
        if kind == "overlay":
            oidx = sorted(rng.sample(range(pc), min(pc, rng.randrange(1, 50))))
            overlay = [(i, rng.choice(refs + [REF_ZERO])) for i in oidx]
        eff = {}
        for i, ref in backing + overlay:
            eff[i] = ref
        leaves, pages, has_missing = {}, {}, False
        for i, ref in eff.items():
            if ref == REF_ZERO:
                continue
            if ref & REF_MISSING:
                leaves[i] = missing[ref & ~REF_MISSING]
                has_missing = True
            else:
                leaves[i] = d.page_root(payloads[ref])
                pages[i] = payloads[ref]
        root = d.cap_root(pc * PAGE, leaves)
        buf = encode_archive(d, pc * PAGE, payloads, entries_bytes(backing), entries_bytes(overlay), missing, root)
        return buf, {"root": root.hex(), "pages": pages, "size": pc * PAGE, "missing": has_missing,
                     "big": pc * PAGE > 64 * MiB}
    # "big": 2^20 entries 4096 pages apart (correct root), or 200k random entries (stale root).
    payload = rng.randbytes(PAGE)
    if rng.random() < 0.5:
        n, stride = 1 << 20, 4096
        a = array.array("I", bytes(8 * n))
        a[0::2] = array.array("I", range(0, n * stride, stride))
        if sys.byteorder != "little":
            a.byteswap()
        h = d.page_root(payload)
        for k in range(12):
            h = d.h(h + d.zero[k])
        for _ in range(20):
            h = d.h(h + h)
        root = d.h(size_root(1 << 44) + h)
        buf = encode_archive(d, 1 << 44, [payload], a.tobytes(), root=root)
        return buf, {"root": root.hex(), "pages": None, "size": 1 << 44, "missing": False, "big": True}
    n = 200_000
    idx = sorted(rng.sample(range(1 << 32), n))
    payloads = [rng.randbytes(PAGE) for _ in range(4)]
    backing = entries_bytes((i, rng.randrange(4)) for i in idx)
    return encode_archive(d, 1 << 44, payloads, backing, root=rng.randbytes(32)), None


def archives(case: Case):
    """Damaged and crafted archives (random bit flips, truncation, appended bytes; headers with
    recomputed header hashes and huge counts, odd sizes, bad flags; entries out of order or out
    of range; payloads and hashes changed; valid crafted caps, dirty ones and ones with Missing
    pages; 2^20 entries 4096 pages apart; 200k sparse entries) through info, verify, unpack,
    root --archive, proof --page and diff: exit 0/1 only (diff: 0/1/2), one error line naming
    the archive, `verify` 0 only for a valid archive, the right root and bytes on success, and
    peak memory <= 64 MiB + 64 x the archive's size."""
    rng = case.rng
    digest = rng.choice(["sha256", "blake2b256"])
    content = random_content(rng, rng.randrange(1, 300 * KiB))
    f, a0 = write(case.path("f"), content), case.path("orig.dcar")
    if pack(case, f, a0, digest=digest) is None:
        return
    with open(a0, "rb") as fh:
        base = bytearray(fh.read())
    data, exp = archive_craft(case, base, content, digest)
    m = write(case.path("m.dcar"), data)
    bound = mem_bound(m)
    valid = exp is not None and exp.get("root") is not None
    big = exp is not None and exp.get("big")
    g = {"guard": bound + 16 * MiB}

    def ok(res, codes):
        """A valid cap too big for the memory bound may be refused up front (exit 1, naming the limit)."""
        if valid and res.rc == 1 and "limit" in res.err.decode(errors="replace"):
            return codes | {1}
        return codes

    r = case.run(["info", m], **g)
    case.expect(r, ok(r, {0} if valid else {0, 1}), names=[m], bound=bound)
    if r.rc == 0:
        case.check(isinstance(parse_json(r), dict), r.cmd, "info printed no JSON", r)
    r = case.run(["verify", m], **g)
    case.expect(r, ok(r, {0} if valid else {1}), names=[m], bound=bound)
    r = case.run(["root", "--archive", m], **g)
    if case.expect(r, ok(r, {0} if valid else {1}), names=[m], bound=bound) and valid and r.rc == 0:
        case.check(first_line(r) == exp["root"], r.cmd, f"root {first_line(r)[:16]}.. != {exp['root'][:16]}..", r)
    if not big:
        out = case.path("out")
        r = case.run(["unpack", m, "-o", out], **g)
        codes = ({1} if exp["missing"] else {0}) if valid else {1}
        if case.expect(r, ok(r, codes), names=[m], bound=bound) and r.rc == 0 and valid:
            bad = compare_file(out, exp["pages"], exp["size"])
            case.check(bad is None, r.cmd, f"unpack: {bad}", r)
        case.check(not tmp_leftovers(case.dir), r.cmd, "a *.tmp-* file was left behind", r)
        if os.path.exists(out):
            os.unlink(out)
    size = exp["size"] if exp else cap_size(len(content))
    page = rng.randrange(size // PAGE) if rng.random() < 0.8 else rng.randrange(1 << 32)
    r = case.run(["proof", m, "--page", page], **g)
    # A page past the end of an archive that opens fine is a usage error (2), damaged or not.
    past_end = r.rc == 2 and b"past the last page" in r.err
    if case.expect(r, ok(r, ({0} if page < size // PAGE else {1, 2}) if valid else ({0, 1, 2} if past_end else {0, 1})),
                   names=[m], bound=bound) \
            and r.rc == 0 and valid:
        o = parse_json(r)
        case.check(isinstance(o, dict) and proof_problem(o) is None and o.get("root") == exp["root"], r.cmd,
                   "the proof does not hold for the archive's root", r)
    if not big:
        r = case.run(["diff", m, a0], guard=mem_bound(m, a0) + 16 * MiB)
        same = valid and exp["pages"] == pages_of(content) and exp["size"] == cap_size(len(content))
        case.expect(r, {0} if same else {0, 1, 2}, diff=True, names=[m], bound=mem_bound(m, a0))


def digests(case: Case):
    """BLAKE2b-256 archives: `root --archive A` equals `root RAW --digest blake2b256` (and the
    model); `root --archive A --digest sha256` is refused with exit 2 or prints the SHA-256 root;
    `proof A --page I` prints a "digest" field and verify-proof says valid; info, verify, unpack
    and diff agree. The same for SHA-256 archives with --digest blake2b256."""
    rng = case.rng
    content = random_content(rng, rng.randrange(1, 400 * KiB))
    f = write(case.path("f"), content)
    csize, pages = cap_size(len(content)), pages_of(content)
    roots = {n: root_of_pages(n, csize, pages) for n in DIGESTS}
    digest = "blake2b256" if rng.random() < 0.7 else "sha256"
    other = "sha256" if digest == "blake2b256" else "blake2b256"
    a = case.path("a.dcar")
    info = pack(case, f, a, digest=digest)
    if info is None:
        return
    case.check(info.get("digest") == digest and info.get("root") == roots[digest], "pack " + a,
               f"pack printed digest {info.get('digest')} root {info.get('root')}, expected {digest} {roots[digest]}")
    r = case.run(["root", f, "--digest", digest])
    if case.expect(r, {0}, names=[f]):
        case.check(first_line(r) == roots[digest], r.cmd, f"{first_line(r)[:16]}.. != model {roots[digest][:16]}..", r)
    for extra in ([], ["--digest", digest]):
        r = case.run(["root", "--archive", a, *extra])
        if case.expect(r, {0}, names=[a]):
            case.check(first_line(r) == roots[digest], r.cmd,
                       f"root --archive printed {first_line(r)[:16]}.., the {digest} root is {roots[digest][:16]}..", r)
    r = case.run(["root", "--archive", a, "--digest", other])
    if case.expect(r, {0, 2}, names=[a]) and r.rc == 0:
        case.check(first_line(r) == roots[other], r.cmd,
                   f"printed {first_line(r)[:16]}.., not the {other} root {roots[other][:16]}..", r)
    r = case.run(["info", a])
    if case.expect(r, {0}, names=[a]):
        o = parse_json(r) or {}
        case.check(o.get("digest") == digest and o.get("root") == roots[digest], r.cmd, "info: wrong digest or root", r)
    r = case.run(["verify", a])
    case.expect(r, {0}, names=[a])
    page = rng.randrange(csize // PAGE)
    for src, dg in ((a, digest), (f, "sha256")):
        r = case.run(["proof", src, "--page", page])
        if not case.expect(r, {0}, names=[src]):
            continue
        o = parse_json(r)
        if not case.check(isinstance(o, dict) and o.get("digest") == dg, r.cmd,
                          f"the proof JSON has digest {o.get('digest') if isinstance(o, dict) else None!r}, expected {dg!r}", r):
            continue
        case.check(proof_problem(o) is None and o.get("root") == roots[dg], r.cmd,
                   f"the proof does not hold for the {dg} root: {proof_problem(o)}", r)
        p = write(case.path("proof.json"), r.out)
        v = case.run(["verify-proof", p])
        if case.expect(v, {0}, names=[p]):
            case.check(first_line(v).startswith("valid"), v.cmd, "verify-proof did not say valid", v)
    out = case.path("out")
    r = case.run(["unpack", a, "-o", out])
    if case.expect(r, {0}, names=[a]):
        bad = compare_file(out, pages, csize)
        case.check(bad is None, r.cmd, f"unpack: {bad}", r)
    r = case.run(["diff", a, f])
    case.expect(r, {0}, diff=True, names=[a, f])


def device_nodes(shared, directory) -> dict:
    """Private copies of /dev/null and /dev/full (mknod) in the case directory, so that a CLI
    that renames a temporary file over its output cannot replace the machine's /dev/null. Falls
    back to the real nodes only when that cannot harm them (not root)."""
    nodes = {}
    for name, minor in (("null", 3), ("full", 7)):
        p = os.path.join(directory, name)
        try:
            os.mknod(p, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
            fd = os.open(p, os.O_WRONLY)
            os.close(fd)
            nodes[name] = p
        except OSError:
            if os.path.lexists(p):
                os.unlink(p)
            if os.geteuid() != 0:
                nodes[name] = f"/dev/{name}"
    return nodes


class FifoDrain(threading.Thread):
    """Reads a FIFO until told to stop (opened non-blocking, so the writer never waits for us)."""

    def __init__(self, path, limit):
        super().__init__(daemon=True)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data, self.total, self.limit = bytearray(), 0, limit
        self.done = threading.Event()

    def run(self):
        while True:
            chunk = None
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    chunk = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    chunk = None
                if chunk:
                    self.total += len(chunk)
                    if len(self.data) < self.limit:
                        self.data += chunk
                    continue
            if self.done.is_set():
                break
            if chunk == b"":
                time.sleep(0.005)
        os.close(self.fd)


def outputs(case: Case):
    """Outputs that are not regular files, for `unpack A -o` and `store get R --db D -o`: a
    character device like /dev/null (a private mknod copy), a FIFO drained by a reader thread
    (gets the full bytes), a symlink to a regular file (stays a symlink, the target gets the
    bytes), a /dev/full copy (exit 1, the error says no space), and "" (an error before any
    work). Afterwards each node has its type and no `*.tmp-*` file is left."""
    rng = case.rng
    content = random_content(rng, rng.randrange(1, 600 * KiB))
    f = write(case.path("f"), content)
    csize = cap_size(len(content))
    want = padded(content)
    a, db = case.path("a.dcar"), case.path("db")
    if pack(case, f, a) is None:
        return
    roots = store_put(case, [f], db)
    if not roots:
        return
    nodes = device_nodes(case.shared, case.dir)
    for _ in range(3):
        target = rng.choice(["null", "full", "fifo", "symlink", "symlink", "empty"])
        cmd = rng.choice(["unpack", "get"])
        sub = os.path.join(case.dir, f"t{rng.randrange(1 << 30)}")
        os.makedirs(sub)
        drain = None
        link_target = None
        if target in ("null", "full"):
            if target not in nodes:
                continue
            out = nodes[target]
        elif target == "fifo":
            out = os.path.join(sub, "fifo")
            os.mkfifo(out)
            drain = FifoDrain(out, len(want) + MiB)
            drain.start()
        elif target == "symlink":
            os.makedirs(os.path.join(sub, "t"))
            link_target = os.path.join(sub, "t", "target")
            write(link_target, b"old content\n")
            out = os.path.join(sub, "link")
            os.symlink("t/target" if rng.random() < 0.5 else link_target, out)
        else:
            out = ""
        before = os.lstat(out) if out else None
        link_before = os.readlink(out) if target == "symlink" else None
        listing = sorted(os.listdir(case.dir))
        args = ["unpack", a, "-o", out] if cmd == "unpack" else ["store", "get", roots[0], "--db", db, "-o", out]
        r = case.run(args)
        if drain:
            drain.done.set()
            drain.join(10)
        # A seekable character device holds no content, so the cap's zero pages are not written
        # to it: an all-zero cap writes nothing to /dev/full and succeeds.
        if target == "full" and not any(want):
            case.expect(r, {0, 1}, names=[out])
        elif target == "full":
            if case.expect(r, {1}, names=[out]):
                case.check("no space" in r.err.decode(errors="replace").lower(), r.cmd,
                           "the error line does not say there is no space", r)
        elif target == "empty":
            case.expect(r, {1, 2})
            case.check(sorted(os.listdir(case.dir)) == listing, r.cmd, "-o '' created files", r)
        else:
            case.expect(r, {0}, names=[out])
        if out:
            try:
                after = os.lstat(out)
                same = stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_rdev == before.st_rdev
            except OSError:
                same = False
            case.check(same, r.cmd, f"the output node ({target}) was replaced or removed", r)
            if target == "symlink" and same:
                case.check(os.readlink(out) == link_before, r.cmd, "the symlink now points elsewhere", r)
        left = tmp_leftovers(case.dir, sub, os.path.join(sub, "t"), os.path.dirname(out) or case.dir)
        case.check(not left, r.cmd, f"left {', '.join(os.path.basename(x) for x in left)}", r)
        if r.rc == 0 and target == "fifo":
            case.check(drain.total == len(want) and bytes(drain.data) == want, r.cmd,
                       f"the FIFO reader got {drain.total} bytes, expected the {len(want)}-byte content", r)
        if r.rc == 0 and target == "symlink":
            bad = compare_file(link_target, pages_of(content), csize)
            case.check(bad is None, r.cmd, f"symlink target: {bad}", r)
        if not left and os.path.isdir(sub):
            shutil.rmtree(sub)


def stdout_errors(case: Case):
    """Standard output that cannot be written: redirected to /dev/full -> exit 1 and one error
    line; closed -> non-zero and one error line. Inputs (file, archives, store) are unchanged
    afterwards (a closed fd 1 must not make the CLI write into a file it opened)."""
    rng = case.rng
    f = write(case.path("f"), random_content(rng, rng.randrange(1, 200 * KiB)))
    g = write(case.path("g"), random_content(rng, rng.randrange(PAGE + 1, 200 * KiB)))
    a, b, db = case.path("a.dcar"), case.path("b.dcar"), case.path("db")
    if pack(case, f, a) is None or pack(case, g, b) is None or not store_put(case, [f], db):
        return
    sums = {p: sha_file(p) for p in (f, g, a, b)}
    for _ in range(3):
        cmd = rng.choice([["root", f], ["info", a], ["verify", a], ["diff", a, b], ["proof", f, "--page", 0],
                          ["store", "ls", "--db", db], ["root", "--archive", a], ["pack", f, "-o", case.path("p.dcar")]])
        mode = rng.choice(["full", "closed"])
        if mode == "full":
            with open("/dev/full", "wb") as full:
                r = case.run(cmd, stdout=full)
            case.expect(r, {2} if cmd[0] == "diff" else {1}, diff=cmd[0] == "diff")
        else:
            r = case.run(cmd, stdout="closed")
            case.expect(r, {2} if cmd[0] == "diff" else {1, 2}, diff=cmd[0] == "diff")
        changed = [p for p, s in sums.items() if sha_file(p) != s]
        case.check(not changed, r.cmd, f"the command changed its input {', '.join(changed)}", r)
        ls = case.run(["store", "ls", "--db", db])
        if case.expect(ls, {0}, names=[db]):
            case.check(len(ls.text.split("\n")) >= 1 and HEX64.match(ls.text), r.cmd, "the store no longer lists its cap", ls)


class Mutator(threading.Thread):
    """Rewrites a file in place with random bytes, or truncates and regrows it, until stopped."""

    def __init__(self, path, seed, mode, delay):
        super().__init__(daemon=True)
        self.path, self.rng, self.mode, self.delay = path, random.Random(seed), mode, delay
        self.size = os.stat(path).st_size
        self.stop = threading.Event()

    def run(self):
        if self.stop.wait(self.delay):
            return
        fd = os.open(self.path, os.O_RDWR)
        try:
            while not self.stop.is_set():
                rng = self.rng
                if self.mode == "rewrite":
                    off = rng.randrange(max(1, self.size))
                    os.pwrite(fd, rng.randbytes(min(rng.randrange(1, 65536), max(1, self.size - off))), off)
                else:
                    os.ftruncate(fd, rng.randrange(max(1, self.size)))
                    time.sleep(rng.uniform(0, 0.003))
                    os.ftruncate(fd, self.size)
                time.sleep(rng.uniform(0, 0.002))
        finally:
            os.close(fd)


def races(case: Case):
    """A file rewritten in place or truncated and regrown while store put, root, pack, proof,
    diff, verify, unpack and root --archive read it: never a signal; exit 0 with a
    self-consistent result (a packed archive verifies, a proof holds, an unpacked or --archive
    root is the archive's recorded one) or exit 1 naming the file. Every root `store put`
    printed can be got back (and `root` of it is that root); `store verify` passes."""
    rng = case.rng
    size = rng.choice([64 * KiB, 256 * KiB, MiB, 4 * MiB]) + rng.randrange(PAGE)
    f = write(case.path("f"), random_content(rng, size))
    g = write(case.path("g"), random_content(rng, rng.randrange(1, 256 * KiB)))
    op = rng.choice(["store put", "root", "pack", "proof", "diff", "verify", "unpack", "root --archive"])
    mode = rng.choice(["rewrite", "truncate"])
    a, db, out = case.path("a.dcar"), case.path("db"), case.path("out")
    target, a_root = f, None
    if op in ("verify", "unpack", "root --archive"):
        info = pack(case, f, a)
        if info is None:
            return
        target, a_root = a, info.get("root")
    args = {"store put": ["store", "put", f] + ([g] if rng.random() < 0.5 else []) + ["--db", db],
            "root": ["root", f], "pack": ["pack", f, "-o", out], "proof": ["proof", f, "--page", rng.randrange(size // PAGE)],
            "diff": ["diff", f, g], "verify": ["verify", a], "unpack": ["unpack", a, "-o", out],
            "root --archive": ["root", "--archive", a]}[op]
    mut = Mutator(target, rng.getrandbits(64), mode, rng.uniform(0, 0.03))
    mut.start()
    try:
        r = case.run(args)
    finally:
        mut.stop.set()
        mut.join()
    codes = {0, 1, 2} if op == "diff" else {0, 1}
    if op == "proof" and r.rc == 2 and "--page" in r.err.decode(errors="replace"):
        codes = {2}  # the file shrank under the command: its --page is now past the end (a usage error)
    if not case.expect(r, codes, names=[target], diff=op == "diff"):
        if op != "store put":
            return
    case.check(not tmp_leftovers(case.dir), r.cmd, "a *.tmp-* file was left behind", r)
    if op == "store put":
        roots = [x for x in r.text.split() if HEX64.fullmatch(x)]
        for root in roots:
            got = case.path("got")
            gr = case.run(["store", "get", root, "--db", db, "-o", got])
            if case.expect(gr, {0}, names=[db]):
                rr = case.run(["root", got])
                if case.expect(rr, {0}, names=[got]):
                    case.check(first_line(rr) == root, gr.cmd, f"the cap got back has root {first_line(rr)[:16]}..", gr)
        if roots and case.suite.store_has_verify():
            case.expect(case.run(["store", "verify", "--db", db]), {0}, names=[db])
    elif r.rc == 0 and op == "pack":
        case.expect(case.run(["verify", out]), {0}, names=[out])
    elif r.rc == 0 and op == "proof":
        o = parse_json(r)
        case.check(isinstance(o, dict) and proof_problem(o) is None, r.cmd, "printed a proof that does not hold", r)
    elif r.rc == 0 and op == "unpack":
        rr = case.run(["root", out])
        if case.expect(rr, {0}, names=[out]):
            case.check(first_line(rr) == a_root, r.cmd, "unpack exit 0 wrote bytes that are not the archive's cap", r)
    elif r.rc == 0 and op == "root --archive":
        case.check(first_line(r) == a_root, r.cmd, "exit 0 with a root that is not the archive's", r)


def stores(case: Case):
    """Damaged stores: after a few `store put`s, data.mdb is truncated (8192 bytes, half,
    size - 4096) or has random bytes flipped; store ls, get, verify, gc --keep and put then exit
    0/1 only (never a signal), a `store get` that exits 0 writes the right bytes, and `store
    verify` does not pass a store on which `store get` found damage."""
    rng = case.rng
    db = case.path("db")
    files, contents = [], {}
    for k in range(rng.randrange(2, 5)):
        data = random_content(rng, rng.randrange(1, 300 * KiB))
        files.append(write(case.path(f"f{k}"), data))
    roots = []
    for fl in files:
        got = store_put(case, [fl], db)
        if not got:
            return
        roots.append(got[0])
        with open(fl, "rb") as fh:
            contents[got[0]] = fh.read()
    mdb = os.path.join(db, "data.mdb")
    size = os.stat(mdb).st_size
    how = rng.choice(["8192", "half", "minus4096", "flip", "flip", "meta", "zero"])
    with open(mdb, "r+b") as fh:
        if how == "8192":
            fh.truncate(8192)
        elif how == "half":
            fh.truncate(size // 2)
        elif how == "minus4096":
            fh.truncate(max(0, size - 4096))
        elif how == "zero":
            fh.seek(PAGE * rng.randrange(max(1, size // PAGE)))
            fh.write(bytes(PAGE))
        else:
            for _ in range(rng.randrange(1, 64)):
                at = rng.randrange(8192 if how == "meta" else size)
                fh.seek(at)
                b = fh.read(1)
                fh.seek(at)
                fh.write(bytes([(b[0] if b else 0) ^ rng.randrange(1, 256)]))
    names = [db]
    case.expect(case.run(["store", "ls", "--db", db]), {0, 1}, names=names, lines=True)
    damaged = None
    for root in roots:
        got = case.path("got")
        r = case.run(["store", "get", root, "--db", db, "-o", got])
        if r.rc == 1 and "no cap" not in r.err.decode(errors="replace"):
            damaged = damaged or r
        if case.expect(r, {0, 1}, names=names) and r.rc == 0:
            data = contents[root]
            bad = compare_file(got, pages_of(data), cap_size(len(data)))
            case.check(bad is None, r.cmd, f"store get exit 0 from a damaged store: {bad}", r)
        if os.path.exists(got):
            os.unlink(got)
    if case.suite.store_has_verify():
        v = case.run(["store", "verify", "--db", db])
        if case.expect(v, {0, 1}, names=names) and v.rc == 0 and damaged is not None:
            case.check(False, v.cmd, f"store verify passed a store on which `{damaged.cmd}` failed", damaged)
    fresh = write(case.path("fresh"), random_content(rng, rng.randrange(1, 100 * KiB)))
    r = case.run(["store", "put", fresh, "--db", db])
    if case.expect(r, {0, 1}, names=names + [fresh]) and r.rc == 0 and HEX64.fullmatch(first_line(r)):
        got = case.path("got")
        g = case.run(["store", "get", first_line(r), "--db", db, "-o", got])
        if case.expect(g, {0, 1}, names=names) and g.rc == 0:
            with open(fresh, "rb") as fh:
                data = fh.read()
            bad = compare_file(got, pages_of(data), cap_size(len(data)))
            case.check(bad is None, g.cmd, f"store get exit 0 after a put into a damaged store: {bad}", g)
    case.expect(case.run(["store", "gc", "--db", db, "--keep", rng.choice(roots)]), {0, 1}, names=names)
    case.expect(case.run(["store", "ls", "--db", db]), {0, 1}, names=names)


def signals(case: Case):
    """SIGTERM/SIGINT after a random short delay during `pack BIG -o out` or `unpack BIG.dcar
    -o out` (BIG: 384 MiB of distinct pages, about a second's work): no `out.tmp-*` is left, and `out` is absent, its
    previous content, or -- only if the command finished -- the complete new content."""
    rng, shared = case.rng, case.shared
    if "big" not in shared:
        big, big_a = os.path.join(shared["dir"], "big"), os.path.join(shared["dir"], "big.dcar")
        tpl = bytearray(random.Random(case.seed).randbytes(MiB))
        h = hashlib.sha256()
        with open(big, "wb") as fh:
            for mb in range(BIG_MIB):
                for p in range(MiB // PAGE):
                    struct.pack_into("<Q", tpl, p * PAGE, mb * 256 + p + 1)
                fh.write(tpl)
                h.update(tpl)
        r = case.run(["pack", big, "-o", big_a], timeout=300)
        if not case.expect(r, {0}, names=[big]):
            shared["big"] = None
            return
        shared["big"] = {"raw": big, "arc": big_a, "raw_sha": h.hexdigest(), "arc_sha": sha_file(big_a),
                         "t": {"pack": r.elapsed, "unpack": r.elapsed}}
    b = shared["big"]
    if b is None:
        return
    op = rng.choice(["pack", "unpack"])
    sig = rng.choice([signal.SIGTERM, signal.SIGINT])
    out = case.path("out")
    prev = rng.randbytes(rng.randrange(1, 20000)) if rng.random() < 0.5 else None
    if prev is not None:
        write(out, prev)
    delay = rng.uniform(0.01, 1.1 * b["t"][op])
    args = ["pack", b["raw"], "-o", out] if op == "pack" else ["unpack", b["arc"], "-o", out]
    r = case.run(args, signal_after=(sig, delay), timeout=max(30, 10 * b["t"][op]))
    if r.rc == 0:
        b["t"][op] = r.elapsed
    ok_codes = {0, 1, 128 + sig, -sig}
    if r.hang or r.mem_killed or r.rc not in ok_codes:
        case.expect(r, ok_codes, lines=False)
    else:
        case.check(True, r.cmd, "")
    left = tmp_leftovers(case.dir)
    case.check(not left, r.cmd, f"after {sig.name} at {delay:.2f}s: left {', '.join(map(os.path.basename, left))}", r)
    want_sha = b["arc_sha"] if op == "pack" else b["raw_sha"]
    want_size = os.stat(b["arc"] if op == "pack" else b["raw"]).st_size
    state = "absent"
    if os.path.lexists(out):
        st = os.stat(out)
        if prev is not None and st.st_size == len(prev) and open(out, "rb").read() == prev:
            state = "previous"
        elif st.st_size == want_size and sha_file(out) == want_sha:
            state = "complete"
        else:
            state = f"partial ({st.st_size} bytes)"
    if r.rc == 0:
        case.check(state == "complete", r.cmd, f"exit 0 but out is {state}", r)
    else:
        allowed = {"complete", "previous" if prev is not None else "absent"}
        case.check(state in allowed, r.cmd, f"after {sig.name} at {delay:.2f}s (exit {r.rc}): out is {state}", r)
    if os.path.lexists(out):
        os.unlink(out)


CLASSES = {
    "numbers": numbers,
    "proofs": proofs,
    "sparse": sparse,
    "archives": archives,
    "digests": digests,
    "outputs": outputs,
    "stdout": stdout_errors,
    "races": races,
    "stores": stores,
    "signals": signals,
}

# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------


def snapshot_cli(cli, bindir) -> tuple:
    """Copies the CLI (and libdatacap*.so* beside it) so a rebuild mid-run cannot mix binaries.
    Waits up to 10 minutes for a CLI that is missing or does not start (being rebuilt)."""
    deadline = time.monotonic() + 600
    while True:
        try:
            os.makedirs(bindir, exist_ok=True)
            src_dir = os.path.dirname(os.path.abspath(cli))
            dst = os.path.join(bindir, "datacap")
            shutil.copy2(cli, dst)
            for name in os.listdir(src_dir):
                if name.startswith("libdatacap") and ".so" in name:
                    shutil.copy2(os.path.join(src_dir, name), os.path.join(bindir, name))
            env = dict(os.environ, LD_LIBRARY_PATH=bindir + (":" + os.environ["LD_LIBRARY_PATH"]
                                                              if os.environ.get("LD_LIBRARY_PATH") else ""))
            env.pop("DATACAP_ISA", None)
            r = subprocess.run([dst, "--version"], env=env, capture_output=True, timeout=30)
            if r.returncode == 0:
                return dst, env
            why = r.stderr.decode(errors="replace").strip()
        except (OSError, subprocess.SubprocessError) as e:
            why = str(e)
        if time.monotonic() > deadline:
            sys.exit(f"hostile: cannot run {cli}: {why}")
        print(f"hostile: waiting for {cli} ({why[:100]})", flush=True)
        time.sleep(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", required=True, help="the datacap binary")
    ap.add_argument("--seed", type=int, default=None, help="default: from the clock (printed first)")
    ap.add_argument("--seconds", type=float, default=120.0, help="total time, shared by the classes")
    ap.add_argument("--no-memory-checks", dest="mem_checks", action="store_false",
                    help="skip peak-memory bounds (AddressSanitizer builds)")
    ap.add_argument("--workdir", help="work directory (default: a new temporary one)")
    ap.add_argument("--only", help="comma-separated classes: " + ",".join(CLASSES))
    ap.add_argument("--case", type=int, help="run only this case index of each selected class")
    ap.add_argument("--timeout", type=float, default=20.0, help="per command; longer is a hang")
    ap.add_argument("--memory-guard-mib", type=int, default=2048, help="kill a child whose RSS passes this")
    ap.add_argument("--max-print", type=int, default=12, help="failures printed per class (all go to failures.txt)")
    ap.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                    help="run --cli in place instead of a copy taken at the start")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "little") ^ int(time.time())
    print(f"hostile: seed {args.seed}", flush=True)
    classes = list(CLASSES) if not args.only else [c.strip() for c in args.only.split(",") if c.strip()]
    for c in classes:
        if c not in CLASSES:
            ap.error(f"unknown class {c!r} (classes: {', '.join(CLASSES)})")
    own_workdir = args.workdir is None
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="datacap-hostile-"))
    os.makedirs(workdir, exist_ok=True)
    if args.snapshot:
        cli, env = snapshot_cli(args.cli, os.path.join(workdir, "bin"))
    else:
        cli, env = os.path.abspath(args.cli), dict(os.environ)
    guard = args.memory_guard_mib * MiB if args.mem_checks else max(args.memory_guard_mib, 4096) * MiB
    tmpdir = os.path.join(workdir, "capture")
    os.makedirs(tmpdir, exist_ok=True)
    runner = Runner(cli, args.cli, env, args.timeout, args.mem_checks, guard, tmpdir)
    suite = Suite(args, runner, workdir)
    share = args.seconds / len(classes)
    print(f"hostile: cli {args.cli}, workdir {workdir}, {len(classes)} classes x {share:.1f} s, "
          f"memory checks {'on' if args.mem_checks else 'off'}", flush=True)
    class_failed = {}
    for name in classes:
        fn = CLASSES[name]
        cdir = os.path.join(workdir, name)
        os.makedirs(cdir, exist_ok=True)
        crng = random.Random(f"{args.seed}/{name}")
        shared = {"dir": cdir}
        p0, f0 = suite.passed, suite.failed
        deadline = time.monotonic() + share
        index, ran = 0, 0
        while True:
            seed = crng.getrandbits(64)
            if args.case is not None and index != args.case:
                if index > args.case:
                    break
                index += 1
                continue
            if args.case is None and ran > 0 and time.monotonic() >= deadline:
                break
            case = Case(suite, name, index, seed, os.path.join(cdir, str(index)), shared)
            try:
                fn(case)
            except Exception:  # a harness bug: report it, keep going
                suite.record(case, f"(harness, class {name})", "harness error: " +
                             traceback.format_exc().strip().splitlines()[-1])
                traceback.print_exc()
            if not case.failed:
                shutil.rmtree(case.dir, ignore_errors=True)
            ran += 1
            index += 1
            if args.case is not None:
                break
        class_failed[name] = suite.failed - f0
        print(f"  {name}: {suite.passed - p0} passed, {suite.failed - f0} failed ({ran} cases)", flush=True)
        if class_failed[name] == 0:
            shutil.rmtree(cdir, ignore_errors=True)
    suite.log.close()
    shutil.rmtree(tmpdir, ignore_errors=True)
    if suite.failed == 0:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"hostile: failing inputs kept in {workdir} (all failures: {suite.log.name}); "
              f"rerun with --seed {args.seed}", flush=True)
    print(f"hostile: {suite.passed} passed, {suite.failed} failed", flush=True)
    return 1 if suite.failed else 0


if __name__ == "__main__":
    sys.exit(main())
