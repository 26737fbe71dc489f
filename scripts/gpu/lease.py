#!/usr/bin/env python3
"""The last call of a GPU lease: Conv2, Conv4 and Conv13, LaPerm and Adam, at once, on one GPU.

On the device (scripts/gpu/README.md gives the whole sequence of calls)::

    python3 scripts/gpu/lease.py                 # what scripts/gpu/run.sh runs
    python3 scripts/gpu/lease.py --check-only    # first call: wheels and JAX, no training

In order, each failure one line (``error: ...``, exit code 2):

1. installs the carried wheels (``.whl/``, listed with their sha256 in
   ``.gpu-data/manifest.json``) into ``/tmp/site`` with ``pip --no-index
   --no-deps`` (a missing or damaged wheel is named);
2. reassembles the data from the parts carried in this call and those kept in
   ``/tmp/laperm-gpu/data`` by earlier calls (``receive.sh``), checking every
   sha256 (a missing or corrupt part is named);
3. starts one ``python -m laperm.reproduce`` per experiment and optimizer, all
   at once, under ``KERAS_BACKEND=jax`` with a share of the GPU's memory each
   (``XLA_PYTHON_CLIENT_MEM_FRACTION``), at the paper's settings unless
   ``--epochs`` / ``--train-fraction`` say otherwise;
4. while they run, appends every finished epoch of every run to
   ``$OUT/progress.jsonl`` the moment its ``history.csv`` shows it, and
   rewrites ``summary.json``, ``summary.md`` and ``runs.tar.gz`` (the run
   folders without checkpoints or weights) every ``--flush-s`` seconds, so a
   call killed at its limit still returns what was done;
5. at ``--budget-s`` minus ``--wrapup-s`` stops the runs (SIGTERM, then
   SIGKILL), records each cut run as a reduced run of the epochs it did
   (``reproduce --snapshot``, on the device, so the record names the GPU), and
   writes and prints the timing summary.

What comes back in ``$OUT`` (at most 8 files; here 5): ``progress.jsonl``,
``summary.json``, ``summary.md``, ``lease.log``, ``runs.tar.gz``.
Exit codes: 0 every run finished or was cut at the deadline; 1 a run failed
(its log's end is printed); 2 a bad input.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import gpudata
from gpudata import LeaseError

DEFAULT_EXPERIMENTS = ("conv2", "conv4", "conv13")
OPTIMIZERS = ("laperm", "adam")
OUT_FILES = ("progress.jsonl", "summary.json", "summary.md", "lease.log", "runs.tar.gz")
#: The GPU memory the runs share (each gets this divided by their number).
GPU_MEMORY_SHARE = 0.9
_BAR = re.compile(r"(\d+)/(\d+) \[([\d:]+)<([\d:?]+),\s*([\d.]+|\?)(step/s|s/step)")


def _now() -> float:
    return time.monotonic()


class Log:
    """Lines to stdout and ``$OUT/lease.log`` at once (flushed: a killed call keeps them)."""

    def __init__(self, path: Path | None):
        self.file = open(path, "a", buffering=1) if path is not None else None  # noqa: SIM115

    def __call__(self, line: str) -> None:
        # errors on stderr (the one line a bad input gets), the rest on stdout
        print(line, flush=True, file=sys.stderr if line.startswith("error:") else sys.stdout)
        if self.file is not None:
            self.file.write(line + "\n")
            self.file.flush()


# --------------------------------------------------------------------------
# 1. wheels
# --------------------------------------------------------------------------


def install_wheels(manifest: dict, wheels_dir: Path, site: Path, log) -> str:
    """Install the manifest's wheels into ``site`` (skipped when it holds them already)."""
    wheels = manifest.get("wheels") or []
    if not wheels:
        raise LeaseError("the manifest lists no wheels: run scripts/gpu/prepare.sh here (it "
                         "downloads them into .whl/)")
    paths = []
    for w in wheels:
        path = wheels_dir / w["file"]
        if not path.is_file():
            raise LeaseError(f"carried wheel missing: {path} ({w['name']} {w['version']}); name "
                             f"{wheels_dir.name} in the call's carry (scripts/gpu/prepare.sh "
                             "downloads it)")
        if path.stat().st_size != w["bytes"] or gpudata.sha256_file(path) != w["sha256"]:
            raise LeaseError(f"carried wheel damaged: {path} (sha256 differs from the manifest); "
                             "run scripts/gpu/prepare.sh again")
        paths.append(path)
    marker = site / ".laperm-wheels.json"
    wanted = sorted(w["sha256"] for w in wheels)
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return f"wheels installed already in {site}"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
           "--no-cache-dir", "--upgrade", "--disable-pip-version-check", "--target", str(site),
           *map(str, paths)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise LeaseError(f"pip could not install the carried wheels into {site}: {last}")
    marker.write_text(json.dumps(wanted))
    return (f"installed {', '.join(w['name'] + ' ' + w['version'] for w in wheels)} into {site}")


