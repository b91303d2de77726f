"""The rest of the API: cap construction and writes, archives, stores, images, and the
documentation (docstrings everywhere, stubs that name every public object)."""

import ast
import copy
import inspect
import pathlib

import numpy as np
import pytest

import datacap

PACKAGE = pathlib.Path(datacap.__file__).parent


def test_version_and_constants():
    assert datacap.__version__.count(".") == 2
    assert datacap.PAGE_SIZE == 4096
    assert datacap.MAX_PAGE_COUNT == 2**32
    assert datacap.active_isa() in datacap.available_isas()


def test_construction_and_state():
    empty = datacap.DataCap()
    assert empty.content_len == 0 and empty.page_count == 0 and empty.is_clean
    cap = datacap.DataCap.from_bytes(b"abc", target=10000)
    assert cap.content_len == 12288 and cap.page_count == 3
    assert [cap.page_kind(i) for i in range(3)] == ["loaded", "empty", "empty"]
    assert cap.read(0, 4) == b"abc\0"
    assert "content_len=12288" in repr(cap)
    sparse = datacap.DataCap.from_sparse_pages(12288, [(2, b"z")])
    assert sparse.read(8192, 1) == b"z" and sparse.page_kind(0) == "empty"
    with pytest.raises(datacap.InvalidArgument):
        datacap.DataCap.from_sparse_pages(12288, [(1, b"a"), (1, b"b")])
    with pytest.raises(TypeError):
        datacap.DataCap.from_sparse_pages(12288, [(1, b"a", 3)])


def test_writes_flush_and_overlay():
    cap = datacap.DataCap.from_bytes(b"\1" * 3 * 4096)
    cap.write(4090, b"x" * 12)
    assert cap.dirty_page_count == 2 and cap.is_dirty(0) and cap.is_dirty(1) and not cap.is_dirty(2)
    cap.write_page(8192, b"")  # an explicit zero page shadows the backing
    assert cap.read(8192, 4) == bytes(4) and cap.dirty_page_count == 3
    cap.put_page(8192, b"\2")  # the backing changes, but the overlay still shadows it
    assert cap.read(8192, 1) == b"\0"
    flushed = cap.flush()
    assert flushed.is_clean and not cap.is_clean
    assert flushed.page_kind(2) == "empty"
    assert flushed.read(4088, 16) == b"\1\1" + b"x" * 12 + b"\1\1"
    dst = datacap.DataCap.zeroed(5 * 4096)
    dst.place_shared(4096, flushed)
    assert dst.read(4096, 4096) == flushed.read(0, 4096)
    assert dst.page_at(4096).tobytes() == flushed.page_at(0).tobytes()
    dst.place_shared(0, dst)  # src may be the cap itself
    assert copy.deepcopy(dst).hash_tree_root() == dst.hash_tree_root()


def test_large_write_and_reads_agree():
    data = np.random.default_rng(1).integers(0, 256, 5 << 20, dtype=np.uint8)
    cap = datacap.DataCap.zeroed(8 << 20)
    cap.write(12345, data)  # heavy path (>= 1 MiB)
    assert cap.read(12345, data.nbytes) == data.tobytes()
    out = bytearray(data.nbytes)
    cap.copy_into(12345, out)
    assert out == data.tobytes()
    assert cap.flush().hash_tree_root() == datacap.DataCap.from_bytes(
        bytes(12345) + data.tobytes(), 8 << 20).hash_tree_root()


@pytest.mark.parametrize("access", ["map", "copy"])
@pytest.mark.parametrize("verify", ["full", "structure"])
def test_archive_round_trip(tmp_path, access, verify):
    cap = datacap.DataCap.from_bytes(b"page" * 4096, target=1 << 20)
    cap.elide_pages([2])
    dirty = cap.copy()
    dirty.write(0x8000, b"overlay")
    path = tmp_path / "cap.dcar"
    info = datacap.write_archive(dirty, path)
    assert info.dirty_pages == 1 and info.missing_pages == 1 and info.digest == "sha256"
    assert datacap.is_archive_file(path)
    back = datacap.open_archive(path, verify=verify, access=access)
    assert back.dirty_page_count == 1 and back.missing_pages() == [2]
    assert back.flush().hash_tree_root() == dirty.flush().hash_tree_root() == info.root
    assert datacap.verify_archive(str(path)).root == info.root
    assert datacap.archive_info(path).content_len == 1 << 20


def test_read_raw_file(tmp_path):
    path = tmp_path / "raw.bin"
    path.write_bytes(b"raw bytes" * 1000)
    cap = datacap.read_raw_file(path, size=1 << 16)
    assert cap.hash_tree_root() == datacap.DataCap.from_bytes(path.read_bytes(), 1 << 16).hash_tree_root()


