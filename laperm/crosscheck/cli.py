"""``python -m laperm.crosscheck {sync,training,distribution}``: run a comparison, write its record."""


from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from laperm.crosscheck.authors import CrossCheckUnavailable, ENV_VAR, load_authors_code
from laperm.crosscheck.records import (_write_json, default_out_dir, sync_record, training_record,
                                       training_table)
from laperm.crosscheck.seed_runs import distribution, distribution_table


def main(argv: Sequence[str] | None = None, prog: str = "python -m laperm.crosscheck") -> int:
    """``python -m laperm.crosscheck {sync,training,distribution}`` (also ``laperm crosscheck``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run the authors' LaPerm beside ours and write the records.")
    parser.add_argument("--authors-code", help=f"the authors' repository (else ${ENV_VAR}, "
                                               "else ../shared/reference/authors-code)")
    parser.add_argument("--data-dir", help="folder with mnist.npz (else $LAPERM_DATA_DIR)")
    parser.add_argument("--out", help="output folder (default results/crosscheck)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sync", help="their sync and ours on the same inputs")
    sub.add_parser("training", help="F1 and Conv7 trained side by side, first syncs")
    dist = sub.add_parser("distribution", help="F1/F2 over seeds, both sides")
    dist.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    dist.add_argument("--models", nargs="+", default=["f1", "f2"], choices=["f1", "f2"])
    dist.add_argument("--epochs", type=int, help="fewer epochs (quick check, not a record)")
    dist.add_argument("--train-size", type=int, help="fewer training images (quick check)")
    args = parser.parse_args(argv)
    try:
        code = load_authors_code(args.authors_code)
    except CrossCheckUnavailable as exc:
        print(f"laperm.crosscheck: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else default_out_dir()
    out.mkdir(parents=True, exist_ok=True)
    if args.command == "sync":
        record = sync_record(code)
        _write_json(out / "sync.json", record)
        pd.DataFrame(record["table"]).to_csv(out / "sync.csv", index=False)
        print(pd.DataFrame(record["table"]).to_string(index=False))
        print(pd.DataFrame(record["differences"]).to_string(index=False))
    elif args.command == "training":
        record = training_record(data_dir=args.data_dir, code=code)
        _write_json(out / "training.json", record)
        table = training_table(record)
        table.to_csv(out / "training.csv", index=False)
        print(table.to_string(index=False))
    else:
        record = distribution(args.seeds, args.models, data_dir=args.data_dir, out_dir=out,
                              epochs=args.epochs, train_size=args.train_size, code=code,
                              progress=True)
        print(distribution_table(record).to_string(index=False))
    print(f"[crosscheck] wrote {out}")
    return 0
