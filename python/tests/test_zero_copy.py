"""page_at returns views of the pages themselves that keep them alive; inputs are read in place
through the buffer protocol (numpy arrays included), never copied first."""

import ctypes
import gc

import numpy as np
import pytest

import datacap


def address(view):
    return np.frombuffer(view, dtype=np.uint8).__array_interface__["data"][0]


def test_page_at_is_the_page_itself():
    cap = datacap.DataCap.from_bytes(b"x" * 5000)
    a, b = cap.page_at(0), cap.page_at(4095)
    assert isinstance(a, memoryview) and a.readonly and a.nbytes == datacap.PAGE_SIZE
    assert a.format == "B" and a.shape == (4096,) and a.c_contiguous
    assert isinstance(a.obj, datacap.PageBuffer)
    assert address(a) == address(b)  # the same page twice, no copy
    assert address(a) % datacap.PAGE_SIZE == 0  # pages are page-aligned: bytes objects are not
    assert bytes(cap.page_at(4096)[:904]) == b"x" * 904
    with pytest.raises(TypeError):
        a[0] = 1  # read-only
    with pytest.raises(TypeError, match="not writable"):
        (ctypes.c_char * 4096).from_buffer(a.obj)  # no writable export of the owner either


def test_empty_pages_are_the_shared_zero_page():
    cap = datacap.DataCap.zeroed(1 << 20)
    assert address(cap.page_at(0)) == address(cap.page_at(999_999))
    assert bytes(cap.page_at(0)) == bytes(4096)


def test_view_outlives_writes_flush_and_the_cap():
    cap = datacap.DataCap.from_bytes(b"A" * 8192)
    view = cap.page_at(4096)
    cap.write(4096, b"B" * 4096)          # the overlay gets a new page
    cap.put_page(4096, b"C" * 10)         # the backing page is replaced
    cap = cap.flush()
    assert bytes(cap.page_at(4096)[:1]) == b"B"
    del cap
    gc.collect()
    assert bytes(view) == b"A" * 4096     # still the old page, still alive
    arr = np.frombuffer(view, dtype=np.uint8)
    del view
    gc.collect()
    assert arr.sum() == 65 * 4096         # the array keeps the PageBuffer keeps the page


def test_view_keeps_archive_pages_alive(tmp_path):
    path = tmp_path / "a.dcar"
    datacap.write_archive(datacap.DataCap.from_bytes(b"z" * 4096), path)
    cap = datacap.open_archive(path, access="map")
    view = cap.page_at(0)
    del cap
    gc.collect()
    assert bytes(view) == b"z" * 4096


def test_numpy_and_other_buffers_are_read_in_place():
    words = np.arange(3000, dtype=np.uint32)  # not bytes: the byte size comes from the buffer
    cap = datacap.DataCap.from_bytes(words)
    assert cap.read(0, words.nbytes) == words.tobytes()
    ro = np.frombuffer(b"q" * 100, dtype=np.uint8)  # read-only arrays are fine
    cap.write(10, ro)
    ba = bytearray(b"0123456789")
    cap.write(0, memoryview(ba)[2:5])
    assert cap.read(0, 3) == b"234"
    cap.write(0, np.frombuffer(b"abcdefgh", dtype=np.uint8).reshape(2, 4))  # C-contiguous 2-D


def test_non_contiguous_is_a_type_error():
    arr = np.zeros(10000, dtype=np.uint8)
    with pytest.raises(TypeError, match="C-contiguous"):
        datacap.DataCap.from_bytes(arr[::2])
    with pytest.raises(TypeError, match="C-contiguous"):
        datacap.DataCap.zeroed(1 << 16).write(0, np.zeros((64, 64), np.uint8).T)
    with pytest.raises(TypeError, match="C-contiguous"):
        datacap.DataCap.zeroed(1 << 16).copy_into(0, arr[::2])


def test_copy_into_writes_into_the_callers_buffer():
    cap = datacap.DataCap.from_bytes(bytes(range(256)) * 64)
    out = np.zeros(3 * 4096, dtype=np.uint8)
    cap.copy_into(4096, out[:8192])
    assert out[:8192].tobytes() == cap.read(4096, 8192)
    assert out[8192:].sum() == 0
    ba = bytearray(10)
    cap.copy_into(1, ba)
    assert ba == bytes(range(1, 11))
    with pytest.raises(TypeError, match="writable"):
        cap.copy_into(0, b"immutable")


def vm_hwm_and_rss():
    status = open("/proc/self/status").read().split("\n")
    get = lambda key: next(int(l.split()[1]) for l in status if l.startswith(key)) * 1024
    return get("VmHWM:"), get("VmRSS:")


def test_large_numpy_input_is_not_copied():
    """Peak memory of from_bytes(array) is the array plus the cap's own pages, not a third copy.
    The peak is reset with /proc/self/clear_refs, so the check is about this call alone."""
    size = 256 << 20
    arr = np.full(size, 7, dtype=np.uint8)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("cannot reset the peak RSS (/proc/self/clear_refs)")
    _, rss0 = vm_hwm_and_rss()
    cap = datacap.DataCap.from_bytes(arr)
    hwm, _ = vm_hwm_and_rss()
    assert cap.page_count == size // 4096
    growth = hwm - rss0
    assert growth < size * 1.5, f"peak grew by {growth >> 20} MiB for a {size >> 20} MiB input"
    del cap
