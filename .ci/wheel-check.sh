#!/usr/bin/env bash
# Build the sdist and the wheel, check their metadata, install the wheel (not editable) into a
# fresh virtual environment and use it from a folder outside the source tree, as a user would:
# the command line, the offline demo, the napari plugin and its manifest through npe2.
# Run by .ci/run and `make wheel-check`; any failing step fails the script.
#   BUILD_PYTHON  a Python with `build` and `twine` (default: .venv/bin/python, the dev env)
#   PYTHON        the Python for the fresh environment (default: python3)
#   KEEP=1        keep the work folder (printed) for a look afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_PYTHON=${BUILD_PYTHON:-.venv/bin/python}
PYTHON=${PYTHON:-python3}
TORCH=(torch==2.14.1 torchvision==0.29.1)
TCMALLOC=$(ls /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
  /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4 2>/dev/null | head -n1 || true)

work=$(mktemp -d "${TMPDIR:-/tmp}/labelassist-wheel-check.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
  trap 'echo "wheel-check: work folder kept: $work"' EXIT
else
  trap 'rm -rf "$work"' EXIT
fi
step() { printf '\n== wheel-check [%ss]: %s\n' "$SECONDS" "$*"; }
fail() { echo "wheel-check: FAILED: $*" >&2; exit 1; }
# pip's output goes to a log (the machine's index configuration makes it chatty); shown on failure
pip_install() {
  "$venv/python" -m pip install --disable-pip-version-check "$@" >>"$work/pip.log" 2>&1 ||
    { grep -v "is ignored: it is neither" "$work/pip.log" | tail -n 40; fail "pip install $*"; }
}

step "build the sdist and the wheel (isolated, from the sdist)"
"$BUILD_PYTHON" -m build --outdir "$work/dist" . >"$work/build.log" 2>&1 ||
  { tail -n 40 "$work/build.log"; fail "python -m build"; }
wheel=$(ls "$work"/dist/labelassist-*.whl)
ls -l "$work/dist"

step "twine check --strict (PyPI metadata, README rendering)"
"$BUILD_PYTHON" -m twine check --strict "$work"/dist/* || fail "twine check"

step "fresh virtual environment: torch, then the wheel with the napari extra"
"$PYTHON" -m venv "$work/venv"
venv="$work/venv/bin"
pip_install "${TORCH[@]}"
pip_install "$wheel[napari]"
"$venv/python" -m pip list 2>/dev/null | grep -iE "^(labelassist|torch|torchvision|napari|npe2) "

# From here on: outside the source tree, nothing of it on the path.
mkdir "$work/user"
cd "$work/user"
unset PYTHONPATH
export QT_QPA_PLATFORM=offscreen ${TCMALLOC:+LD_PRELOAD=$TCMALLOC}

step "the installed package comes from the wheel, not from the source tree"
"$venv/python" - "$work/venv" <<'PY' || fail "the installed package"
import json
import sys
from importlib.metadata import distribution
from pathlib import Path

import labelassist, labelassist_napari

venv = Path(sys.argv[1]).resolve()
for module in (labelassist, labelassist_napari):
    path = Path(module.__file__).resolve()
    assert venv in path.parents, f"{module.__name__} imported from {path}, not from the wheel"
    print(f"{module.__name__:20s} {path}")
direct_url = json.loads(distribution("labelassist").read_text("direct_url.json") or "{}")
assert not direct_url.get("dir_info", {}).get("editable"), "labelassist is an editable install"
assert "torch" not in sys.modules, "import labelassist imported torch"
PY

step "labelassist --help"
"$venv/labelassist" --help >"$work/help.txt" || fail "labelassist --help"
head -n 5 "$work/help.txt"
grep -q "preannotate" "$work/help.txt" || fail "labelassist --help does not list preannotate"

step "labelassist demo --out demo"
"$venv/labelassist" demo --out "$work/user/demo" || fail "labelassist demo"
test -s "$work/user/demo/predictions.json" || fail "labelassist demo wrote no predictions.json"
"$venv/python" -c "
import json, sys
coco = json.load(open(sys.argv[1]))
assert coco['images'] and coco['annotations'], 'predictions.json has no images or annotations'
print(len(coco['images']), 'images,', len(coco['annotations']), 'annotations')
" "$work/user/demo/predictions.json"

step "the napari plugin: import, manifest through npe2, npe2 validate"
"$venv/python" -c "import labelassist_napari" || fail "import labelassist_napari"
"$venv/python" -c "
from npe2 import PluginManager
pm = PluginManager.instance()
pm.discover()
manifest = pm.get_manifest('labelassist')  # KeyError when the entry point is missing
print('npe2 sees', manifest.name, manifest.package_metadata.version,
      'with', len(manifest.contributions.commands or []), 'commands')
" || fail "npe2 does not see the labelassist manifest"
"$venv/npe2" validate labelassist --imports || fail "npe2 validate labelassist"

step "all passed"