# --------------------------------------------------------------------------
# 3. the runs
# --------------------------------------------------------------------------


class Run:
    """One ``python -m laperm.reproduce`` process and its run folder."""

    def __init__(self, experiment: str, optimizer: str, parent: Path, args,
                 seed: int | None = None):
        seed = args.seeds[0] if seed is None else seed
        self.experiment, self.optimizer, self.parent = experiment, optimizer, parent
        self.key = f"{experiment}-{optimizer}" + (f"-s{seed}" if len(args.seeds) > 1 else "")
        self.log_path = parent / "process.log"
        self.proc: subprocess.Popen | None = None
        self.started = self.ended = None
        self.rc: int | None = None
        self.stopped = False
        self.rows: list[dict] = []
        self.first_row_at: float | None = None  # epoch time (time.time) of the first row
        self.start_wall: float | None = None
        self._folder: Path | None = None
        self.cmd = [sys.executable, "-m", "laperm.reproduce", experiment, "--seeds", str(seed),
                    "--out", str(parent)]
        if args.engine != "fit":  # recorded in the run folder, so the snapshot needs no flag
            self.cmd += ["--engine", args.engine]
        if optimizer == "adam":
            self.cmd.append("--only-baseline")
        self.reduce = []
        if args.epochs is not None:
            self.reduce += ["--epochs", str(args.epochs)]
        if args.train_fraction is not None:
            self.reduce += ["--train-fraction", str(args.train_fraction)]
        if args.precision != "float32":
            self.reduce += ["--precision", args.precision]
        self.cmd += self.reduce

    def folder(self) -> Path | None:
        """The run's folder (the one ``reproduce`` made under ``parent``), once it exists.

        Remembered when first seen: the reduced record ``reproduce --snapshot`` writes
        later beside it (its ``result.json`` says ``snapshot_of``) is not the run.
        """
        if self._folder is None:
            for config in sorted(self.parent.glob("*/config.json")):
                result = config.parent / "result.json"
                try:
                    snapshot = result.is_file() and "snapshot_of" in json.loads(result.read_text())
                except (OSError, ValueError):
                    snapshot = False
                if not snapshot:
                    self._folder = config.parent
                    break
        return self._folder

    def start(self, env: dict) -> None:
        self.parent.mkdir(parents=True, exist_ok=True)
        self.start_wall, self.started = time.time(), _now()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def running(self) -> bool:
        if self.proc is None or self.rc is not None:
            return False
        rc = self.proc.poll()
        if rc is None:
            return True
        self.rc, self.ended = rc, _now()
        return False

    def signal(self, sig) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def poll_history(self) -> list[dict]:
        """The epochs added to ``history.csv`` since the last look."""
        folder = self.folder()
        if folder is None or not (folder / "history.csv").is_file():
            return []
        path = folder / "history.csv"
        try:
            mtime = path.stat().st_mtime
            with open(path, newline="") as f:
                rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(f)]
        except OSError:
            return []
        if len(rows) < len(self.rows):  # a resumed run cut its history back to its checkpoint
            self.rows = self.rows[:len(rows)]
        new = rows[len(self.rows):]
        if new and not self.rows and len(rows) == 1:
            self.first_row_at = mtime
        self.rows = rows
        return new

    def config(self) -> dict:
        folder = self.folder()
        try:
            return json.loads((folder / "config.json").read_text())["config"]
        except (TypeError, OSError, ValueError, KeyError):
            return {}

    def progress_bar(self) -> dict | None:
        """The last state of the run's progress bar (tqdm) in its log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, self.log_path.stat().st_size - 8192))
                tail = f.read().decode(errors="replace")
        except OSError:
            return None
        matches = _BAR.findall(tail)
        if not matches:
            return None
        n, total, elapsed, _, rate, unit = matches[-1]
        out = {"steps": int(n), "total": int(total), "elapsed_s": _clock(elapsed)}
        if rate != "?":
            out["smoothed_steps_per_s"] = float(rate) if unit == "step/s" else 1 / float(rate)
        return out

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the run's log (a progress bar's redrawn line: its last state)."""
        try:
            text = self.log_path.read_bytes()[-20000:].decode(errors="replace")
        except OSError:
            return "(no log)"
        cleaned = [line.split("\r")[-1] for line in text.splitlines()]
        return "\n".join([line for line in cleaned if line.strip()][-lines:])