@pytest.mark.parametrize("kind", ["lmdb", "memory"])
def test_store(tmp_path, kind):
    store = datacap.LmdbStore(tmp_path / "db") if kind == "lmdb" else datacap.MemoryStore()
    assert isinstance(store, datacap.PageStore)
    cap = datacap.DataCap.from_bytes(b"A" * 4096 + b"B" * 4096 + b"A" * 4096)
    root = store.save_cap(cap)
    assert root == cap.hash_tree_root() and store.has_cap(root) and store.has_cap(root.hex())
    assert store.page_count() == 2  # identical pages once
    page_root = datacap.page_root(b"B" * 4096)
    assert store.has(page_root) and store.get(page_root) == b"B" * 4096
    assert store.get(bytes(32)) is None
    assert store.put(b"extra") == datacap.page_root(b"extra")
    assert [s.root for s in store.list_caps()] == [root]
    assert store.saved_cap(root).page_entries == 3
    assert store.load_cap(root).read(0, 8192) == cap.read(0, 8192)
    light = cap.copy()
    light.elide_pages([0, 1, 2])
    report = store.hydrate(light, [1])
    assert (report.hydrated, report.still_missing) == (1, 0) and light.missing_pages() == [0, 2]
    assert datacap.hydrate(light, store).hydrated == 2 and light.missing_pages() == []
    gc_report = store.gc([root])
    assert gc_report.caps_kept == 1 and gc_report.pages_removed == 1
    assert not store.verify().damaged
    store.check_structure()
    store.close()
    assert store.closed
    with pytest.raises(datacap.InvalidArgument, match="closed"):
        store.has_cap(root)
    if kind == "lmdb":
        with datacap.LmdbStore(tmp_path / "db", read_only=True) as ro:
            assert ro.is_read_only and ro.load_cap(root).hash_tree_root() == root
            with pytest.raises(datacap.InvalidArgument, match="read-only"):
                ro.save_cap(datacap.DataCap.from_bytes(b"new"))
            # (Re-saving a cap the store holds, with its root cached, returns its root without
            # the read-only check: nothing would change.)


def test_images():
    b = datacap.ImageBuilder()
    code = b.add_bytes(b"code" * 2000)
    data = b.add_cap(datacap.DataCap.from_bytes(b"code" * 1024 + b"data"))
    assert b.unique_pages == 3  # the identical first page is stored once
    assert datacap.DataDesc.decode(code.encode()) == code
    arena = b.arena
    assert code.to_data_cap(arena).read(0, 8000) == b"code" * 2000
    memory = datacap.ImageMemory(arena, [code, data], 1 << 20, [(0, 0), (1 << 19, 1)])
    vm = memory.instantiate()
    assert vm.content_len == 1 << 20 and vm.read(1 << 19, 4) == b"code"
    assert len(memory.data_caps) == 2 and memory.extent == 1 << 20


def public_objects():
    for name in datacap.__all__:
        obj = getattr(datacap, name)
        if inspect.isclass(obj) or callable(obj):
            yield name, obj


def test_every_public_object_has_a_docstring():
    for name, obj in public_objects():
        assert obj.__doc__ and obj.__doc__.strip(), name
        if inspect.isclass(obj) and not issubclass(obj, BaseException):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not callable(member):
                    continue
                doc = getattr(member, "__doc__", None)
                assert doc and doc.strip(), f"{name}.{attr}"


def test_help_reads_well():
    text = pydoc_text(datacap.DataCap)
    for needed in ("MGMT_COPY", "page_at(off) -> memoryview", "Raises OutOfRange",
                   "hash_tree_root(digest='sha256') -> bytes", "without the GIL"):
        assert needed in text, needed


def pydoc_text(obj):
    import pydoc
    return pydoc.render_doc(obj, renderer=pydoc.plaintext)


def test_stubs_name_every_public_object():
    stub = (PACKAGE / "_datacap.pyi").read_text()
    tree = ast.parse(stub)
    names = set()
    members = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                members[node.name] = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                members[node.name] |= {n.target.id for n in node.body
                                       if isinstance(n, ast.AnnAssign)}
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    assert set(datacap.__all__) - {"__version__"} <= names | {"__version__"}, \
        set(datacap.__all__) - names
    for cls in ("DataCap", "PageStore", "ArchiveInfo", "PageProof", "DataDesc"):
        actual = {a for a in vars(getattr(datacap, cls)) if not a.startswith("_")}
        assert actual <= members[cls], (cls, actual - members[cls])
    assert (PACKAGE / "py.typed").exists()
