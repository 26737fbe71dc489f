#!/usr/bin/env python3
"""The data (and wheels) of a GPU lease: pack here, receive and reassemble there.

A device call sends at most 64 MiB (the working tree, the carried wheels and
one data part), and CIFAR-10's ``cifar10.npz`` is 144 MB.  ``pack`` (here, once,
from ``scripts/gpu/prepare.sh``) writes the arrays as an uncompressed ``.npz``
and compresses it losslessly with xz (two delta filters, the pixel to the left
and the pixel above, then LZMA2): about 0.62 of the raw bytes, against 0.92 for
the ``savez_compressed`` file; the result is cut into byte parts, each small
enough to travel beside the tree and the wheels, and ``manifest.json`` records
the sha256 of every part, of the whole compressed file, of the ``.npz`` it gives
back and of its arrays (the fingerprint ``laperm.data`` records in every run).
``--codec auto`` keeps the original file when compressing saves no call.

On the device (``receive`` in the calls before the last, ``assemble`` in the
last one, from ``lease.py``) the carried parts are copied to a folder that
outlives the call on a warm machine (``/tmp/laperm-gpu/data``), checked
against the manifest, joined and decompressed to ``cifar10.npz``.

Needs numpy only (and the standard library); never imports laperm or Keras.
Every failure is one line on stderr and exit code 2.

Usage::

    python scripts/gpu/gpudata.py pack --source ../shared/data/cifar10.npz --out .gpu-data \
        --tree-bytes N --wheels .whl
    python scripts/gpu/gpudata.py receive 1            # on the device
    python scripts/gpu/gpudata.py assemble             # on the device
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import lzma
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

MANIFEST = "manifest.json"
FORMAT = "laperm-gpu-data/1"
MIB = 1 << 20
#: What one device call may send (the lease's limit: tree + carried paths).
CALL_LIMIT = 64 * MIB
#: Kept free in every call: the tree grows while a session works (records, notes).
DEFAULT_MARGIN = 2 * MIB
#: Where the device keeps what outlives one call (a warm machine keeps /tmp).
DEFAULT_HOME = "/tmp/laperm-gpu"
_CHUNK = 4 * MIB
_KEYS = ("x_train", "y_train", "x_test", "y_test")


class LeaseError(Exception):
    """A problem the user fixes (missing or damaged file): told in one line, exit code 2."""


def home_dir(home: str | os.PathLike | None = None) -> Path:
    """The device's persistent folder: ``home``, else ``$LAPERM_GPU_HOME``, else /tmp/laperm-gpu."""
    return Path(home or os.environ.get("LAPERM_GPU_HOME") or DEFAULT_HOME)


