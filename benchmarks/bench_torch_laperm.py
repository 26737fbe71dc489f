"""laperm.torch: training throughput of LaPerm over the bare inner optimizer (CPU).

Usage: ``python benchmarks/bench_torch_laperm.py [--steps 1000] [--repeats 3]``
(needs only torch).  A small CNN on MNIST-shaped random batches of 50 trains
``--steps`` steps with Adam alone and wrapped in ``laperm.torch.LaPerm`` with
k = 1000 and k = 20, the three taking turns by chunks of 20 steps (so that
the load of a shared machine weighs on each alike), ``--repeats`` times; the
ratio of medians (LaPerm steps/s over Adam steps/s) is what matters.  Each
timed window holds a whole number of sync periods, so a sync's cost is counted
at its share.  One sync alone is timed too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import laperm.torch as lt  # noqa: E402
from common import timed  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3, stride=2), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, stride=2), nn.ReLU(), nn.Flatten(),
                         nn.Linear(64 * 5 * 5, 10))


def make(k):
    model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    return model, (opt if k is None else lt.LaPerm(opt, sync_period=k))


def train_steps(model, opt, data, steps, start=0):
    """Seconds taken by ``steps`` training steps."""
    loss_fn = nn.CrossEntropyLoss()
    t = time.perf_counter()
    for i in range(start, start + steps):
        x, y = data[i % len(data)]
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return time.perf_counter() - t


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1000, help="a multiple of 1000")
    parser.add_argument("--chunk", type=int, default=20, help="steps per turn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(50, 1, 28, 28, generator=g), torch.randint(0, 10, (50,), generator=g))
            for _ in range(20)]
    configs = {"Adam": None, "LaPerm k=1000": 1000, "LaPerm k=20": 20}
    rates = {name: [] for name in configs}
    load = [os.getloadavg()[0]]
    for _ in range(args.repeats):
        runs = {name: make(k) for name, k in configs.items()}
        for name, (model, opt) in runs.items():
            train_steps(model, opt, data, 20)  # warm-up (not counted)
            if configs[name] is not None:  # the timed window starts on a sync boundary
                opt.sync_now()
        # The three take turns, a chunk of steps each, so that the load of a shared
        # machine weighs on all of them alike; each window is a whole number of periods.
        seconds = dict.fromkeys(configs, 0.0)
        for start in range(0, args.steps, args.chunk):
            for name, (model, opt) in runs.items():
                seconds[name] += train_steps(model, opt, data, args.chunk, start)
        for name in configs:
            rates[name].append(args.steps / seconds[name])
        assert runs["LaPerm k=1000"][1].sync_count == 1 + args.steps // 1000
        load.append(os.getloadavg()[0])
    model, opt = make(20)
    sync_ms = 1e3 * statistics.median(timed(opt.sync_now, repeats=50))
    adam = statistics.median(rates["Adam"])
    rows = [(name, statistics.median(r), statistics.median(r) / adam) for name, r in rates.items()]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    date = datetime.date.today().isoformat()
    n_weights = sum(p.numel() for p in opt.permuted_params)
    md = [f"# laperm.torch throughput on a CPU ({date})", "",
          f"Small CNN (3 convs + Linear, {n_weights} permuted weights), MNIST-shaped random "
          f"batches of 50, Adam 1e-3; {args.steps} steps per window (the three interleaved by "
          f"{args.chunk} steps), median of {args.repeats} windows; {cpu_name()}, {args.threads} threads, torch {torch.__version__}, "
          f"commit {commit}; load average {min(load):.1f}-{max(load):.1f} during the run "
          "(a shared machine).", "",
          "| optimizer | steps/s | ratio to Adam |", "|:--|--:|--:|"]
    md += [f"| {name} | {rate:.1f} | {ratio:.3f} |" for name, rate, ratio in rows]
    md += ["", f"One sync of all permuted weights: {sync_ms:.2f} ms (median of 50).", "",
           f"Command: `python benchmarks/bench_torch_laperm.py --steps {args.steps} "
           f"--repeats {args.repeats}`", ""]
    markdown = "\n".join(md)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "torch_laperm_cpu.md").write_text(markdown)
    (RESULTS / "torch_laperm_cpu.json").write_text(json.dumps({
        "date": date, "cpu": cpu_name(), "threads": args.threads, "torch": torch.__version__,
        "commit": commit, "steps": args.steps, "repeats": args.repeats, "load_average": load,
        "steps_per_second": rates, "ratio_to_adam": {n: r for n, _, r in rows},
        "sync_ms": sync_ms, "permuted_weights": n_weights}, indent=1))
    print(markdown)


if __name__ == "__main__":
    main()
