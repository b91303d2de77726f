"""No leaks over 10^5 operations: after a warm-up, the process's RSS (/proc/self/statm) stays
within a bound and the library's live page count returns to where it was."""

import os

import pytest

import datacap

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def one_round(i, base, store, tmp):
    cap = datacap.DataCap.from_bytes(b"%d" % i * 100, target=3 * 4096)
    cap.write(4000, b"spans two pages")
    view = cap.page_at(4096)
    _ = view[0]
    c2 = cap.copy()
    c2.write_page(8192, b"p")
    cap = cap.flush()
    root = cap.hash_tree_root()
    cap.read(0, 5000)
    proof = datacap.prove_page(cap, 1)
    assert datacap.verify_page_proof(proof, root)
    try:
        cap.page_at(1 << 40)
    except datacap.OutOfRange as e:
        _ = e.kind
    try:
        c2.hash_tree_root()
    except datacap.DirtyCap:
        pass
    light = base.copy()
    light.elide_pages([0])
    try:
        light.page_at(0)
    except datacap.MissingPage as e:
        _ = e.hash
    if i % 50 == 0:
        store.save_cap(cap)
        store.hydrate(light)
        datacap.diff_pages(cap, base)
        datacap.write_archive(cap, tmp)
        datacap.open_archive(tmp).hash_tree_root()
    return root


@pytest.mark.parametrize("rounds", [10_000])  # about 10 operations each: 10^5 operations
def test_rss_is_flat(tmp_path, rounds):
    base = datacap.DataCap.from_bytes(b"base" * 3000)
    store = datacap.MemoryStore()
    store.save_cap(base)
    tmp = tmp_path / "leak.dcar"
    for i in range(2000):  # warm-up: allocator pools, pybind11 type caches, the store's pages
        one_round(i, base, store, tmp)
    store.gc([base.hash_tree_root()])
    pages0, rss0 = datacap.live_page_count(), rss()
    for i in range(rounds):
        one_round(i, base, store, tmp)
    store.gc([base.hash_tree_root()])
    grown = rss() - rss0
    assert datacap.live_page_count() == pages0
    assert grown < 4 << 20, f"RSS grew by {grown / 2**20:.1f} MiB over {rounds} rounds"
