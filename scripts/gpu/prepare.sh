#!/usr/bin/env bash
# Here, once before a GPU lease (scripts/gpu/README.md): everything the device lacks, in pieces
# that fit the 64 MiB a device call may send.
#   1. .whl/: the wheels the device has not (keras, namex, optree; cp312 manylinux x86_64),
#      pinned to the versions in .venv-jax; each one's Requires-Dist is checked against the
#      packages the device holds (the package list of the lent machine).
#   2. .gpu-data/: CIFAR-10 (../shared/data/cifar10.npz or $LAPERM_DATA_DIR) losslessly
#      re-compressed (xz) when that saves a call, cut into parts, with manifest.json (the
#      sha256 of every part, the whole file, the .npz it gives back, its arrays, the wheels).
#   3. prints the sizes and the exact device calls (command, carry, timeout_s).
# Both folders are ignored (.git/info/exclude) and travel only when a call names them in carry.
# Environment: PYTHON (numpy and pip; default .venv/bin/python), KERAS_VERSION, NAMEX_VERSION,
# OPTREE_VERSION (default: those of .venv-jax), DATA (the .npz), CODEC (auto, xz or none),
# XZ_PRESET (default 9: 6 min for CIFAR-10 on a loaded 2-core machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3

exclude="$(git rev-parse --git-path info/exclude)"
mkdir -p "$(dirname "$exclude")"
for pattern in /.whl/ /.gpu-data/; do
    grep -qxF "$pattern" "$exclude" 2>/dev/null || echo "$pattern" >>"$exclude"
done

version_of() {  # the version in .venv-jax, else the one tested
    if [ -x .venv-jax/bin/python ]; then
        .venv-jax/bin/python -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null \
            && return
    fi
    echo "$2"
}
KERAS_VERSION="${KERAS_VERSION:-$(version_of keras 3.15.1)}"
NAMEX_VERSION="${NAMEX_VERSION:-$(version_of namex 0.1.0)}"
OPTREE_VERSION="${OPTREE_VERSION:-$(version_of optree 0.20.0)}"

echo "[prepare] wheels for the device (Python 3.12, manylinux x86_64): keras $KERAS_VERSION," \
     "namex $NAMEX_VERSION, optree $OPTREE_VERSION"
mkdir -p .whl
for f in .whl/*.whl; do  # one version of each: two stop the whole install there
    [ -e "$f" ] || continue
    case "$(basename "$f")" in
        keras-"$KERAS_VERSION"-*|namex-"$NAMEX_VERSION"-*|optree-"$OPTREE_VERSION"-*) ;;
        *) echo "[prepare] removing $f (another version or package)"; rm -f "$f" ;;
    esac
done
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl "keras==$KERAS_VERSION" "namex==$NAMEX_VERSION" "optree==$OPTREE_VERSION"

# What the wheels need, against what the device holds (the package list of the lent machine).
"$PY" - <<'EOF'
import re, sys, zipfile
from pathlib import Path

device = set("""absl-py h5py jax jaxlib ml-dtypes numpy packaging pandas rich typing-extensions
matplotlib seaborn tqdm scipy pillow""".split())
carried = {p.name.split("-")[0].lower().replace("_", "-") for p in Path(".whl").glob("*.whl")}
missing = []
for wheel in sorted(Path(".whl").glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        needs = [l.split(":", 1)[1].strip() for l in z.read(meta).decode().splitlines()
                 if l.startswith("Requires-Dist:")]
    names = []
    for need in needs:
        if "extra ==" in need:
            continue
        if 'python_version >= "3.13"' in need or 'python_version >= "3.15"' in need:
            continue  # not for the device's Python 3.12
        name = re.split(r"[ <>=!;\[(~]", need, maxsplit=1)[0].lower().replace("_", "-")
        names.append(name)
        if name not in device | carried:
            missing.append(f"{name} (needed by {wheel.name})")
    print(f"[prepare] {wheel.name}: needs {', '.join(names) or 'nothing'}")
if missing:
    sys.exit("[prepare] error: not on the device and not carried: " + ", ".join(missing))
print("[prepare] every requirement is on the device or carried")
EOF

DATA="${DATA:-}"
if [ -z "$DATA" ]; then
    for d in "${LAPERM_DATA_DIR:-}" ../shared/data; do
        if [ -n "$d" ] && [ -f "$d/cifar10.npz" ]; then DATA="$d/cifar10.npz"; break; fi
    done
fi
[ -n "$DATA" ] && [ -f "$DATA" ] || { echo "[prepare] error: cifar10.npz not found (set DATA)" >&2; exit 2; }

tree=$("$PY" -c "import sys; sys.path.insert(0, 'scripts/gpu'); import gpudata; print(gpudata.tree_bytes('.'))")
echo "[prepare] data $DATA; working tree $tree bytes"
"$PY" scripts/gpu/gpudata.py pack --source "$DATA" --out .gpu-data --tree-bytes "$tree" \
    --wheels .whl --codec "${CODEC:-auto}" --preset "${XZ_PRESET:-9}"
echo
"$PY" scripts/gpu/gpudata.py plan --data .gpu-data --root .