def _number(text):
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if math.isnan(value):
        return None
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def _clock(text: str) -> float:
    seconds = 0.0
    for piece in text.split(":"):
        seconds = 60 * seconds + float(piece)
    return seconds


def child_env(args, site: Path | None, data_dir: Path, n_runs: int) -> dict:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "jax"
    env["LAPERM_DATA_DIR"] = str(data_dir)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    path = [str(site)] if site is not None else []
    path += [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(path)
    if args.mem_fraction == "grow":
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    else:
        share = GPU_MEMORY_SHARE / max(n_runs, 1) if args.mem_fraction == "auto" \
            else float(args.mem_fraction)
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{share:.3f}"
    if args.jax_cache:
        env.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(args.home) / "jax-cache"))
    return env


# --------------------------------------------------------------------------
# 4. records and the summary
# --------------------------------------------------------------------------


def steps_per_epoch(cfg: dict, manifest: dict) -> int | None:
    """``laperm.run.train``'s steps per epoch, from the config and the data's shape."""
    try:
        n_all = manifest["arrays"]["shapes"]["x_train"][0]
        n = n_all - int(cfg["validation_size"])
        if float(cfg["train_fraction"]) < 1:
            n = round(float(cfg["train_fraction"]) * n)
        return math.ceil(n / int(cfg["batch_size"]))
    except (KeyError, TypeError, ValueError):
        return None


#: The status of a run the deadline stopped before it recorded an epoch.
CUT_BEFORE_FIRST_EPOCH = ("cut before its first epoch: the window was shorter than one epoch "
                          "with its compilation; no record (give the next lease more --budget-s "
                          "or fewer runs)")


