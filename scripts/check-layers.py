#!/usr/bin/env python3
"""Fails when an #include goes against the order of the library's components.

Each folder under src/ is one component; a component may include its own headers and those of
the components before it in LAYERS, never one after it. Public headers (include/datacap/) belong
to the component that implements them (OWNER) and obey the same rule, as do the internal headers
they stand for. Tests (*_test.cpp) and benchmarks (*_bench.cpp) beside a component may use the
whole library, as may tools/, tests/, bench/ and fuzz/.

Usage: scripts/check-layers.py [repository root]   (exit 1 and one line per violation)
       scripts/check-layers.py --self-test         (the check catches what it should)
"""
import pathlib
import re
import sys

LAYERS = ["common", "hash", "tree", "page", "slab", "cap", "window",
          "image", "codec", "archive", "proof", "store", "capi"]
RANK = {name: i for i, name in enumerate(LAYERS)}
OWNER = {  # public header -> the component that implements it
    "export.hpp": "common", "error.hpp": "common", "types.hpp": "common", "version.hpp": "common",
    "hash.hpp": "hash", "merkle.hpp": "tree", "page.hpp": "page", "slab.hpp": "slab",
    "cap.hpp": "cap", "window.hpp": "window", "image.hpp": "image", "codec.hpp": "codec", "archive.hpp": "archive",
    "proof.hpp": "proof", "store.hpp": "store", "redis_store.hpp": "store",
    "datacap.h": "capi",
    "datacap.hpp": None,  # the umbrella header: for users, never included by the library
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def component_of(include):
    """The component an include names, or raises KeyError for an unknown one."""
    head, _, rest = include.partition("/")
    if head == "datacap":
        return OWNER[rest]
    if head in RANK:
        return head
    raise KeyError(include)


def self_test():
    """Runs the check on small trees: a clean one passes, each kind of violation is caught."""
    import contextlib
    import io
    import tempfile
    cases = {
        "clean": ({"src/hash/a.cpp": '#include "common/x.hpp"\n#include "datacap/types.hpp"\n'}, 0),
        "upward internal": ({"src/hash/a.cpp": '#include "store/record.hpp"\n'}, 1),
        "upward public": ({"src/page/a.hpp": '#include "datacap/cap.hpp"\n'}, 1),
        "public header upward": ({"include/datacap/hash.hpp": '#include "datacap/merkle.hpp"\n'}, 1),
        "unknown folder": ({"src/misc/a.cpp": ""}, 1),
        "umbrella": ({"src/cap/a.cpp": '#include "datacap/datacap.hpp"\n'}, 1),
        "tests may use anything": ({"src/hash/a_test.cpp": '#include "store/record.hpp"\n'}, 0),
    }
    failed = 0
    for name, (files, expected) in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            root = pathlib.Path(tmp)
            (root / "include" / "datacap").mkdir(parents=True)
            (root / "src").mkdir()
            for rel, text in files.items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text)
            with contextlib.redirect_stdout(io.StringIO()):
                got = check(root)
            if got != expected:
                print(f"check-layers self-test: '{name}' gave {got}, expected {expected}")
                failed += 1
    print(f"check-layers self-test: {len(cases) - failed}/{len(cases)} cases")
    return 1 if failed else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    return check(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())


def check(root):
    problems = []
    files = []
    public = sorted((root / "include" / "datacap").glob("*"))
    if (root / "cmake" / "version.hpp.in").exists():
        public.append(root / "cmake" / "version.hpp.in")
    for path in public:
        name = path.name.removesuffix(".in")
        if name not in OWNER:
            problems.append(f"{path.relative_to(root)}: public header with no owner in "
                            f"scripts/check-layers.py OWNER")
            continue
        files.append((path, OWNER[name]))
    for folder in sorted(p for p in (root / "src").iterdir() if p.is_dir()):
        if folder.name not in RANK:
            problems.append(f"src/{folder.name}: folder not in scripts/check-layers.py LAYERS")
            continue
        for path in sorted(folder.rglob("*")):
            if path.suffix not in (".hpp", ".cpp", ".h", ".c"):
                continue
            if path.stem.endswith("_test") or path.stem.endswith("_bench"):
                continue
            files.append((path, folder.name))
    for path, component in files:
        text = path.read_text()
        for match in INCLUDE.finditer(text):
            include = match.group(1)
            line = text.count("\n", 0, match.start()) + 1
            where = f"{path.relative_to(root)}:{line}"
            try:
                target = component_of(include)
            except KeyError:
                problems.append(f'{where}: "{include}" is not a component header')
                continue
            if component is None or target is None:
                if target is None:
                    problems.append(f'{where}: the library includes the umbrella "{include}"')
                continue
            if RANK[target] > RANK[component]:
                problems.append(f'{where}: {component} includes "{include}" of {target}, '
                                f'which comes after it ({" <- ".join(LAYERS)})')
    for problem in problems:
        print(problem)
    if problems:
        print(f"check-layers: {len(problems)} include(s) against the component order")
        return 1
    print(f"check-layers: {len(files)} files follow {' <- '.join(LAYERS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
