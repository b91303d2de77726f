"""One Python exception class per datacap::ErrorKind, mirroring the C++ hierarchy, each raised
by a real failure with the library's message and the C++ exception's fields."""

import os

import pytest

import datacap

HIERARCHY = {
    "Error": Exception,
    "InvalidArgument": datacap.Error,
    "OutOfRange": datacap.InvalidArgument,
    "MemoryLimitExceeded": datacap.OutOfRange,
    "DirtyCap": datacap.InvalidArgument,
    "MissingPage": datacap.Error,
    "DecodeError": datacap.Error,
    "ValidationError": datacap.Error,
    "IoError": datacap.Error,
    "IntegrityError": datacap.Error,
    "NotFound": datacap.Error,
    "Unsupported": datacap.Error,
}


@pytest.mark.parametrize("name,base", HIERARCHY.items())
def test_hierarchy(name, base):
    cls = getattr(datacap, name)
    assert issubclass(cls, base) and issubclass(cls, datacap.Error)
    assert cls.__module__ == "datacap" and cls.__name__ == name
    assert cls.__doc__


def test_python_bases():
    assert issubclass(datacap.InvalidArgument, ValueError)
    assert issubclass(datacap.DirtyCap, ValueError)
    assert issubclass(datacap.IoError, OSError)
    assert not issubclass(datacap.MissingPage, ValueError)


def archive(tmp_path, pages=3):
    path = tmp_path / "a.dcar"
    datacap.write_archive(datacap.DataCap.from_bytes(os.urandom(pages * 4096)), path)
    return path


def raised(fn):
    with pytest.raises(datacap.Error) as info:
        fn()
    return info.value


def test_invalid_argument():
    e = raised(lambda: datacap.DataCap.zeroed(100))
    assert type(e) is datacap.InvalidArgument and e.kind == "invalid_argument"
    assert "100" in str(e) and "PAGE_SIZE" in str(e)
    e = raised(lambda: datacap.DataCap().hash_tree_root("md5"))
    assert type(e) is datacap.InvalidArgument and "md5" in str(e)
    e = raised(lambda: datacap.DataCap.zeroed(8192).place_shared(1, datacap.DataCap()))
    assert type(e) is datacap.InvalidArgument


def test_out_of_range():
    cap = datacap.DataCap.zeroed(8192)
    e = raised(lambda: cap.page_at(8192))
    assert type(e) is datacap.OutOfRange and e.kind == "out_of_range"
    assert str(e) == "page_at: offset 8192 >= content_len 8192"
    assert isinstance(e, datacap.InvalidArgument) and isinstance(e, ValueError)
    assert type(raised(lambda: cap.write(8190, b"abc"))) is datacap.OutOfRange
    assert type(raised(lambda: cap.read(0, 8193))) is datacap.OutOfRange
    assert type(raised(lambda: cap.write_page(0, bytes(4097)))) is datacap.OutOfRange
    assert type(raised(lambda: datacap.DataCap.from_sparse_pages(4096, {2**40: b"x"}))) \
        is datacap.OutOfRange


def test_memory_limit_exceeded(tmp_path):
    path = archive(tmp_path)
    e = raised(lambda: datacap.open_archive(path, max_memory=1))
    assert type(e) is datacap.MemoryLimitExceeded and e.kind == "out_of_range"
    assert isinstance(e, datacap.OutOfRange)
    assert e.limit == 1 and e.needed > 1 and str(path) in str(e)


def test_dirty_cap():
    cap = datacap.DataCap.zeroed(4096)
    cap.write(0, b"x")
    e = raised(cap.hash_tree_root)
    assert type(e) is datacap.DirtyCap and e.kind == "dirty_cap"
    assert "flush" in str(e)
    assert type(raised(lambda: datacap.MemoryStore().save_cap(cap))) is datacap.DirtyCap


def test_missing_page():
    cap = datacap.DataCap.from_bytes(b"a" * 4096 + b"b" * 4096)
    cap.elide_pages([1])
    e = raised(lambda: cap.page_at(5000))
    assert type(e) is datacap.MissingPage and e.kind == "missing_page"
    assert e.page_index == 1 and e.hash == datacap.page_root(b"b" * 4096)
    assert "page 1" in str(e) and e.hash.hex() in str(e)
    assert type(raised(lambda: cap.read(0, 8192))) is datacap.MissingPage


def test_decode_error(tmp_path):
    path = tmp_path / "garbage.dcar"
    path.write_bytes(b"not an archive" * 1000)
    e = raised(lambda: datacap.open_archive(path))
    assert type(e) is datacap.DecodeError and e.kind == "decode"
    assert "magic" in e.field and e.offset == 0 and str(path) in str(e)
    assert type(raised(lambda: datacap.DataDesc.decode(b"\1\2\3"))) is datacap.DecodeError


def test_validation_error():
    desc = datacap.DataDesc(4096, [datacap.ArenaPageRef(3, 0, 10)])
    e = raised(lambda: desc.validate(100))
    assert type(e) is datacap.ValidationError and e.kind == "validation"
    assert e.rule == "page_index_out_of_range" and e.value == 3 and e.index == 0
    assert str(e) == "DataDesc.pages[0]: page_index 3 >= page_count 1"


def test_io_error(tmp_path):
    missing = tmp_path / "nope" / "a.dcar"
    e = raised(lambda: datacap.open_archive(missing))
    assert type(e) is datacap.IoError and e.kind == "io" and isinstance(e, OSError)
    assert e.path == str(missing) and str(missing) in str(e)
    one_page = datacap.DataCap.from_bytes(b"x")
    assert type(raised(lambda: datacap.write_archive(one_page, tmp_path))) is datacap.IoError
    # The empty cap (size 0) has no archive form: refused before any file exists.
    empty = tmp_path / "empty.dcar"
    assert type(raised(lambda: datacap.write_archive(datacap.DataCap(), empty))) \
        is datacap.InvalidArgument
    assert not empty.exists() and list(tmp_path.iterdir()) == []


def test_integrity_error():
    cap = datacap.DataCap.from_bytes(b"a" * 4096)
    cap.elide_pages([0])
    e = raised(lambda: cap.resolve_missing({0: b"b" * 4096}))
    assert type(e) is datacap.IntegrityError and e.kind == "integrity"
    assert e.page_index == 0
    assert e.expected == datacap.page_root(b"a" * 4096)
    assert e.actual == datacap.page_root(b"b" * 4096)
    assert cap.missing_pages() == [0]  # nothing changed
    cap.resolve_missing([(0, b"a" * 4096)])
    assert cap.missing_pages() == []


def test_not_found():
    store = datacap.MemoryStore()
    e = raised(lambda: store.load_cap(b"\x11" * 32))
    assert type(e) is datacap.NotFound and e.kind == "not_found"
    assert e.key == b"\x11" * 32 and "11" * 32 in str(e)
    assert type(raised(lambda: store.gc(["22" * 32]))) is datacap.NotFound


def test_python_side_errors():
    cap = datacap.DataCap.zeroed(4096)
    with pytest.raises(TypeError, match="bytes-like"):
        cap.write(0, "text")
    with pytest.raises(TypeError, match="bytes-like"):
        datacap.DataCap.from_bytes(12)
    with pytest.raises(TypeError):
        cap.write(-1, b"x")
    with pytest.raises(ValueError, match="32 bytes"):
        datacap.MemoryStore().has(b"short")
    with pytest.raises(datacap.InvalidArgument):
        datacap.open_archive("x", verify="sometimes")
