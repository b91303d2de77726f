"""Shared fixtures of the datacap Python tests.

Run by ctest (`python.pytest`) with PYTHONPATH at the build tree's package and
DATACAP_VECTORS_DIR at the SPEC's vectors; by hand:

    PYTHONPATH=build/py/python PYTHONDONTWRITEBYTECODE=1 \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider python/tests
"""

import os
import pathlib

import pytest

HERE = pathlib.Path(__file__).resolve().parent
PYTHON_DIR = HERE.parent
SOURCE_DIR = pathlib.Path(os.environ.get("DATACAP_SOURCE_DIR", PYTHON_DIR.parent))


def vectors_dir() -> pathlib.Path:
    env = os.environ.get("DATACAP_VECTORS_DIR")
    return pathlib.Path(env) if env else (SOURCE_DIR.parent / "shared" / "vectors")


def manifest():
    """Rows (file, size_arg, sha256_root, blake2b256_root) of MANIFEST.tsv."""
    rows = []
    for line in (vectors_dir() / "MANIFEST.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        file, size_arg, sha, blake = line.split("\t")
        rows.append((file, int(size_arg), sha, blake))
    return rows


@pytest.fixture(scope="session")
def vectors():
    if not (vectors_dir() / "MANIFEST.tsv").exists():
        pytest.skip(f"no vectors at {vectors_dir()} (set DATACAP_VECTORS_DIR)")
    return vectors_dir()
