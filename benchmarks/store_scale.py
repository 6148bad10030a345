"""The store at scale: `mucomp list`, `mucomp show` and the Screen page with 200 and 1,000 experiments.

Targets (issue 13), on 2 CPU cores, after the first call (which builds the listing index):
`mucomp list` <= 0.5 s wall (a new process each time, median of 5), `mucomp show ID` <= 0.3 s,
the Screen page (AppTest, warm) <= 1 s.

It runs the digits references and one GA experiment through the core once (not timed), then, per
size, writes that many synthetic experiments of the same scenario: the real GA result.json
(about 0.5 MB, mostly per-image blocks) under new ids and creation times, each with a hard link
to the real weights file. Folders are written by hand (as an older mucomp or a copy would), so the
first listing builds the index from the folders.

    python benchmarks/store_scale.py [--sizes 200 1000] [--repeats 5]

The Screen page runs with a stub job queue (no worker processes), so a worker's warm-up does not
compete for the two cores while the page is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"list": 0.5, "show": 0.3, "screen": 1.0}


def prepare_source(home: Path) -> tuple[Path, list[Path]]:
    """References and one GA run in ``home``; returns (the GA folder, the reference folders)."""
    from mucomp.data import Scenario
    from mucomp.runner import ExperimentConfig, prepare_scenario, run_experiment
    from mucomp.store import ExperimentStore

    store = ExperimentStore(home / "experiments")
    state = prepare_scenario(Scenario("digits", 3, 0), store)
    ga = run_experiment(ExperimentConfig("digits", 3, 0, "ga", epochs=1), store)
    refs = [store.root / state.original.experiment_id, store.root / state.retrained.experiment_id]
    return ga.path, refs


def populate(root: Path, source: Path, refs: list[Path], count: int) -> list[str]:
    """``count`` copies of ``source`` under new ids in ``root`` (hard-linked weights) + the references."""
    root.mkdir(parents=True)
    for ref in refs:
        shutil.copytree(ref, root / ref.name)
    template = json.loads((source / "result.json").read_text())
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    ids = []
    for k in range(count):
        experiment_id = f"s{k:07x}"
        folder = root / experiment_id
        folder.mkdir()
        result = dict(template, id=experiment_id, created_at=(start + timedelta(seconds=k)).isoformat())
        (folder / "result.json").write_text(json.dumps(result, indent=1))
        os.link(source / "model.safetensors", folder / "model.safetensors")
        ids.append(experiment_id)
    return ids


def cli_seconds(home: Path, *args: str) -> float:
    env = {**os.environ, "MUCOMP_HOME": str(home)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mucomp.cli", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"mucomp {' '.join(args)} failed: {done.stderr[-500:]}")
    return seconds


def screen_seconds(home: Path, repeats: int, scenario=None) -> tuple[float, float]:
    """(first Screen view, median warm Screen view) of ``scenario`` (default: digits, class 3) in
    AppTest, with a stub job queue."""
    from streamlit.testing.v1 import AppTest

    from mucomp.data import Scenario
    from mucomp.ui import session

    class NoQueue:
        def jobs(self):
            return []

    session.get_queue = lambda: NoQueue()
    os.environ["MUCOMP_HOME"] = str(home)
    at = AppTest.from_file(str(ROOT / "Home.py"), default_timeout=120)
    at.run()
    at.session_state["mucomp_scenario"] = scenario or Scenario("digits", 3, 0)
    start = time.perf_counter()
    at.switch_page("pages/2_Screen.py").run()
    first = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"Screen raised: {at.exception[0].value}")
    warm = []
    for _ in range(repeats):
        at.switch_page("Home.py").run()
        start = time.perf_counter()
        at.switch_page("pages/2_Screen.py").run()
        warm.append(time.perf_counter() - start)
    return first, statistics.median(warm)


#: What the reading path imports: the store, the views, the schema (never torch or UMAP).
READING_IMPORT = "import mucomp.store, mucomp.results, mucomp.schema, mucomp.catalogue"


def import_seconds(repeats: int) -> tuple[float, bool]:
    """(median seconds to import the reading path in a fresh process, whether torch came with it)."""
    code = (f"import sys, time; t = time.perf_counter(); {READING_IMPORT}; "
            "print(time.perf_counter() - t, 'torch' in sys.modules)")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
            .stdout.split() for _ in range(repeats)]
    return statistics.median(float(r[0]) for r in runs), any(r[1] == "True" for r in runs)


def measure(home: Path, ids: list[str], repeats: int) -> dict[str, float]:
    figures = {"list_first": cli_seconds(home, "list")}
    figures["list"] = statistics.median(cli_seconds(home, "list") for _ in range(repeats))
    figures["show"] = statistics.median(cli_seconds(home, "show", ids[len(ids) // 2]) for _ in range(repeats))
    figures["screen_first"], figures["screen"] = screen_seconds(home, repeats)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(MUCOMP_DEVICE="cpu", HF_HUB_OFFLINE="1", MUCOMP_OFFLINE="1")
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="mucomp-bench-scale-"))
    try:
        os.environ["MUCOMP_HOME"] = str(work / "source")
        source, refs = prepare_source(work / "source")
        rows = {}
        for size in args.sizes:
            home = work / f"home-{size}"
            ids = populate(home / "experiments", source, refs, size)
            rows[size] = measure(home, ids, args.repeats)
        print(f"\nstore scale, digits, {os.cpu_count()} CPUs (medians of {args.repeats}; seconds)")
        print(f"{'experiments':>11}  {'list 1st':>8}  {'list':>6}  {'show':>6}  {'Screen 1st':>10}  {'Screen':>6}")
        for size, f in rows.items():
            print(f"{size:>11}  {f['list_first']:8.2f}  {f['list']:6.2f}  {f['show']:6.2f}  "
                  f"{f['screen_first']:10.2f}  {f['screen']:6.2f}")
        seconds, torch_loaded = import_seconds(args.repeats)
        print(f"import of the reading path ({READING_IMPORT}): {seconds:.2f} s, torch loaded: {torch_loaded}")
        print(f"targets: list <= {TARGETS['list']} s, show <= {TARGETS['show']} s, Screen warm <= {TARGETS['screen']} s")
        ok = all(f[k] <= TARGETS[k] for f in rows.values() for k in TARGETS)
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
