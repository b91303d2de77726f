#!/usr/bin/env python3
"""Prints the first fenced code block of a language in README.md, so the test command can
compile and run the README's examples exactly as written.

Usage: scripts/readme-block.py LANG [README]   (exit 1 when there is no ```LANG block)
"""
import pathlib
import re
import sys


def main():
    lang = sys.argv[1]
    readme = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    match = re.search(r"^```" + re.escape(lang) + r"\n(.*?)^```$", readme.read_text(), re.M | re.S)
    if match is None:
        print(f"readme-block: no ```{lang} block in {readme}", file=sys.stderr)
        return 1
    sys.stdout.write(match.group(1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
