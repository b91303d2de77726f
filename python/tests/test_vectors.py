"""The SPEC's vectors (every row of MANIFEST.tsv, both digests) through every construction
path of the Python API, and the SPEC's worked example; the same roots from the plain-Python
model in merkle_ref.py."""

import numpy as np
import pytest

import datacap
import merkle_ref
from conftest import manifest, vectors_dir

ROWS = manifest() if (vectors_dir() / "MANIFEST.tsv").exists() else []


def test_manifest_has_every_vector(vectors):
    assert len(ROWS) == 12


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_from_bytes(vectors, row):
    file, size_arg, sha, blake = row
    content = (vectors / file).read_bytes()
    cap = datacap.DataCap.from_bytes(content, size_arg)
    assert cap.is_clean
    assert cap.hash_tree_root().hex() == sha
    assert cap.hash_tree_root("sha256").hex() == sha
    assert cap.hash_tree_root(digest="blake2b256").hex() == blake
    assert cap.content_len == max(-(-max(size_arg, len(content), 1) // 4096) * 4096, 4096)


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_other_paths(vectors, row):
    file, size_arg, sha, blake = row
    content = (vectors / file).read_bytes()
    size = max(size_arg, len(content))
    pages = [(off // 4096, content[off:off + 4096]) for off in range(0, len(content), 4096)]
    # from_sparse_pages: a dict, and a reversed list of pairs of memoryviews.
    sparse = datacap.DataCap.from_sparse_pages(size, dict(pages))
    assert sparse.hash_tree_root().hex() == sha
    assert sparse.hash_tree_root("blake2b256").hex() == blake
    views = [(i, memoryview(b)) for i, b in reversed(pages)]
    assert datacap.DataCap.from_sparse_pages(size, views).hash_tree_root().hex() == sha
    # Written through the overlay, from a numpy array, then flushed.
    written = datacap.DataCap.zeroed(sparse.content_len)
    written.write(0, np.frombuffer(content, dtype=np.uint8))
    if content:
        assert not written.is_clean
        with pytest.raises(datacap.DirtyCap):
            written.hash_tree_root()
    assert written.flush().hash_tree_root().hex() == sha
    # bytearray input.
    assert datacap.DataCap.from_bytes(bytearray(content), size_arg).hash_tree_root().hex() == sha


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_plain_python_model_agrees(vectors, row):
    file, size_arg, sha, blake = row
    content = (vectors / file).read_bytes()
    assert merkle_ref.cap_root("sha256", content, size_arg).hex() == sha
    assert merkle_ref.cap_root("blake2b256", content, size_arg).hex() == blake


def test_worked_example_of_spec():
    root = datacap.DataCap.zeroed(4096).hash_tree_root()
    assert root.hex() == "ed5f4ed0d6617d50abd49d4c84281e175b48a7e1edf550a89bf2c9b5c4ce01f0"


def test_page_roots():
    assert datacap.page_root(b"hello").hex() == (
        "c586e42b289729e1b2b732a06a085910c0b19378b66b8dc1bde2cf86b87572a6")
    assert datacap.page_root(b"\xff" * 4096) == merkle_ref.page_root("sha256", b"\xff" * 4096)
    assert datacap.page_root(b"ab", "blake2b256") == merkle_ref.page_root("blake2b256", b"ab")
    assert datacap.size_root(4096) == merkle_ref.size_root(4096)

