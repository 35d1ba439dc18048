"""The `shopmtl` command: thin verbs over the Python API. A user error prints one message and exits with 2."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .errors import ShopMTLError


def _experiment(args: argparse.Namespace, overrides: list[str] | None = None):  # noqa: ANN202
    """The experiment of CONFIG with its --set overrides (and `overrides`), reading from --data-dir if given."""
    from .data.readers import READERS
    from .experiment import Experiment

    exp = Experiment.from_yaml(args.config, list(args.set or []) + (overrides or []))
    if getattr(args, "wide_cache", None):
        exp.wide_cache = Path(args.wide_cache)
    if args.data_dir:
        src = exp.config.data.source
        src.path = str(Path(args.data_dir) / READERS.get(src.format).folder)
    return exp


def _experiment_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a config field, e.g. train.epochs=1")
    parser.add_argument("--data-dir", help="read the source from DATA_DIR/<format folder>")
    parser.add_argument("--wide-cache", metavar="DIR",
                        help="keep the deterministic L-BFGS fits of model.wide.pretrain in DIR and reuse those of "
                             "the same inputs and settings (default: none for train; compare and tune keep "
                             "their own in their folder)")


def _train(args: argparse.Namespace) -> int:
    from .experiment import metrics_table

    run = _experiment(args, [f"output_dir={args.output_dir}"] if args.output_dir else []).fit()
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


def _compare(args: argparse.Namespace) -> int:
    from .analysis.compare import load_compare, markdown_table, run_compare

    exp = _experiment(args)
    split = lambda text: [x.strip() for x in text.split(",") if x.strip()] if text else None  # noqa: E731
    baselines = None if args.baselines is None else (split(args.baselines) or [])
    folder = run_compare(exp.config, exp.read_data(), split(args.architectures), split(args.balancers), args.seeds,
                         args.output_dir, exp.base_dir, baselines, exp.wide_cache)
    record = load_compare(folder)
    print(f"\ncomparison saved to {folder} (compare.json, compare.md, report.html, figures/)")
    print(markdown_table(record["summary"]))
    if record.get("vs_baseline"):
        from .analysis.compare import baseline_markdown

        print("\nagainst the strongest baseline (test):")
        print(baseline_markdown(record["vs_baseline"]))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from .config import read_yaml
    from .tuning import tune

    space = None
    if args.space:
        space = read_yaml(args.space)
    folder = tune(args.config, list(args.set or []), args.trials, args.objective, space, args.output_dir,
                  args.data_dir, args.timeout, args.seed, args.baselines_from, args.wide_cache)
    print(f"\ntuning saved to {folder} (trials.csv, tune.md, tune.json); best config: {folder / 'best.yaml'}")
    print((folder / "tune.md").read_text(encoding="utf-8"))
    return 0


def _baseline(args: argparse.Namespace) -> int:
    from .analysis.baselines import check_families, save_baselines

    exp = _experiment(args)
    families = check_families([x.strip() for x in args.families.split(",") if x.strip()] if args.families else None)
    frames, tasks = exp.prepare()
    folder, text = save_baselines(exp.config, frames, tasks, families, args.output_dir)
    print(f"\nbaselines saved to {folder} (baselines.json, baselines.md)")
    print(text)
    return 0


def _report(args: argparse.Namespace) -> int:
    from .analysis.report import regenerate

    print(f"report written to {regenerate(Path(args.path))}")
    return 0


def _explain(args: argparse.Namespace) -> int:
    from .run import Run

    run = Run.load(args.run)
    if args.data:
        df = run.read(args.data, args.format)
        where = args.data
    else:
        df = run.split_frame(args.split)
        where = f"the run's {args.split} split"
    if not 0 <= args.row < len(df):
        raise ShopMTLError(f"--row {args.row}: {where} has rows 0 … {len(df) - 1}")
    from .analysis.explain import format_row

    explained, predictions = run.explain(df.iloc[[args.row]], steps=args.steps)
    print(f"row {args.row} of {where}; integrated gradients ({args.steps} steps) against an all-padding / zero "
          f"input, per task (positive: pushes the explained output up)")
    print(format_row(explained, predictions))
    if args.json:
        Path(args.json).write_text(json.dumps({"row": args.row, "predictions": predictions,
                                               "explanations": explained}, indent=2, default=str))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(data_dir=args.data_dir, output_dir=args.output_dir, epochs=args.epochs, limit=args.limit)
    return 0


def _list(args: argparse.Namespace) -> int:
    from .analysis.baselines import BASELINES
    from .architectures import ARCHITECTURES
    from .balancing import BALANCERS
    from .data.readers import READERS
    from .registry import describe_options
    from .tasks import TASK_TYPES

    for title, registry in (("architectures", ARCHITECTURES), ("balancers", BALANCERS),
                            ("task types", TASK_TYPES), ("readers", READERS), ("baselines", BASELINES)):
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
    _experiment_args(t)
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

    c = sub.add_parser("compare", help="single-task baselines vs multi-task variants, same budget and seeds: "
                                       "who gains, who loses")
    _experiment_args(c)
    c.add_argument("--architectures", help="comma-separated, e.g. shared_bottom,mmoe (default: the config's)")
    c.add_argument("--balancers", help="comma-separated, e.g. equal,uncertainty (default: the config's)")
    c.add_argument("--seeds", type=int, default=3, help="seeds per variant (default 3)")
    c.add_argument("--output-dir", help="where the comparison folder goes (default: the config's output_dir)")
    c.add_argument("--baselines", nargs="?", const="", default=None, metavar="FAMILIES",
                   help="also fit the practitioner's per-task baselines on the same split (all families, or a "
                        "comma-separated list: linear,lightgbm,crf) and compare every model against them")
    c.set_defaults(func=_compare)

    tu = sub.add_parser("tune", help="hyper-parameter search on the validation split (Optuna, with pruning); "
                                     "writes the best config as YAML")
    _experiment_args(tu)
    tu.add_argument("--trials", type=int, default=20, help="number of trials (default 20)")
    tu.add_argument("--objective", help="valid.loss, valid.mean_<metric>, valid.<task>.<metric>, or `baselines` "
                                        "(mean relative gain over the best per-task baseline on validation); "
                                        "default: the config's early-stopping monitor")
    tu.add_argument("--space", help="a YAML file: dotted config key → list of choices or {low, high, log, int}")
    tu.add_argument("--baselines-from", help="with --objective baselines: a `shopmtl baseline` folder fitted on "
                                             "this config's split, reused instead of fitting them again")
    tu.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    tu.add_argument("--seed", type=int, default=0, help="seed of the sampler (default 0)")
    tu.add_argument("--output-dir", help="where the tuning folder goes (default: the config's output_dir)")
    tu.set_defaults(func=_tune)

    b = sub.add_parser("baseline", help="the per-task baselines a practitioner would fit (TF-IDF + LR / ridge, "
                                        "LightGBM, feature CRF), on the config's split, scored as the models are")
    _experiment_args(b)
    b.add_argument("--families", help="comma-separated baseline families (default: every one that applies): "
                                      "linear, lightgbm, crf")
    b.add_argument("--output-dir", help="where the baselines folder goes (default: the config's output_dir)")
    b.set_defaults(func=_baseline)

    rp = sub.add_parser("report", help="rewrite report.html (and figures/) of a run or comparison folder")
    rp.add_argument("path")
    rp.set_defaults(func=_report)

    x = sub.add_parser("explain", help="which inputs drive each task's prediction for one row")
    x.add_argument("run")
    x.add_argument("--row", type=int, required=True, help="row position (0-based) in the split or file")
    x.add_argument("--split", default="test", choices=["train", "valid", "test"],
                   help="a split of the run's own source (default test), when --data is not given")
    x.add_argument("--data", help="a CSV/Parquet file or folder in the run's source format")
    x.add_argument("--format", help="reader for --data (default: by file name, else the run's source)")
    x.add_argument("--steps", type=int, default=64, help="integration steps (default 64)")
    x.add_argument("--json", help="also write the explanation to this JSON file")
    x.set_defaults(func=_explain)

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
