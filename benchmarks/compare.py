"""Benchmark for the comparison issue: `shopmtl compare` on the Taobao shopping guide and the reviews config, three
seeds, single-task against multi-task variants with the same budget; the table as the report shows it, copied to
benchmarks/results/compare_<config>.{md,json} with the command and the machine. One `shopmtl compare` process
per config (run side by side with --jobs 2, one thread each).

    python benchmarks/compare.py [--configs shopping_guide,reviews] [--architectures a,b] [--balancers x,y]
                                 [--seeds 3] [--jobs 2] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import OUT, ROOT, machine

# what each config compares (the reviews config is costlier: one single-task run is ~10 min on one thread)
PLAN = {"shopping_guide": ("shared_bottom,mmoe,ple", "equal,uncertainty"),
        "reviews": ("shared_bottom,mmoe", "equal")}


def compare(config: str, args: argparse.Namespace, runs: Path) -> dict:
    architectures, balancers = PLAN.get(config, ("shared_bottom", "equal"))
    cmd = [sys.executable, "-m", "shopmtl", "compare", str(ROOT / "configs" / f"{config}.yaml"),
           "--architectures", args.architectures or architectures, "--balancers", args.balancers or balancers,
           "--seeds", str(args.seeds),
           "--data-dir", args.data_dir, "--output-dir", str(runs), "--set", "train.progress=false",
           "--set", "train.threads=1"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    folder = Path(proc.stdout.split("comparison saved to ")[1].split()[0])
    return {"config": config, "folder": folder, "seconds": time.perf_counter() - start}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--configs", default="shopping_guide,reviews")
    p.add_argument("--architectures", help="for every config (default: PLAN)")
    p.add_argument("--balancers", help="for every config (default: PLAN)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = p.parse_args()
    runs = ROOT / "benchmarks" / "out" / time.strftime("compare-%Y%m%d-%H%M%S")
    runs.mkdir(parents=True)
    command = "python benchmarks/compare.py " + " ".join(sys.argv[1:])
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: compare(c, args, runs), args.configs.split(",")))
    OUT.mkdir(exist_ok=True)
    for r in results:
        md = (r["folder"] / "compare.md").read_text(encoding="utf-8")
        head = (f"Machine: {machine()}\n\nCommand: `{command}` ({r['seconds'] / 60:.0f} min for this config, "
                f"side by side with the others)\n\n")
        (OUT / f"compare_{r['config']}.md").write_text(head + md, encoding="utf-8")
        record = json.loads((r["folder"] / "compare.json").read_text(encoding="utf-8"))
        record.update(command=command, machine=machine(), seconds=round(r["seconds"], 1))
        (OUT / f"compare_{r['config']}.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        shutil.copy(r["folder"] / "figures" / "comparison.png", OUT / f"compare_{r['config']}.png")
        print(f"{r['config']}: {r['folder']}\n{md}")


if __name__ == "__main__":
    main()
