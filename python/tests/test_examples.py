"""The quick-start example runs, and README.md's Python block (if it has one) is that file."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

import datacap

from conftest import PYTHON_DIR, SOURCE_DIR

QUICKSTART = PYTHON_DIR / "examples" / "quickstart.py"


def test_quickstart_runs(tmp_path):
    package_parent = str(pathlib.Path(datacap.__file__).resolve().parent.parent)
    path = os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=path)
    done = subprocess.run([sys.executable, str(QUICKSTART)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "proof verifies: True" in done.stdout
    assert "changed pages: [1]" in done.stdout
    assert "round trips: ok" in done.stdout


def test_readme_python_block_is_the_quickstart():
    readme = SOURCE_DIR / "README.md"
    if not readme.exists():
        pytest.skip("no README.md")
    blocks = re.findall(r"^```python\n(.*?)^```", readme.read_text(), re.S | re.M)
    if not blocks:
        pytest.skip("README.md has no ```python block yet")
    assert blocks[0] == QUICKSTART.read_text()
