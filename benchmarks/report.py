"""`mucomp report` for 100 stored digits experiments: median wall time and the site's size.

Targets (issue 33), on 2 CPU cores: <= 30 s and <= 20 MB.

How the 100 experiments are made cheaply: the digits references and a few real runs (GA, FT and
RL, 2 epochs, unlearning seeds 0 and 1) go through `mucomp references` / `mucomp run` once into a
scratch MUCOMP_HOME (a few minutes; skipped when `--source HOME` already holds digits runs). Then
the real unlearned results are copied under new ids into the store until it holds `--experiments`
(default 100, references included): each copy gets another grid point (epochs x lr) and unlearning
seed, so the copies form replicate groups and sweeps as a real grid would, and its metrics and
per-image attack values are jittered (seeded), so no two copies draw the same figure and the
content-addressed figure files are not shared more than in a real store. Copies are saved through
`ExperimentStore.save` (schema-checked), without weights (a report reads no weights).

Then `mucomp report --all -o DIR` runs `--repeats` times (default 3), each in a fresh process as a
user would run it; the median wall time, the CPU seconds, the site's size and the load average
around the runs are printed (and written as JSON with `--json FILE`).

    python benchmarks/report.py [--source HOME] [--experiments 100] [--repeats 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_S, TARGET_MB = 30.0, 20.0
METHODS = ("ga", "ft", "rl")


def mucomp(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUCOMP_HOME": str(home), "HF_HUB_OFFLINE": "1", "MUCOMP_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "mucomp.cli", *args], env=env, check=check, text=True,
                          capture_output=True)


def real_runs(home: Path) -> None:
    """The digits references and 2 seeds of each of :data:`METHODS` (2 epochs), through the CLI."""
    mucomp(home, "references", "--forget", "class:3")
    for method in METHODS:
        mucomp(home, "run", "--forget", "class:3", "--method", method, "--epochs", "2", "--seeds", "0-1",
               "--workers", "0", "--quiet")


def jittered(result: dict, rng: np.random.Generator, k: int) -> dict:
    """A copy of a real unlearned result at another grid point and seed, its figures jittered."""
    out = copy.deepcopy(result)
    for key in ("id", "group", "created_at", "schema_version", "code_version"):
        out.pop(key, None)
    config = out["config"]
    config["epochs"] = 1 + k % 5
    config["lr"] = float([0.01, 0.02, 0.05, 0.1][(k // 5) % 4])
    config["unlearn_seed"] = 10 + (k // 20)
    metrics = out["metrics"]
    for key in ("UA", "RA", "TUA", "TRA", "PS", "PS_exact", "MIA_efficacy", "avg_gap"):
        if isinstance(metrics.get(key), (int, float)):
            metrics[key] = float(np.clip(metrics[key] + rng.normal(0, 0.03), 0.0, 1.0))
    metrics["RT"] = float(metrics.get("RT") or 1.0) * float(rng.uniform(0.5, 1.5))
    attack = out.get("attack") or {}
    for key in ("entropy", "confidence"):
        if key in attack:
            values = np.asarray(attack[key], dtype=float)
            attack[key] = (values * rng.uniform(0.9, 1.1, values.shape)).tolist()
    embedding = out.get("embedding") or {}
    for key in ("x", "y"):
        if key in embedding:
            values = np.asarray(embedding[key], dtype=float)
            embedding[key] = (values + rng.normal(0, 0.05, values.shape)).tolist()
    return out


def fill_store(home: Path, total: int) -> int:
    """Copy the real unlearned results until the store holds ``total`` experiments."""
    from mucomp.store import ExperimentStore

    store = ExperimentStore(home / "experiments")
    existing = store.list(dataset="digits")
    sources = [e.result for e in existing if e.kind == "unlearned"]
    if not sources:
        raise SystemExit("the source store has no digits unlearned experiments to copy")
    rng = np.random.default_rng(0)
    for k in range(max(0, total - len(existing))):
        store.save(jittered(sources[k % len(sources)], rng, k))
    return len(store.ids())


def time_report(home: Path, site: Path, repeats: int) -> dict:
    runs, cpu = [], []
    load_before = os.getloadavg()
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = mucomp(home, "report", "--all", "-o", str(site), "--json")
        runs.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        written = json.loads(done.stdout)
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    return {"experiments": written["experiments"], "pairs": written["pairs"], "figures": written["figures"],
            "runs_s": [round(r, 2) for r in runs], "median_s": round(statistics.median(runs), 2),
            "cpu_s": [round(c, 2) for c in cpu], "site_mb": round(size / 1e6, 2),
            "plotly_js_mb": round((site / "assets" / "plotly.min.js").stat().st_size / 1e6, 2),
            "load_before": [round(x, 2) for x in load_before], "load_after": [round(x, 2) for x in os.getloadavg()],
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None,
                        help="a MUCOMP_HOME with real digits runs to copy (default: make them in a scratch home)")
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mucomp-report-bench-"))
    try:
        home = scratch / "home"
        if args.source is not None:
            shutil.copytree(args.source / "experiments", home / "experiments")
        else:
            real_runs(home)
        count = fill_store(home, args.experiments)
        result = {"stored": count, **time_report(home, scratch / "site", args.repeats)}
        result["targets"] = {"seconds": TARGET_S, "mb": TARGET_MB,
                             "met": result["median_s"] <= TARGET_S and result["site_mb"] <= TARGET_MB}
        print(json.dumps(result, indent=1))
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
