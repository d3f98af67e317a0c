#!/usr/bin/env bash
# Static analysis of the project's C++: clang-tidy (checks in .clang-tidy) and cppcheck, over the
# compile database of a configured build (CMAKE_EXPORT_COMPILE_COMMANDS is on). Exit 1 when either
# reports a finding. Usage: scripts/lint.sh [FILE_REGEX]   (default: every file under src/)
#   MS_BUILD=build   the build folder whose compile_commands.json is used
#   MS_JOBS=N        parallel clang-tidy processes
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$MS_ROOT"
DB="$MS_BUILD/compile_commands.json"
[ -f "$DB" ] || { echo "lint: $DB missing; configure a build first (ms_build $MS_BUILD)" >&2; exit 2; }
FILTER="${1:-$MS_ROOT/src/.*\\.cpp$}"
status=0

echo "== clang-tidy ($FILTER)"
RUN_TIDY="$(command -v run-clang-tidy || command -v run-clang-tidy-14 || true)"
[ -n "$RUN_TIDY" ] || { echo "lint: run-clang-tidy not found (apt-get install clang-tidy)" >&2; exit 2; }
# ccache in the recorded commands is harmless for clang-tidy (it reads the arguments after it).
# run-clang-tidy colours clang-tidy's output even into a file: the escapes are stripped, or no
# finding line would match below.
"$RUN_TIDY" -quiet -p "$MS_BUILD" -j "$MS_JOBS" "$FILTER" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' > "$MS_BUILD/clang-tidy.log" || true
findings=$(grep -cE ": (warning|error): .*\[[a-z]+-[a-z0-9.-]+\]$" "$MS_BUILD/clang-tidy.log" || true)
echo "clang-tidy: $findings finding(s) (full log: $MS_BUILD/clang-tidy.log)"
grep -E ": (warning|error): .*\[[a-z]+-[a-z0-9.-]+\]$" "$MS_BUILD/clang-tidy.log" | sort -u | head -50 || true
[ "$findings" = "0" ] || status=1

echo "== cppcheck"
# Warnings and performance only (style is not checked); the dependencies' headers are not ours.
# (The project path is given relative to the checkout: cppcheck matches --file-filter against the
# file names as it derives them from it.)
cppcheck --quiet --project="$(realpath --relative-to="$MS_ROOT" "$DB")" --enable=warning,performance --inline-suppr \
  --suppress=missingIncludeSystem --suppress='*:/usr/*' --suppress='*:*/build/*' \
  --file-filter='src/*' -j "$MS_JOBS" --error-exitcode=1 2> "$MS_BUILD/cppcheck.log" || status=1
echo "cppcheck: $(grep -c '' "$MS_BUILD/cppcheck.log" || true) line(s) of findings (log: $MS_BUILD/cppcheck.log)"
head -50 "$MS_BUILD/cppcheck.log" || true
exit $status
