#!/usr/bin/env bash
# README's "Two commands on a fresh machine", run in order as written, then in the reverse order:
#   pip install . && rnngen train                  (a regular install)
#   pip install -e ".[test,cuda]" && pytest -q     (an editable install over it)
#   pip install . && rnngen train                  (the reverse: a regular install over the editable one)
# in one fresh venv, on a copy of the repo's files (tracked and untracked-not-ignored). It checks
# that nothing rnngen writes at run time lands in site-packages (Numba's cache of an installed
# rnngen goes to $XDG_CACHE_HOME/rnngen/numba), that pip's uninstall leaves no rnngen/ folder
# behind, and that the editable install is the rnngen imported afterwards.
# Slow (pip installs, Numba compiles), so it is a CI step (.ci/run), not a unit test; short runs:
# `rnngen train --steps 20`, and pytest collects the whole suite but runs only tests/test_readme.py.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
src="$tmp/src" elsewhere="$tmp/elsewhere" cache="$tmp/cache"
mkdir -p "$src" "$elsewhere"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$src"

python3 -m venv "$tmp/venv"
. "$tmp/venv/bin/activate"
site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
step() { echo "--- install_order $(date +%T): $*"; }
fail() { echo "install_order: FAILED: $*" >&2; exit 1; }
# rnngen's commands see a cache home of their own (pip keeps the real one: its cache is warm)
rnngen_() { XDG_CACHE_HOME="$cache" rnngen "$@"; }
pyrun() { XDG_CACHE_HOME="$cache" python "$@"; }
train() {  # README's `rnngen train`, short; its progress lines go to a log, shown if it fails
    rnngen_ train --steps 20 --hidden 16 --samples 1 >"$tmp/train.log" 2>&1 ||
        { cat "$tmp/train.log"; fail "rnngen train"; }
    tail -1 "$tmp/train.log"
}

only_recorded_files() {  # every file under site-packages/rnngen is one the install's RECORD lists
    python - "$site" <<'EOF'
import pathlib, sys
site = pathlib.Path(sys.argv[1])
records = list(site.glob("rnngen-*.dist-info/RECORD"))
assert len(records) == 1, f"expected one rnngen dist-info in {site}, found {records}"
listed = {line.split(",")[0] for line in records[0].read_text().splitlines()}
extra = sorted(str(p.relative_to(site)) for p in (site / "rnngen").rglob("*")
               if p.is_file() and str(p.relative_to(site)) not in listed)
if extra:
    sys.exit(f"written into site-packages at run time (pip's uninstall leaves them): {extra[:5]}")
EOF
}
imports_from() {  # rnngen, its submodules and the `rnngen` command come from folder $1
    (cd "$elsewhere" && pyrun -c "
import os, sys, rnngen, rnngen.training, rnngen.tools.build
where = os.path.realpath(os.path.dirname(rnngen.__file__))
assert where == os.path.realpath(sys.argv[1]), f'rnngen imported from {where}, not {sys.argv[1]}'
print('rnngen', rnngen.__version__, 'from', where)" "$1")
    (cd "$elsewhere" && rnngen_ list >/dev/null) || fail "the rnngen command does not run"
}
uninstall_is_clean() {
    [ ! -e "$site/rnngen" ] || fail "pip's uninstall left $(find "$site/rnngen" | head -5 | tr '\n' ' ')"
}

cd "$src"
step "pip install . && rnngen train (README order)"
pip install -q .
train
imports_from "$site/rnngen"
only_recorded_files
ls "$cache"/rnngen/numba/rnngen-*/generated_*/*.nbi >/dev/null || fail "no Numba cache in $cache/rnngen/numba"

step 'pip install -e ".[test,cuda]" && pytest -q tests/test_readme.py (a short subset of the suite)'
pip install -q -e ".[test,cuda]"
uninstall_is_clean
imports_from "$src/rnngen"
XDG_CACHE_HOME="$cache" pytest -q --collect-only tests >"$tmp/collect.log" 2>&1 ||
    { tail -15 "$tmp/collect.log"; fail "pytest cannot collect the suite"; }
XDG_CACHE_HOME="$cache" pytest -q tests/test_readme.py

step "pip install . && rnngen train (the reverse order: over the editable install)"
pip install -q .
train
imports_from "$site/rnngen"
only_recorded_files
pip uninstall -q -y rnngen
uninstall_is_clean
step "both orders work"
