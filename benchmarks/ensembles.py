"""The many-model evaluation on a CPU (issue 32): ensembles of N Retrained models and N unlearned
models per method, scored with the challenge's forgetting quality F and final score and with KLoM,
beside PS and U-LiRA of the same configuration.

Starts from an empty MUCOMP_HOME (a temporary folder unless ``--home``), so every model is made:

1. the ensembles (timed: the acceptance target is <= 15 min on 2 cores with 2 workers for digits
   at N = 32): the Retrained ensemble and one unlearned ensemble per method at its defaults, every
   missing member of every ensemble queued at once on ``--workers`` local worker processes
   (:class:`~mucomp.execution.MakeEnsembleMember`), then each method's
   :class:`~mucomp.execution.RunEnsemble` (scoring, stored under ``$MUCOMP_HOME/ensembles``);
2. PS: the stored experiment of the same configuration (unlearning seed 0), or one run now
   (:func:`mucomp.experiment.run.run_experiment`, through the same job API);
3. U-LiRA (``--shadows`` K = 8, ``--held-out`` M = 4) of that experiment (:func:`mucomp.execution.audits.run_audit_jobs`); its
   shadows' Retrained references are the Retrained ensemble's (no model trained twice).
   ``--no-ulira`` skips it.

Prints a Markdown table per method (F, final score, KLoM P95 of the forget, retain and test
splits, PS, U-LiRA accuracy, the median seconds to make one model), the total wall time of the
ensembles, and the time 512 models per side (the challenge's N) would take on ``--cluster-workers``
workers, extrapolated from the measured per-model medians. Everything goes to ``--out`` as JSON.

    python benchmarks/ensembles.py [--n 32] [--methods ft,ga,rl,scrub,salun,neggrad_plus] [--workers 2]
                                   [--no-ulira | --shadows 8 --held-out 4] [--home DIR] [--cluster-workers 2,16,64]
    python benchmarks/ensembles.py --dataset fashion_mnist --n 8     # the fmnist_cnn, real files

The load average before and after is recorded: on a shared machine the timings are not the
methods' alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

METHODS = ("ft", "ga", "rl", "scrub", "salun", "neggrad_plus")
#: dataset -> (architecture, forget class, default N)
SCENARIOS = {"digits": (None, 3, 32), "fashion_mnist": ("fmnist_cnn", 0, 8)}
CHALLENGE_N = 512


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(SCENARIOS), default="digits")
    parser.add_argument("--n", type=int, default=None, help="models per side (default: 32 digits, 8 fashion_mnist)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods, at their defaults")
    parser.add_argument("--workers", type=int, default=2, help="local worker processes")
    parser.add_argument("--threads", type=int, default=2, help="cores shared out among the workers")
    parser.add_argument("--no-ulira", action="store_true", help="skip U-LiRA")
    parser.add_argument("--shadows", type=int, default=8, metavar="K", help="U-LiRA's fitted shadow pairs (default 8)")
    parser.add_argument("--held-out", dest="held_out", type=int, default=4, metavar="M",
                        help="U-LiRA's held-out shadow pairs (default 4)")
    parser.add_argument("--home", default=None, help="MUCOMP_HOME to use (default: a new temporary folder)")
    parser.add_argument("--cluster-workers", default="2,16,64",
                        help="worker counts the 512-model extrapolation is given for")
    parser.add_argument("--out", default=None, help="JSON report (default benchmarks/results/ensembles_<dataset>.json)")
    return parser.parse_args()


def _run(executor, requests: list, label: str) -> list[dict]:
    """Submit ``requests``, wait with a progress line, return the finished snapshots."""
    ids = executor.submit(requests, max_runs=None)
    start = time.perf_counter()
    while not executor.wait(5.0, ids):
        jobs = [executor.get(i) for i in ids]
        done = sum(j["state"] != "queued" and j["state"] != "running" for j in jobs)
        print(f"\r{label}: {done}/{len(ids)} jobs done, {time.perf_counter() - start:.0f} s", end="",
              file=sys.stderr, flush=True)
    print(file=sys.stderr)
    jobs = [executor.get(i) for i in ids]
    failed = [j for j in jobs if j["state"] != "completed"]
    if failed:
        raise SystemExit(f"{len(failed)} {label} job(s) did not complete, e.g. {failed[0]['state']}: "
                         f"{failed[0]['message']}")
    return jobs


def _ensemble_requests(configs: dict, n: int) -> list:
    """Every missing member of every ensemble once (the Retrained ones are shared), then the
    methods' RunEnsemble jobs."""
    from mucomp.execution import MakeEnsembleMember
    from mucomp.execution.ensembles import ensemble_requests

    started = time.time()
    members, finals, seen = [], [], set()
    for config in configs.values():
        for request in ensemble_requests(config, n, parallel=True, started_at=started):
            if isinstance(request, MakeEnsembleMember):
                if (request.spec.key, request.seed) not in seen:
                    seen.add((request.spec.key, request.seed))
                    members.append(request)
            else:
                finals.append(request)
    # Retrained members first: every method's scoring waits for them.
    members.sort(key=lambda r: r.spec.kind != "retrained")
    return members + finals


