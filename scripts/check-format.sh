#!/usr/bin/env bash
# Fails when a C++ file of the project is not laid out as .clang-format says. With --fix, lays
# them out instead. Runs on the files git tracks (new files: add them first).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -- '*.cpp' '*.hpp' '*.h' '*.c')
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run --Werror "${files[@]}" 2>/tmp/check-format.$$; then
  grep -E '^[^ ].*(warning|error):' /tmp/check-format.$$ | sed 's/: warning: code should be clang-formatted.*//' | sort -u | head -40
  rm -f /tmp/check-format.$$
  echo "check-format: the files above differ from .clang-format (scripts/check-format.sh --fix)"
  exit 1
fi
rm -f /tmp/check-format.$$
echo "check-format: ${#files[@]} files laid out as .clang-format says"