def sha256_file(path, chunk: int = _CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def arrays_sha256(arrays) -> str:
    """``laperm.data``'s fingerprint of ``(x_train, y_train, x_test, y_test)`` (dtype, shape, bytes)."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def _xz_filters(preset: int) -> list[dict]:
    # Images are (N, 32, 32, 3) uint8, HWC: 3 bytes back is the same channel of the
    # pixel to the left, 96 bytes back the pixel above (a 32-pixel row); both deltas
    # together leave the gradient, which LZMA2 (literal context 4 bits, no position
    # bits: bytes, not words) codes best of the settings measured (README.md).
    lzma2 = {"id": lzma.FILTER_LZMA2, "preset": preset, "lc": 4, "lp": 0, "pb": 0}
    return [{"id": lzma.FILTER_DELTA, "dist": 3}, {"id": lzma.FILTER_DELTA, "dist": 96}, lzma2]


def _compress(src: Path, dst: Path, preset: int) -> None:
    comp = lzma.LZMACompressor(format=lzma.FORMAT_XZ, filters=_xz_filters(preset))
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(_CHUNK):
            fout.write(comp.compress(block))
        fout.write(comp.flush())


def plan_parts(payload_bytes: int, per_call: int, part_bytes: int | None = None) -> list[int]:
    """Sizes of the parts: as few as fit ``per_call`` bytes each, of near-equal size."""
    if part_bytes is None:
        if per_call <= 0:
            raise LeaseError("no room for data in a call: the tree and the wheels fill the "
                             f"{CALL_LIMIT // MIB} MiB already")
        n = max(1, math.ceil(payload_bytes / per_call))
        part_bytes = math.ceil(payload_bytes / n)
    n = max(1, math.ceil(payload_bytes / part_bytes))
    return [min(part_bytes, payload_bytes - i * part_bytes) for i in range(n)]


def _git(*args) -> str | None:
    try:
        out = subprocess.run(["git", *args], check=False, capture_output=True, text=True, timeout=30,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def tree_bytes(root: str | os.PathLike) -> int:
    """Bytes of the working tree a device call sends: tracked and untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout
    total = 0
    for name in out.decode().split("\0"):
        p = Path(root) / name
        if name and (p.is_file() or p.is_symlink()):
            total += p.lstat().st_size
    return total


def wheel_entries(wheels_dir) -> list[dict]:
    entries = []
    for p in sorted(Path(wheels_dir).glob("*.whl")):
        name, version = p.name.split("-")[:2]
        entries.append({"file": p.name, "name": name, "version": version,
                        "bytes": p.stat().st_size, "sha256": sha256_file(p)})
    return entries


def pack(source, out_dir, *, codec: str = "auto", tree: int = 0, wheels_dir=None,
         carry_wheels_every_call: bool = True, limit: int = CALL_LIMIT,
         margin: int = DEFAULT_MARGIN, part_bytes: int | None = None, preset: int = 9,
         dataset: str | None = None, log=print) -> dict:
    """Write the parts and ``manifest.json`` of ``source`` (a Keras-layout ``.npz``) to ``out_dir``.

    Args:
        source: the ``.npz`` (keys ``x_train, y_train, x_test, y_test``).
        out_dir: where the parts and the manifest go (emptied of earlier parts).
        codec: ``"xz"`` (the arrays, uncompressed ``.npz``, through xz), ``"none"``
            (the file's own bytes), or ``"auto"``: xz unless it saves no call.
        tree: bytes of the working tree that travels with every call.
        wheels_dir: the wheels' folder, listed in the manifest; their bytes count
            in every call (``carry_wheels_every_call``) or in the last one only.
        limit, margin: bytes a call may send, and bytes kept free in each.
        part_bytes: force this part size (tests), instead of the fewest parts that fit.
        preset: xz preset (9: best; lower is faster, for tests).
        dataset: the dataset name (default: the file's stem, e.g. ``cifar10``).

    Returns:
        The manifest (also written to ``out_dir/manifest.json``).
    """
    import numpy as np

    source, out_dir = Path(source), Path(out_dir)
    if not source.is_file():
        raise LeaseError(f"{source}: no such file")
    if codec not in ("auto", "xz", "none"):
        raise LeaseError(f"codec must be auto, xz or none, got {codec!r}")
    dataset = dataset or source.name.split(".")[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in [*out_dir.glob(f"{dataset}.npz*part*"), *out_dir.glob(f".{dataset}.npz.tmp*"),
                out_dir / MANIFEST]:
        old.unlink(missing_ok=True)
    with np.load(source, allow_pickle=False) as f:
        missing = [k for k in _KEYS if k not in f.files]
        if missing:
            raise LeaseError(f"{source}: not a Keras-layout .npz (no {', '.join(missing)})")
        arrays = [f[k] for k in _KEYS]
    wheels = wheel_entries(wheels_dir) if wheels_dir is not None else []
    wheel_total = sum(w["bytes"] for w in wheels)
    room_first = limit - tree - margin - (wheel_total if carry_wheels_every_call else 0)
    room_last = limit - tree - margin - wheel_total

    def calls_for(nbytes):
        if part_bytes is not None:
            return len(plan_parts(nbytes, 0, part_bytes))
        if nbytes <= room_last:
            return 1
        return 1 + math.ceil((nbytes - room_last) / max(room_first, 1))

    source_bytes, source_sha = source.stat().st_size, sha256_file(source)
    options = {"none": {"bytes": source_bytes, "calls": calls_for(source_bytes)}}
    npz_tmp = out_dir / f".{dataset}.npz.tmp"
    xz_path = out_dir / f"{dataset}.npz.xz"
    if codec != "none":
        with open(npz_tmp, "wb") as f:  # a file object: savez would add ".npz" to a name
            np.savez(f, **dict(zip(_KEYS, arrays)))  # uncompressed: xz codes the raw bytes
        log(f"[gpudata] compressing {npz_tmp.stat().st_size:,} bytes with xz (preset {preset}; "
            "CIFAR-10 took 6 min at preset 9 on a loaded 2-core machine) ...")
        _compress(npz_tmp, xz_path, preset)
        options["xz"] = {"bytes": xz_path.stat().st_size, "calls": calls_for(xz_path.stat().st_size)}
    chosen = codec
    if codec == "auto":
        chosen = "xz" if options["xz"]["calls"] < options["none"]["calls"] else "none"
    for name, o in options.items():
        log(f"[gpudata] codec {name}: {o['bytes']:,} bytes -> {o['calls']} call(s)"
            + ("  <- chosen" if name == chosen else ""))
    if chosen == "xz":
        payload, npz_info = xz_path, {"name": f"{dataset}.npz", "bytes": npz_tmp.stat().st_size,
                                      "sha256": sha256_file(npz_tmp)}
        npz_tmp.unlink()
    else:
        npz_tmp.unlink(missing_ok=True)
        xz_path.unlink(missing_ok=True)
        payload = source
        npz_info = {"name": f"{dataset}.npz", "bytes": source_bytes, "sha256": source_sha}
    payload_bytes = payload.stat().st_size
    if part_bytes is None and options[chosen]["calls"] > 1:
        # near-equal parts; the first ones may be a little larger than the last (no wheels)
        n = options[chosen]["calls"]
        part_bytes = math.ceil(payload_bytes / n)
        if payload_bytes - (n - 1) * part_bytes > room_last or part_bytes > room_first:
            part_bytes = room_first
    sizes = plan_parts(payload_bytes, room_first, part_bytes)
    suffix = ".xz" if chosen == "xz" else ""
    parts = []
    with open(payload, "rb") as fin:
        for i, size in enumerate(sizes, 1):
            name = f"{dataset}.npz{suffix}.part{i}"
            h = hashlib.sha256()
            with open(out_dir / name, "wb") as fout:
                left = size
                while left:
                    block = fin.read(min(_CHUNK, left))
                    h.update(block)
                    fout.write(block)
                    left -= len(block)
            parts.append({"index": i, "name": name, "bytes": size, "sha256": h.hexdigest()})
    manifest = {
        "format": FORMAT,
        "dataset": dataset,
        "codec": chosen,
        "xz_filters": f"delta dist 3, delta dist 96, LZMA2 preset {preset} lc 4 lp 0 pb 0"
        if chosen == "xz" else None,
        "options_measured": options,
        "payload": {"name": f"{dataset}.npz{suffix}", "bytes": payload_bytes,
                    "sha256": sha256_file(payload)},
        "npz": npz_info,
        "source": {"path": str(source), "bytes": source_bytes, "sha256": source_sha},
        "arrays": {"sha256": arrays_sha256(arrays),
                   "shapes": {k: list(a.shape) for k, a in zip(_KEYS, arrays)}},
        "parts": parts,
        "wheels": wheels,
        "sizes": {"tree_bytes": tree, "wheels_bytes": wheel_total, "limit_bytes": limit,
                  "margin_bytes": margin},
        "commit": _git("rev-parse", "HEAD"),
        "tree_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "made": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if chosen == "xz":
        xz_path.unlink()  # the parts hold it
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(data_dir) -> dict:
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise LeaseError(f"{path} missing: name it in the call's carry (scripts/gpu/prepare.sh "
                         "writes it)")
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise LeaseError(f"{path}: damaged ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise LeaseError(f"{path}: not a {FORMAT} manifest")
    return manifest


def _part(manifest, which) -> dict:
    parts = manifest["parts"]
    for p in parts:
        if str(which) == str(p["index"]) or Path(str(which)).name == p["name"]:
            return p
    raise LeaseError(f"no part {which!r} in the manifest (parts 1-{len(parts)}: "
                     f"{', '.join(p['name'] for p in parts)})")


def _copy_checked(src: Path, dst: Path, part: dict, total: int) -> None:
    what = f"part {part['index']} of {total} ({part['name']})"
    size = src.stat().st_size
    if size != part["bytes"]:
        raise LeaseError(f"{what} corrupt: {size:,} bytes, the manifest says {part['bytes']:,} "
                         f"({src}); carry it again")
    digest = sha256_file(src)
    if digest != part["sha256"]:
        raise LeaseError(f"{what} corrupt: sha256 {digest[:16]}..., the manifest says "
                         f"{part['sha256'][:16]}... ({src}); carry it again")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.resolve() != dst.resolve():
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def _store_has(store: Path, part: dict) -> bool:
    """Whether the store already holds this part, intact (checked by size, then sha256)."""
    p = store / part["name"]
    return p.is_file() and p.stat().st_size == part["bytes"] and sha256_file(p) == part["sha256"]


def receive(which, data_dir=".gpu-data", home=None) -> str:
    """Copy a carried part into the device's store after checking it; returns the status line."""
    manifest = read_manifest(data_dir)
    part = _part(manifest, which)
    total = len(manifest["parts"])
    src = Path(data_dir) / part["name"]
    store = home_dir(home) / "data"
    if not src.is_file():
        raise LeaseError(f"part {part['index']} of {total} ({part['name']}) missing: it was not "
                         f"carried in this call (name {Path(data_dir) / part['name']} in carry)")
    _copy_checked(src, store / part["name"], part, total)
    here = [p["index"] for p in manifest["parts"] if (store / p["name"]).is_file()]
    wanted = [p["index"] for p in manifest["parts"] if p["index"] not in here]
    return (f"received part {part['index']} of {total} ({part['name']}, {part['bytes']:,} bytes, "
            f"sha256 ok) in {store}; parts here: {', '.join(map(str, here))}"
            + (f"; still to come: {', '.join(map(str, wanted))}" if wanted else "; all here"))


def collect(data_dir=".gpu-data", home=None, log=print) -> dict:
    """Move every carried part into the store; check that all parts are there.

    Returns the manifest.  Raises LeaseError naming the first missing or corrupt part.
    """
    manifest = read_manifest(data_dir)
    store = home_dir(home) / "data"
    total = len(manifest["parts"])
    final = store / manifest["npz"]["name"]
    if final.is_file() and final.stat().st_size == manifest["npz"]["bytes"] \
            and sha256_file(final) == manifest["npz"]["sha256"]:
        return manifest  # assembled by an earlier call on this machine
    for part in manifest["parts"]:
        carried = Path(data_dir) / part["name"]
        if carried.is_file():
            _copy_checked(carried, store / part["name"], part, total)
            log(f"[gpudata] part {part['index']} of {total} carried in this call: sha256 ok")
        elif _store_has(store, part):
            log(f"[gpudata] part {part['index']} of {total} here from an earlier call: sha256 ok")
        elif (store / part["name"]).is_file():
            raise LeaseError(f"part {part['index']} of {total} ({part['name']}) corrupt in "
                             f"{store}: carry it again (bash scripts/gpu/receive.sh "
                             f"{part['index']})")
        else:
            raise LeaseError(
                f"part {part['index']} of {total} ({part['name']}) missing: not carried in this "
                f"call and not in {store} from an earlier one (the machine was given back "
                "between calls?); send the parts again, one call each, back to back "
                "(scripts/gpu/README.md)")
    return manifest


def assemble(data_dir=".gpu-data", home=None, log=print) -> Path:
    """Join (and decompress) the parts into ``<home>/data/<dataset>.npz``; returns its path."""
    manifest = collect(data_dir, home, log)
    store = home_dir(home) / "data"
    final = store / manifest["npz"]["name"]
    if final.is_file() and final.stat().st_size == manifest["npz"]["bytes"] \
            and sha256_file(final) == manifest["npz"]["sha256"]:
        log(f"[gpudata] {final}: assembled already, sha256 ok")
        return final
    tmp = final.with_name(final.name + ".tmp")
    try:
        _join(manifest, store, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, final)
    log(f"[gpudata] {final}: {final.stat().st_size:,} bytes from {len(manifest['parts'])} "
        f"part(s), sha256 ok")
    return final


def _join(manifest: dict, store: Path, tmp: Path) -> None:
    """Write the joined (decompressed) parts to ``tmp`` and check every sha256 on the way."""
    final_name = manifest["npz"]["name"]
    h = hashlib.sha256()
    decomp = lzma.LZMADecompressor(format=lzma.FORMAT_XZ) if manifest["codec"] == "xz" else None
    with open(tmp, "wb") as fout:
        for part in manifest["parts"]:
            with open(store / part["name"], "rb") as fin:
                while block := fin.read(_CHUNK):
                    h.update(block)
                    try:
                        fout.write(decomp.decompress(block) if decomp else block)
                    except lzma.LZMAError as exc:
                        raise LeaseError(f"{manifest['payload']['name']}: cannot decompress "
                                         f"({exc}); make the parts again with prepare.sh") from None
    if h.hexdigest() != manifest["payload"]["sha256"]:
        raise LeaseError(f"the joined parts do not give {manifest['payload']['name']} "
                         "(sha256 differs): make the parts again with prepare.sh")
    if decomp is not None and not decomp.eof:
        raise LeaseError(f"{manifest['payload']['name']}: truncated xz stream")
    digest = sha256_file(tmp)
    if digest != manifest["npz"]["sha256"]:
        raise LeaseError(f"{final_name}: sha256 {digest[:16]}... after reassembly, the manifest "
                         f"says {manifest['npz']['sha256'][:16]}...")


def call_plan(manifest: dict, data_dir: str = ".gpu-data", wheels_dir: str = ".whl",
              check_first: bool = True) -> list[dict]:
    """The device calls of one lease, in order: command, carry and timeout_s of each."""
    parts = manifest["parts"]
    calls = []
    for part in parts:
        carry = [f"{data_dir}/{MANIFEST}", f"{data_dir}/{part['name']}", wheels_dir]
        if part["index"] < len(parts):
            command = f"bash scripts/gpu/receive.sh {part['index']}"
            if check_first and part["index"] == 1:
                command += " && python3 scripts/gpu/lease.py --check-only"
            calls.append({"command": command, "carry": carry,
                          "timeout_s": 120 if part["index"] == 1 else 60})
        else:
            calls.append({"command": "bash scripts/gpu/run.sh", "carry": carry, "timeout_s": 600})
    return calls


def print_plan(manifest: dict, tree: int, out=print) -> None:
    """Sizes of what travels, and the calls (the lines prepare.sh ends with)."""
    wheels = sum(w["bytes"] for w in manifest["wheels"])
    out(f"working tree (tracked + untracked-not-ignored): {tree / MIB:6.2f} MiB")
    for w in manifest["wheels"]:
        out(f"wheel {w['file']}: {w['bytes'] / MIB:6.2f} MiB")
    opts = manifest.get("options_measured") or {}
    for name, o in opts.items():
        out(f"data as codec {name}: {o['bytes'] / MIB:6.2f} MiB -> {o['calls']} call(s)"
            + ("  (chosen)" if name == manifest["codec"] else ""))
    for part in manifest["parts"]:
        total = tree + wheels + part["bytes"]
        out(f"part {part['index']} {part['name']}: {part['bytes'] / MIB:6.2f} MiB; call "
            f"{part['index']} sends {total / MIB:6.2f} MiB of {CALL_LIMIT // MIB} MiB"
            + ("" if total <= CALL_LIMIT else "  <- TOO LARGE: ignore or carry less"))
    out("")
    out("Device calls, one right after the other (the machine stays warm 30 s after a call; "
        "then give_back):")
    for i, call in enumerate(call_plan(manifest), 1):
        out(f"  {i}. run command={json.dumps(call['command'])} carry={json.dumps(call['carry'])} "
            f"timeout_s={call['timeout_s']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="gpudata.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack", help="here: parts and manifest of an .npz")
    p.add_argument("--source", required=True, type=Path)
    p.add_argument("--out", default=Path(".gpu-data"), type=Path)
    p.add_argument("--codec", default="auto", choices=["auto", "xz", "none"])
    p.add_argument("--tree-bytes", type=int, default=0)
    p.add_argument("--wheels", type=Path, default=None)
    p.add_argument("--wheels-last-call-only", action="store_true")
    p.add_argument("--margin-bytes", type=int, default=DEFAULT_MARGIN)
    p.add_argument("--part-bytes", type=int, default=None)
    p.add_argument("--preset", type=int, default=9)
    pl = sub.add_parser("plan", help="here: sizes that travel and the device calls")
    pl.add_argument("--data", default=Path(".gpu-data"), type=Path)
    pl.add_argument("--root", default=Path("."), type=Path)
    r = sub.add_parser("receive", help="device: check a carried part and keep it")
    r.add_argument("part", help="part number (1, 2, ...) or file name")
    for q in (r, sub.add_parser("assemble", help="device: join the parts into the .npz")):
        q.add_argument("--data", default=Path(".gpu-data"), type=Path)
        q.add_argument("--home", default=None)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "pack":
            m = pack(args.source, args.out, codec=args.codec, tree=args.tree_bytes,
                     wheels_dir=args.wheels, carry_wheels_every_call=not args.wheels_last_call_only,
                     margin=args.margin_bytes, part_bytes=args.part_bytes, preset=args.preset)
            print(f"[gpudata] {len(m['parts'])} part(s) of {m['payload']['name']} in {args.out}")
        elif args.cmd == "plan":
            print_plan(read_manifest(args.data), tree_bytes(args.root))
        elif args.cmd == "receive":
            print(receive(args.part, args.data, args.home))
        else:
            print(assemble(args.data, args.home))
    except LeaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