def run_summary(run: Run, manifest: dict, window_s: float | None) -> dict:
    cfg = run.config()
    rows = run.rows
    folder = run.folder()
    finished = folder is not None and (folder / "result.json").is_file()
    if run.rc is None and run.running():
        status = "running"
    elif finished and run.rc == 0:
        status = "finished"
    elif run.stopped:
        status = "cut at the deadline" if rows else CUT_BEFORE_FIRST_EPOCH
    elif run.proc is None:
        status = "not started"
    else:
        status = f"failed (exit code {run.rc})"
    steps = steps_per_epoch(cfg, manifest)
    batch = cfg.get("batch_size")
    times = [r["epoch_time_s"] for r in rows if isinstance(r.get("epoch_time_s"), (int, float))]
    out = {
        "run": run.key, "experiment": run.experiment, "optimizer": run.optimizer,
        "folder": folder.name if folder else None, "status": status,
        "epochs_done": len(rows), "epochs_planned": cfg.get("epochs"),
        "paper_epochs": cfg.get("paper_epochs"), "steps_per_epoch": steps, "batch_size": batch,
        "first_epoch_s": times[0] if times else None,
    }
    later = times[1:]
    per_epoch = statistics.median(later) if later else (times[0] if times else None)
    out["epoch_s_median_after_first"] = statistics.median(later) if later else None
    out["compile_s_est"] = times[0] - statistics.median(later) if later else None
    if per_epoch and steps:
        out["steps_per_s"] = steps / per_epoch
        out["images_per_s"] = steps * batch / per_epoch if batch else None
    else:
        out["steps_per_s"] = out["images_per_s"] = None
    bn = [r["bn_recalibration_s"] for r in rows
          if isinstance(r.get("bn_recalibration_s"), (int, float))]
    out["bn_recalibration_s_median"] = statistics.median(bn) if bn else None
    startup = None
    if run.first_row_at is not None and run.start_wall is not None and times:
        startup = max(0.0, run.first_row_at - run.start_wall - times[0])
    out["startup_s"] = startup
    paper = cfg.get("paper_epochs")
    full = steps_per_epoch({**cfg, "train_fraction": 1.0}, manifest) if cfg else None
    if per_epoch and paper and steps and full:
        # startup + compile + the paper's epochs; a reduced epoch is scaled up by its steps
        # (its evaluation too, so then an upper bound)
        est = (startup or 0.0) + (out["compile_s_est"] or 0.0) + paper * per_epoch * full / steps
        out["est_paper_run_s"] = est
        out["est_basis"] = ("measured epochs" if full == steps else
                            f"epochs of {steps} step{'s' if steps != 1 else ''} scaled to {full} "
                            "(an upper bound)")
        out["est_paper_run_h"] = est / 3600
        if window_s:
            out["paper_run_share_per_lease"] = min(1.0, window_s / est)
    if rows:
        last = rows[-1]
        out["last_epoch"] = {k: last.get(k) for k in ("epoch", "val_accuracy", "test_accuracy",
                                                      "loss", "sync_count")}
    bar = run.progress_bar()
    if bar is not None:
        out["progress_bar"] = bar
    out["wall_s"] = ((run.ended or _now()) - run.started) if run.started is not None else None
    return out


def _device() -> dict:
    info = {"host": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version()}
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], check=False, capture_output=True, text=True,
                             timeout=30)
        info["gpu"] = out.stdout.strip() if out.returncode == 0 else "none (nvidia-smi failed)"
    except (OSError, subprocess.SubprocessError):
        info["gpu"] = "none (no nvidia-smi: CPU)"
    for name in ("jax", "jaxlib", "numpy", "keras"):
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    return info


def _gpu_sample() -> dict | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                              "--format=csv,noheader,nounits"], check=False, capture_output=True,
                             text=True,
                             timeout=10)
        util, mem = out.stdout.strip().splitlines()[0].split(",")
        return {"util_pct": float(util), "memory_used_mib": float(mem)}
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _fmt(value, spec=".1f", none="-"):
    if value is None:
        return none
    return format(value, spec)