def _experiments(configs: dict, executor) -> dict[str, str]:
    """The stored experiment of each configuration (unlearning seed 0), run now where missing."""
    from mucomp.methods import get_method
    from mucomp.store import ExperimentStore

    store = ExperimentStore()
    stored = {json.dumps(r["config"], sort_keys=True, default=str): r["id"] for r in store.entries()
              if r["kind"] == "unlearned"}
    found, missing = {}, {}
    for method, config in configs.items():
        key = json.dumps(get_method(method).stored_config(config), sort_keys=True, default=str)
        if key in stored:
            found[method] = stored[key]
        else:
            missing[method] = config
    if missing:
        jobs = _run(executor, list(missing.values()), "experiments")
        found.update({method: job["experiment_id"] for method, job in zip(missing, jobs, strict=True)})
    return found


def _ensembles(configs: dict, n: int, executor) -> tuple[float, dict]:
    """Make and score every ensemble; (wall seconds, {method or "retrained": record})."""
    from mucomp.experiment.ensembles import EnsembleSpec
    from mucomp.store.ensembles import load_ensemble_results

    start = time.perf_counter()
    _run(executor, _ensemble_requests(configs, n), "ensembles")
    wall = time.perf_counter() - start
    records = {r.key: r for r in load_ensemble_results()[0]}
    out = {method: records[EnsembleSpec(config).record_key()] for method, config in configs.items()}
    out["retrained"] = records[EnsembleSpec(next(iter(configs.values())), "retrained").record_key()]
    return wall, out


