"""The GIL is released while the library works, checked deterministically: with a switch
interval so long that a thread holding the GIL is never made to drop it, the main thread can
only run while the worker is still inside the call if that call released the GIL. Also: writes
from several threads to one cap are never lost, and readers never see half a write."""

import sys
import threading

import numpy as np
import pytest

import datacap

SIZE = 16 << 20


def fresh_cap():
    data = np.arange(SIZE // 8, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    return datacap.DataCap.from_bytes(data), data


def make_ops(tmp_path):
    store = datacap.MemoryStore()
    big = np.ones(SIZE, dtype=np.uint8)
    out = np.zeros(SIZE, dtype=np.uint8)
    return {
        "hash_tree_root": lambda cap: cap.hash_tree_root(),
        "hash_tree_root_blake2b": lambda cap: cap.hash_tree_root("blake2b256"),
        "from_bytes": lambda cap: datacap.DataCap.from_bytes(big),
        "flush": lambda cap: cap.flush(),
        "copy_into": lambda cap: cap.copy_into(0, out),
        "read": lambda cap: cap.read(0, SIZE),
        "write_large": lambda cap: cap.write(0, big),
        "prove_page": lambda cap: datacap.prove_page(cap, 3),
        "diff_pages": lambda cap: datacap.diff_pages(cap, datacap.DataCap.zeroed(SIZE)),
        "save_cap": lambda cap: store.save_cap(cap),
        "write_archive": lambda cap: datacap.write_archive(cap, tmp_path / "t.dcar"),
    }


OPS = list(make_ops(None))


def run_beside(fn, cap):
    """Runs fn(cap) on a worker thread; True when the main thread ran Python code while the
    worker was still inside the call."""
    started = threading.Event()
    finished = []

    def worker():
        started.set()
        fn(cap)
        finished.append(True)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)  # never a forced switch: only a call that releases the GIL lets
    try:                           # the main thread run while the worker is inside it
        t = threading.Thread(target=worker)
        t.start()
        started.wait()
        progress = 0
        while progress < 100_000:  # Python code running while the worker cannot finish
            progress += 1
        inside = not finished  # the worker needs the GIL, which we hold, to append
        t.join()
    finally:
        sys.setswitchinterval(old)
    assert finished == [True]
    return inside


@pytest.mark.parametrize("op", OPS)
def test_gil_released(tmp_path, op):
    # A call that keeps the GIL can never let the main thread run inside it; one that releases it
    # does unless the scheduler leaves the main thread waiting for the whole call (on a loaded
    # machine, for a call of a few milliseconds). So: any of a few tries must see it.
    fn = make_ops(tmp_path)[op]
    for _ in range(20):
        cap, _ = fresh_cap()
        if op == "flush":
            cap.write(0, np.full(SIZE, 7, dtype=np.uint8))  # every page dirty: milliseconds of work
        if run_beside(fn, cap):
            return
    pytest.fail(f"{op} kept the GIL: the main thread ran only after it returned, in 20 tries")


def test_writers_on_threads_lose_nothing():
    cap = datacap.DataCap.zeroed(64 << 20)
    big = np.full(2 << 20, 1, dtype=np.uint8)  # heavy writes (without the GIL) ...

    def heavy(k):
        for r in range(4):
            cap.write((8 * k + 2 * r) << 20, big)

    def light(k):  # ... interleaved with light ones (with the GIL) on the same cap
        for j in range(200):
            cap.write(((32 + k) << 20) + j * 4096, b"L")

    threads = [threading.Thread(target=heavy, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=light, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flushed = cap.flush()
    expect = bytearray(64 << 20)
    for k in range(4):
        for r in range(4):
            off = (8 * k + 2 * r) << 20
            expect[off:off + (2 << 20)] = b"\1" * (2 << 20)
        for j in range(200):
            expect[((32 + k) << 20) + j * 4096] = ord("L")
    assert flushed.hash_tree_root() == datacap.DataCap.from_bytes(bytes(expect)).hash_tree_root()


def test_readers_see_whole_writes():
    cap = datacap.DataCap.zeroed(8 << 20)
    stop = []
    seen = set()

    def reader():
        while not stop:
            data = cap.read(0, 8 << 20)
            seen.add((data[0], data[-1]))

    t = threading.Thread(target=reader)
    t.start()
    for v in range(1, 6):
        cap.write(0, bytes([v]) * (8 << 20))  # heavy: committed whole, under the GIL
    stop.append(True)
    t.join()
    assert all(a == b for a, b in seen), seen


def test_copy_is_o1_and_independent():
    cap = datacap.DataCap.zeroed(1 << 30)
    for i in range(0, 5000):
        cap.write(i * 4096 * 3, b"page %d" % i)  # a dirty overlay of 5000 pages
    pages = datacap.live_page_count()
    twin = cap.copy()
    import copy as copy_module
    triplet = copy_module.copy(cap)
    assert datacap.live_page_count() == pages  # no page copied
    twin.write(0, b"TWIN")
    cap.write(3 * 4096, b"ORIG")
    assert cap.read(0, 6) == b"page 0" and twin.read(0, 4) == b"TWIN"
    assert twin.read(3 * 4096, 6) == b"page 1" and cap.read(3 * 4096, 4) == b"ORIG"
    assert triplet.read(0, 6) == b"page 0" and triplet.read(3 * 4096, 6) == b"page 1"
    assert twin.dirty_page_count == cap.dirty_page_count == 5000
