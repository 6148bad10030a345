"""Six built-in methods x five unlearning seeds on digits class 3, end to end through the job API
with two local worker processes: the wall time of the whole batch and the table of group means
+- 95 % Student-t intervals (mucomp.groups, the figures `mucomp summary` prints).

Every run is a complete experiment (unlearning, one evaluation pass per split, privacy, CKA,
probes, UMAP, stored). The references (training seed 0) are prepared first and not timed; the
timed wall runs from submitting the 30 runs to the last one stored, worker start-up included.

    python benchmarks/replicates_digits.py [--methods ft,ga,rl,scrub,salun,neggrad_plus] [--seeds 0-4] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="ft,ga,rl,scrub,salun,neggrad_plus")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--home", default=None, help="MUCOMP_HOME (default: a new temporary folder)")
    args = parser.parse_args()
    os.environ["MUCOMP_HOME"] = args.home or tempfile.mkdtemp(prefix="mucomp-replicates-")
    os.environ.setdefault("MUCOMP_DEVICE", "cpu")

    from mucomp.data import Scenario
    from mucomp.execution import make_executor
    from mucomp.groups import group_summaries
    from mucomp.runner import ExperimentConfig, prepare_scenario
    from mucomp.seeds import parse_seeds
    from mucomp.store import ExperimentStore
    from mucomp.ui.variance import interval_text

    scenario = Scenario("digits", 3, 0)
    store = ExperimentStore()
    start = time.perf_counter()
    prepare_scenario(scenario, store)
    print(f"references ready in {time.perf_counter() - start:.1f} s (not timed below)")
    seeds = parse_seeds(args.seeds)
    methods = [m for m in args.methods.split(",") if m]
    configs = [ExperimentConfig.for_scenario(scenario, unlearn_seed=seed, method=method) for method in methods for seed in seeds]

    threads = max(1, (os.cpu_count() or 1) // args.workers)
    executor = make_executor("local", workers=args.workers, torch_threads=threads)
    start = time.perf_counter()
    try:
        ids = executor.submit(configs, max_runs=None)
        executor.wait(None, ids)
        jobs = [executor.get(i) for i in ids]
    finally:
        executor.shutdown()
    wall = time.perf_counter() - start
    failed = [j for j in jobs if j["state"] != "completed"]
    print(f"{len(configs)} runs ({len(methods)} methods x {len(seeds)} seeds) on {args.workers} workers "
          f"({threads} torch thread(s) each, {os.cpu_count()} cores): wall {wall:.1f} s, "
          f"{len(failed)} failed" + "".join(f"\n  {j['message']}" for j in failed))

    summaries = group_summaries(store.entries(dataset="digits", forget="class:3"))
    columns = ("UA", "RA", "TRA", "PS", "MIA_efficacy", "avg_gap", "RT")
    print("\n| method | n | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for summary in summaries:
        cells = [interval_text(summary["metrics"].get(c), c) for c in columns]
        print(f"| {summary['method']} | {summary['n']} | " + " | ".join(cells) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