def _table(rows: dict, records: dict, n: int) -> str:
    lines = [f"| method (N = {n}) | F | final score | KLoM P95 forget | retain | test | PS | U-LiRA acc. | s / model |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def cell(value, digits: int = 3) -> str:
        return "—" if value is None else f"{value:.{digits}f}"

    for name, record in records.items():
        row = rows.get(name, {})
        p95 = record.klom_p95
        first = cell(record.forget_quality) if name != "retrained" else f"self {cell(record.self_score)}"
        lines.append(f"| {name} | {first} | {cell(record.score)} | {cell(p95.forget, 2)} | {cell(p95.retain, 2)} | "
                     f"{cell(p95.test, 2)} | {cell(row.get('PS'))} | {cell(row.get('ulira_acc'))} | "
                     f"{cell(row.get('median_s'), 1)} |")
    return "\n".join(lines)


def _extrapolation(records: dict, cluster_workers: list[int]) -> tuple[dict, str]:
    medians = {name: statistics.median(r.member_seconds) for name, r in records.items() if r.member_seconds}
    total = CHALLENGE_N * sum(medians.values())
    per_workers = {w: total / w for w in cluster_workers}
    text = "; ".join(f"{w} workers: {seconds / 3600:.1f} h" for w, seconds in per_workers.items())
    line = (f"{CHALLENGE_N} models per side for the Retrained ensemble and {len(medians) - 1} methods "
            f"({CHALLENGE_N * len(medians)} models, {total / 3600:.1f} h of one worker at the measured medians): {text}")
    return {"models": CHALLENGE_N * len(medians), "worker_seconds": total, "per_workers": per_workers}, line


def main() -> None:
    args = _arguments()
    arch, forget_class, default_n = SCENARIOS[args.dataset]
    n = args.n or default_n
    home = Path(args.home or tempfile.mkdtemp(prefix="mucomp-ensembles-bench-"))
    os.environ["MUCOMP_HOME"] = str(home)
    for name, value in (("MUCOMP_DEVICE", "cpu"), ("HF_HUB_OFFLINE", "1"), ("MUCOMP_OFFLINE", "1")):
        os.environ.setdefault(name, value)
    # Before the workers' fork server starts: what every local executor of several workers sets
    # (mucomp.execution.local.WORKER_WAIT_POLICY), for the single-worker U-LiRA runs below too.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    threads = max(1, args.threads // max(1, args.workers))

    from mucomp.data import Scenario
    from mucomp.execution import make_executor
    from mucomp.execution.audits import run_audit_jobs
    from mucomp.execution.ensembles import ensemble_eta, eta_text
    from mucomp.runner import ExperimentConfig
    from mucomp.store import ExperimentStore

    scenario = Scenario(args.dataset, forget_class, 0, arch=arch)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    configs = {m: ExperimentConfig.for_scenario(scenario, unlearn_seed=0, method=m) for m in methods}
    report: dict = {"dataset": args.dataset, "arch": scenario.arch, "forget_class": forget_class, "n": n,
                    "workers": args.workers, "threads_per_worker": threads, "cpus": os.cpu_count(), "home": str(home),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "load_before": _load(), "eta": {m: ensemble_eta(c, n, workers=args.workers)
                                                    for m, c in configs.items()}}
    print(f"{methods[0]}'s {eta_text(report['eta'][methods[0]])}", file=sys.stderr)
    executor = make_executor("local", workers=args.workers, torch_threads=threads, warm_umap=False)
    try:
        wall, records = _ensembles(configs, n, executor)
        report["ensembles_wall_s"] = wall
        start = time.perf_counter()
        experiments = _experiments(configs, executor)
        report["experiments_wall_s"] = time.perf_counter() - start
    finally:
        executor.shutdown()
    store = ExperimentStore()
    rows: dict = {name: {"median_s": statistics.median(r.member_seconds) if r.member_seconds else None}
                  for name, r in records.items()}
    start = time.perf_counter()
    for method, experiment_id in experiments.items():
        rows[method]["experiment"] = experiment_id
        rows[method]["PS"] = store.load(experiment_id).result["metrics"].get("PS")
        if not args.no_ulira:
            job = run_audit_jobs(experiment_id, ["ulira"], workers=args.workers, torch_threads=threads,
                                 shadows=args.shadows, held_out=args.held_out)
            rows[method]["ulira_acc"] = job["result"].get("ulira_acc")
            print(f"U-LiRA {method}: {rows[method]['ulira_acc']:.3f}", file=sys.stderr)
    report["ulira_wall_s"] = None if args.no_ulira else time.perf_counter() - start
    report["load_after"] = _load()
    report["rows"] = {name: {**rows[name], "record": record.key, "F": record.forget_quality, "score": record.score,
                             "self_score": record.self_score, "klom_p95": record.klom_p95.model_dump(),
                             "member_seconds": record.member_seconds} for name, record in records.items()}
    report["extrapolation"], extrapolation = _extrapolation(
        records, [int(w) for w in args.cluster_workers.split(",") if w.strip()])

    out = Path(args.out or f"benchmarks/results/ensembles_{args.dataset}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str))
    print(f"\n{args.dataset} ({scenario.arch}), forget class {forget_class}, N = {n} per side, {args.workers} workers "
          f"on {os.cpu_count()} cores, OMP_WAIT_POLICY={report['omp_wait_policy']} (load {report['load_before']:.1f} "
          f"before, {report['load_after']:.1f} after)")
    print(f"- ensembles: {wall:.0f} s wall ({wall / 60:.1f} min; target <= 15 min for digits at N = 32)")
    ulira = "skipped" if args.no_ulira else f"{report['ulira_wall_s']:.0f} s"
    print(f"- experiments for PS: {report['experiments_wall_s']:.0f} s; U-LiRA: {ulira}\n")
    print(_table(rows, records, n))
    print(f"\n{extrapolation}\n\nwritten to {out}")


if __name__ == "__main__":
    main()