def summary_markdown(summary: dict) -> str:
    lease = summary["lease"]
    dev = lease["device"]
    lines = [
        f"# GPU lease {lease['date']}: {dev.get('gpu')}",
        "",
        f"jax {dev.get('jax')}, keras {lease.get('keras')}, python {dev.get('python')}, "
        f"{dev.get('cpu_count')} CPUs; commit {lease.get('commit') or '?'}"
        + (" (tree dirty)" if lease.get("tree_dirty") else "")
        + f"; scale: {lease['scale']}; {lease['processes']} runs at once; "
        f"budget {lease['budget_s']:.0f} s, training window {_fmt(lease.get('window_s'), '.0f')} s, "
        f"wall {lease['wall_s']:.0f} s.",
        "",
        ("| run | status | epochs | first epoch s | later epoch s | compile s | steps/s | images/s "
         "| startup s | est. paper run h | val / test acc (last) |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["runs"]:
        last = r.get("last_epoch") or {}
        acc = (f"{last['val_accuracy']:.3f} / {last['test_accuracy']:.3f}"
               if last.get("val_accuracy") is not None else "-")
        epochs = f"{r['epochs_done']}/{r.get('epochs_planned') or '?'}"
        bar = r.get("progress_bar")
        if not r["epochs_done"] and bar:
            epochs += f" ({bar['steps']} steps)"
        lines.append(
            f"| {r['run']} | {r['status']} | {epochs} | {_fmt(r['first_epoch_s'])} | "
            f"{_fmt(r['epoch_s_median_after_first'])} | {_fmt(r['compile_s_est'])} | "
            f"{_fmt(r['steps_per_s'])} | {_fmt(r['images_per_s'], '.0f')} | "
            f"{_fmt(r['startup_s'])} | {_fmt(r.get('est_paper_run_h'), '.2f')} | {acc} |")
    est = summary.get("estimate") or {}
    if est:
        lines += ["", est.get("text", "")]
    gpu = summary.get("gpu_samples")
    if gpu:
        lines += ["", (f"GPU utilisation while training: mean {gpu['util_pct_mean']:.0f}%, max "
                       f"{gpu['util_pct_max']:.0f}%; memory used max "
                       f"{gpu['memory_used_mib_max']:.0f} MiB; host load average max "
                       f"{gpu.get('loadavg_max', 0):.1f}.")]
    lines += ["", ("steps/s and images/s: the steps of an epoch over the median epoch time after "
                   "the first (training plus the per-epoch evaluation, BatchNorm re-estimation and "
                   "checkpoint); compile s: first epoch minus that median; est. paper run: startup "
                   "+ first epoch + (paper epochs - 1) x median epoch.")]
    return "\n".join(lines) + "\n"


def estimate(runs: list[dict], window_s: float | None, lease_s: float) -> dict:
    """How much of the paper's runs one lease does, at the rates measured (all runs at once)."""
    known = [r for r in runs if r.get("est_paper_run_s")]
    if not known:
        return {"text": "No run finished an epoch: no rate to estimate from (see progress_bar "
                        "and lease.log)."}
    shares = {r["run"]: r["est_paper_run_s"] for r in known}
    total = sum(min(1.0, window_s / s) for s in shares.values()) if window_s else None
    slowest = max(shares.values())
    text = (f"At these rates ({len(known)} runs sharing the machine), one lease's training window of "
            f"{window_s:.0f} s does {total:.2f} paper-scale runs' worth of epochs in all; the "
            f"slowest run needs {slowest / 3600:.2f} h at the paper's epochs, i.e. "
            f"{math.ceil(slowest / window_s)} such windows (checkpoints do not come back from a "
            f"lease, so a run cannot continue in the next one).") if window_s else ""
    return {"paper_runs_worth_per_lease": total, "slowest_paper_run_s": slowest,
            "windows_for_slowest": math.ceil(slowest / window_s) if window_s else None,
            "lease_s": lease_s, "text": text}


class Mirror:
    """``$OUT``: progress.jsonl (appended), summary.json/.md and runs.tar.gz (rewritten)."""

    def __init__(self, out: Path, runs: list[Run], manifest: dict, meta: dict, log):
        self.out, self.runs, self.manifest, self.meta, self.log = out, runs, manifest, meta, log
        self.progress = open(out / "progress.jsonl", "a", buffering=1)  # noqa: SIM115
        self.gpu: list[dict] = []
        self.t0 = meta["t0"]

    def poll(self) -> None:
        for run in self.runs:
            for row in run.poll_history():
                record = {"run": run.key, "experiment": run.experiment,
                          "optimizer": run.optimizer, "folder": run.folder().name,
                          "lease_s": round(_now() - self.t0, 1), **row}
                self.progress.write(json.dumps(record) + "\n")
                self.progress.flush()
                os.fsync(self.progress.fileno())
                self.log(f"[lease] {run.key} epoch {row.get('epoch')}: "
                         f"{_fmt(row.get('epoch_time_s'))} s, val {_fmt(row.get('val_accuracy'), '.4f')}"
                         f" test {_fmt(row.get('test_accuracy'), '.4f')}")

    def sample_gpu(self) -> None:
        s = _gpu_sample()
        if s is not None:
            s["loadavg"] = os.getloadavg()[0]
            self.gpu.append(s)

    def summary(self, final: bool) -> dict:
        window = self.meta.get("window_s")
        runs = [run_summary(r, self.manifest, window) for r in self.runs]
        wall = _now() - self.t0
        lease = {**{k: v for k, v in self.meta.items() if k != "t0"}, "wall_s": wall,
                 "final": final}
        summary = {"lease": lease, "runs": runs, "estimate": estimate(runs, window, wall)}
        if self.gpu:
            summary["gpu_samples"] = {
                "count": len(self.gpu),
                "util_pct_mean": statistics.mean(s["util_pct"] for s in self.gpu),
                "util_pct_max": max(s["util_pct"] for s in self.gpu),
                "memory_used_mib_max": max(s["memory_used_mib"] for s in self.gpu),
                "loadavg_max": max(s["loadavg"] for s in self.gpu)}
        _atomic_write(self.out / "summary.json", json.dumps(summary, indent=1))
        _atomic_write(self.out / "summary.md", summary_markdown(summary))
        return summary

    def tar(self) -> None:
        tmp = self.out / ".runs.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            for run in self.runs:
                if run.log_path.is_file():
                    tar.add(run.log_path, arcname=f"runs/{run.key}.log")
                for folder in sorted(p for p in run.parent.iterdir() if p.is_dir()):
                    for path in sorted(folder.iterdir()):
                        if path.is_file() and _keep(path.name):
                            tar.add(path, arcname=f"runs/{folder.name}/{path.name}")
        os.replace(tmp, self.out / "runs.tar.gz")


def _keep(name: str) -> bool:
    """Run-folder files that come back: the records, not the checkpoint or the weights."""
    return not (name.endswith((".keras", ".h5")) or ".tmp" in name)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def parse_args(argv):
    p = argparse.ArgumentParser(prog="lease.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiments", nargs="+", default=list(DEFAULT_EXPERIMENTS),
                   help="experiments of laperm.reproduce (default: conv2 conv4 conv13)")
    p.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=OPTIMIZERS,
                   help="laperm, adam (the baseline), or both (default)")
    p.add_argument("--epochs", type=_positive(int), default=None,
                   help="reduced run: epochs (default: the paper's; the deadline cuts them)")
    p.add_argument("--train-fraction", type=_positive(float), default=None,
                   help="reduced run: share of the training set")
    p.add_argument("--precision", default="float32",
                   choices=["float32", "mixed_bfloat16", "mixed_float16"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="seeds: one run per experiment, optimizer and seed (default: 0)")
    p.add_argument("--engine", choices=["fit", "device"], default="fit",
                   help="'device': laperm.run.engine (data, augmentation and evaluation on the GPU, "
                        "an epoch per compiled call); default: Keras's fit")
    p.add_argument("--budget-s", type=_positive(float), default=540.0,
                   help="this script's whole wall time, set-up included (default 540: inside "
                        "a 600 s call)")
    p.add_argument("--wrapup-s", type=_positive(float), default=45.0,
                   help="kept at the end for stopping, snapshots and the summary (default 45)")
    p.add_argument("--flush-s", type=_positive(float), default=30.0,
                   help="summary and tar rewritten this often (default 30)")
    p.add_argument("--poll-s", type=_positive(float), default=2.0)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: $OUT, else out/ in the home folder)")
    p.add_argument("--home", default=None,
                   help="the device's persistent folder (default $LAPERM_GPU_HOME or "
                        "/tmp/laperm-gpu): data/, runs/")
    p.add_argument("--data", type=Path, default=ROOT / ".gpu-data",
                   help="the carried manifest and parts (default .gpu-data)")
    p.add_argument("--wheels", type=Path, default=ROOT / ".whl",
                   help="the carried wheels (default .whl)")
    p.add_argument("--site", type=Path, default=Path("/tmp/site"),
                   help="where the wheels are installed (default /tmp/site)")
    p.add_argument("--no-install", action="store_true",
                   help="use the Keras already importable (CPU tests): install no wheels")
    p.add_argument("--mem-fraction", default="auto",
                   help="GPU memory share per run: auto (0.9 / runs), a number, or grow "
                        "(XLA_PYTHON_CLIENT_PREALLOCATE=false)")
    p.add_argument("--no-snapshot", action="store_true",
                   help="do not record cut runs as reduced runs (reproduce --snapshot)")
    p.add_argument("--no-jax-cache", dest="jax_cache", action="store_false",
                   help="no persistent JAX compilation cache in the home folder")
    p.add_argument("--fresh", action="store_true",
                   help="delete the run folders of an earlier call on this machine first "
                        "(default: resume them)")
    p.add_argument("--check-only", action="store_true",
                   help="install the wheels, report JAX's devices and the data parts; no runs")
    args = p.parse_args(argv)
    if args.mem_fraction not in ("auto", "grow"):
        try:
            if not 0 < float(args.mem_fraction) <= 1:
                raise ValueError
        except ValueError:
            p.error(f"--mem-fraction: auto, grow or a number in (0, 1], got {args.mem_fraction!r}")
    if args.wrapup_s >= args.budget_s:
        p.error(f"--wrapup-s ({args.wrapup_s:g}) must be less than --budget-s ({args.budget_s:g})")
    args.home = str(gpudata.home_dir(args.home))
    if args.out is None:
        args.out = Path(os.environ["OUT"]) if os.environ.get("OUT") else Path(args.home) / "out"
    return args


def check_only(args, log) -> int:
    manifest = gpudata.read_manifest(args.data)
    site = None
    if not args.no_install:
        log("[lease] " + install_wheels(manifest, args.wheels, args.site, log))
        site = args.site
    env = child_env(args, site, gpudata.home_dir(args.home) / "data", 1)
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    code = ("import keras, jax; d = jax.devices(); print(f'keras {keras.__version__} "
            "(backend {keras.backend.backend()}), jax {jax.__version__}, devices: ' + "
            "', '.join(f'{x.platform}:{getattr(x, \"device_kind\", x)}' for x in d))")
    proc = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        log(f"error: keras under JAX does not import: {last}")
        return 2
    log(f"[lease] check: {proc.stdout.strip()}")
    store = gpudata.home_dir(args.home) / "data"
    here = [p["index"] for p in manifest["parts"] if gpudata._store_has(store, p)]
    log(f"[lease] data: parts here {here or 'none'} of {len(manifest['parts'])} in {store}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = _now()
    args.out.mkdir(parents=True, exist_ok=True)
    log = Log(args.out / "lease.log")
    try:
        if args.check_only:
            return check_only(args, log)
        return lease(args, log, t0)
    except LeaseError as exc:
        log(f"error: {exc}")
        return 2


def lease(args, log, t0: float) -> int:
    manifest = gpudata.read_manifest(args.data)
    site = None
    if not args.no_install:  # the wheels first: they are cheap to check
        log("[lease] " + install_wheels(manifest, args.wheels, args.site, log))
        site = args.site
    npz = gpudata.assemble(args.data, args.home, log=lambda s: log(s))
    home = Path(args.home)
    runs_dir = home / "runs"
    if args.fresh and runs_dir.exists():
        shutil.rmtree(runs_dir)
    runs = [Run(e, o, runs_dir / (f"{e}-{o}" + (f"-s{s}" if len(args.seeds) > 1 else "")), args, s)
            for e in args.experiments for o in args.optimizers for s in args.seeds]
    env = child_env(args, site, npz.parent, len(runs))
    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    device = _device()
    keras_version = next((w["version"] for w in manifest.get("wheels", []) if w["name"] == "keras"),
                         None) if site else device.get("keras")
    scale = "paper" if args.epochs is None and args.train_fraction is None else \
        f"epochs {args.epochs or 'paper'}, train fraction {args.train_fraction or 1}"
    deadline = t0 + args.budget_s - args.wrapup_s
    meta = {"t0": t0, "date": date, "device": device, "keras": keras_version,
            "commit": manifest.get("commit"), "tree_dirty": manifest.get("tree_dirty"),
            "data": {"arrays_sha256": manifest["arrays"]["sha256"], "codec": manifest["codec"],
                     "shapes": manifest["arrays"]["shapes"]},
            "scale": scale, "precision": args.precision, "processes": len(runs),
            "budget_s": args.budget_s, "wrapup_s": args.wrapup_s,
            "window_s": None, "setup_s": None,
            "env": {k: env[k] for k in ("XLA_PYTHON_CLIENT_MEM_FRACTION",
                                        "XLA_PYTHON_CLIENT_PREALLOCATE", "JAX_PLATFORMS")
                    if k in env}}
    mirror = Mirror(args.out, runs, manifest, meta, log)
    log(f"[lease] {device.get('gpu')}; jax {device.get('jax')}; keras {keras_version}; "
        f"{len(runs)} runs ({scale}); runs stop at {args.budget_s - args.wrapup_s:.0f} s")
    t_runs = _now()
    meta["setup_s"] = t_runs - t0
    meta["window_s"] = max(0.0, deadline - t_runs)
    for run in runs:
        run.start(env)
        log(f"[lease] started {run.key}: {' '.join(run.cmd[1:])}")
    last_flush = last_gpu = _now()
    failed_reported = set()
    while _now() < deadline:
        mirror.poll()
        for run in runs:
            if not run.running() and run.rc not in (None, 0) and run.key not in failed_reported:
                failed_reported.add(run.key)
                log(f"[lease] {run.key} exited with code {run.rc}; the end of its log:\n"
                    + run.log_tail())
        if not any(r.running() for r in runs):
            break
        if _now() - last_gpu >= 15:
            mirror.sample_gpu()
            last_gpu = _now()
        if _now() - last_flush >= args.flush_s:
            mirror.summary(final=False)
            mirror.tar()
            last_flush = _now()
        time.sleep(args.poll_s)
    stop(runs, log)
    mirror.poll()
    meta["stopped_at_s"] = _now() - t0
    if not args.no_snapshot:
        snapshots(runs, env, t0 + args.budget_s - 10, log)
    mirror.tar()
    summary = mirror.summary(final=True)
    log("")
    log(summary_markdown(summary))
    return 1 if any(r["status"].startswith("failed") for r in summary["runs"]) else 0


def stop(runs: list[Run], log, grace_s: float = 10.0) -> None:
    """SIGTERM every run still going, then SIGKILL what is left after ``grace_s``."""
    going = [r for r in runs if r.running()]
    if not going:
        return
    for run in going:
        run.stopped = True
        run.signal(signal.SIGTERM)
    log(f"[lease] deadline: stopping {', '.join(r.key for r in going)} (SIGTERM)")
    end = _now() + grace_s
    while _now() < end and any(r.running() for r in going):
        time.sleep(0.2)
    for run in going:
        if run.running():
            run.signal(signal.SIGKILL)
            log(f"[lease] {run.key}: SIGKILL")
            run.proc.wait()
            run.running()


def snapshots(runs: list[Run], env: dict, until: float, log) -> None:
    """Record every cut run with epochs as a reduced run (``reproduce --snapshot``), at once."""
    todo = [r for r in runs if r.rows and r.folder() is not None
            and not (r.folder() / "result.json").is_file()]
    if not todo:
        return
    env = {**env, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    env.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
    procs = []
    for run in todo:
        cmd = run.cmd + ["--snapshot"]
        with open(run.log_path, "ab") as f:
            procs.append((run, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f,
                                                stderr=subprocess.STDOUT, start_new_session=True)))
    for run, proc in procs:
        try:
            proc.wait(timeout=max(1.0, until - _now()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            log(f"[lease] {run.key}: snapshot not finished in time")
            continue
        made = sorted(p.name for p in run.parent.iterdir()
                      if p.is_dir() and (p / "result.json").is_file())
        log(f"[lease] {run.key}: snapshot {'exit code ' + str(proc.returncode) if proc.returncode else 'ok'}"
            f" ({', '.join(made) or 'no record'})")


if __name__ == "__main__":
    sys.exit(main())
