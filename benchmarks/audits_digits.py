"""Time the on-demand audits on digits (forget class 3, training seed 0) and tabulate U-LiRA.

Starts from an empty MUCOMP_HOME (a temporary folder unless ``--home``), so the first U-LiRA run
trains every shadow model's references from scratch:

1. the scenario's references and one experiment per built-in method at its digits defaults
   (unlearning seed 0), stored as the app stores them;
2. U-LiRA with K = 8 fitted and M = 4 held-out shadow pairs for GA through the job API on
   ``--workers`` local worker processes (target <= 3 min on 2 cores with 2 workers); then a second
   GA experiment (unlearning seed 1, same config) audited inline, reusing every shadow pair
   (target <= 10 s);
3. U-LiRA of every other built-in method, of ``retrain`` with unlearning seeds != training seeds
   (``seed_offset`` 1: independent retrainings, a non-trivial check of the 0.5) and of the
   Original (no unlearning) and the Retrained reference;
4. the relearning attack per model (target <= 10 s per model: the model's two curves) and the
   layer-wise probes per model (target <= 1 s per model), each repeated ``--repeats`` times.

    python benchmarks/audits_digits.py [--workers 2] [--threads 2] [--repeats 3] [--methods ga,ft] [--no-table]
                                       [--out benchmarks/results/audits_digits.json]

Medians are printed as a Markdown table and written as JSON. The load average before and after is
recorded: on a shared machine the timings are not the method's alone.
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


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of this process (workers: threads / workers)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--home", default=None, help="MUCOMP_HOME to use (default: a new temporary folder)")
    parser.add_argument("--out", default="benchmarks/results/audits_digits.json")
    parser.add_argument("--methods", default=None, help="comma-separated methods (default: every built-in)")
    parser.add_argument("--no-table", action="store_true",
                        help="time only (GA's U-LiRA cold and reused, relearning and probes): no U-LiRA of the other rows")
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix="mucomp-audits-bench-"))
    os.environ["MUCOMP_HOME"] = str(home)
    os.environ.setdefault("MUCOMP_DEVICE", "cpu")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import torch

    torch.set_num_threads(args.threads)
    from mucomp.audits import layer_probes
    from mucomp.data import Scenario
    from mucomp.evaluation import evaluate_scenario
    from mucomp.execution.audits import run_audit_jobs
    from mucomp.experiment.audits import run_audits
    from mucomp.methods import available_methods
    from mucomp.models import layer_names, model_from_state_dict
    from mucomp.runner import ExperimentConfig, prepare_scenario, run_experiment
    from mucomp.store import ExperimentStore

    report: dict = {"home": str(home), "workers": args.workers, "threads": args.threads, "cpus": os.cpu_count(),
                    "load_before": _load()}
    store = ExperimentStore()
    scenario = Scenario("digits", 3, 0)
    start = time.perf_counter()
    state = prepare_scenario(scenario, store)
    report["references_s"] = time.perf_counter() - start
    methods = args.methods.split(",") if args.methods else [n for n, i in available_methods().items() if i.builtin]
    experiments = {}
    for method in methods:
        experiments[method] = run_experiment(ExperimentConfig.for_scenario(scenario, unlearn_seed=0, method=method), store,
                                             references=state).id
        print(f"stored {method}: {experiments[method]}", file=sys.stderr)

    # U-LiRA of GA from cold caches through the job API, then a second GA experiment reusing the shadows.
    start = time.perf_counter()
    run_audit_jobs(experiments["ga"], "ulira", workers=args.workers,
                   torch_threads=max(1, args.threads // max(args.workers, 1)))
    report["ulira_ga_cold_s"] = time.perf_counter() - start
    second = run_experiment(ExperimentConfig.for_scenario(scenario, unlearn_seed=1, method="ga"), store, references=state).id
    start = time.perf_counter()
    run_audits(second, "ulira", store=store)
    report["ulira_second_experiment_s"] = time.perf_counter() - start
    print(f"U-LiRA GA: cold {report['ulira_ga_cold_s']:.1f} s, second experiment {report['ulira_second_experiment_s']:.1f} s",
          file=sys.stderr)

    # The table: every built-in method, retrain with independent seeds, the references. Every
    # remaining shadow pair goes to one pool of workers at once, then each row is read inline.
    from mucomp.execution import MakeShadowPair, make_executor
    from mucomp.experiment.audits import missing_shadow_seeds, shadow_spec

    ids = {r["kind"]: r["id"] for r in store.entries() if r["kind"] in ("original", "retrained")}
    rows = [(m, experiments[m], 0) for m in methods if m != "ga"]
    if "retrain" in experiments:
        rows.append(("retrain (unlearning seed = training seed + 1)", experiments["retrain"], 1))
    rows += [("Original (no unlearning)", ids["original"], 0), ("Retrained reference", ids["retrained"], 0)]
    if args.no_table:
        rows = []
    requests = []
    for _, experiment_id, offset in rows:
        spec = shadow_spec(store.load(experiment_id).result, seed_offset=offset)
        requests += [MakeShadowPair(spec, seed) for seed in missing_shadow_seeds(spec, 8, 4)]
    start = time.perf_counter()
    failed = []
    if requests:
        executor = make_executor("local", workers=args.workers,
                                 torch_threads=max(1, args.threads // max(args.workers, 1)), warm_umap=False)
        try:
            job_ids = executor.submit(requests, max_runs=None)
            executor.wait(None, job_ids)
            failed = [j for j in (executor.get(i) for i in job_ids) if j["state"] != "completed"]
        finally:
            executor.shutdown()
    if failed:
        raise SystemExit(f"{len(failed)} shadow pairs failed, e.g. {failed[0]['message']}")
    report["ulira_other_rows_shadows_s"] = time.perf_counter() - start
    ga_block = store.load(experiments["ga"]).result["audits"]["ulira"]
    table = {}
    table["ga"] = {"ulira_acc": ga_block["accuracy"], "per_pair": ga_block["accuracy_per_pair"],
                   "share_flagged": ga_block["share_flagged"], "seconds": report["ulira_ga_cold_s"]}
    for name, experiment_id, offset in rows:
        start = time.perf_counter()
        block = run_audits(experiment_id, "ulira", store=store, seed_offset=offset, save=offset == 0)["ulira"]
        table[name] = {"ulira_acc": block["accuracy"], "per_pair": block["accuracy_per_pair"],
                       "share_flagged": block["share_flagged"], "seconds": time.perf_counter() - start}
        print(f"U-LiRA {name}: {block['accuracy']:.3f}", file=sys.stderr)
    report["ulira"] = table

    # Relearning and probes per model, repeated.
    relearn, probes = {}, {}
    layers = layer_names(scenario.arch)
    subsets = scenario.cka_indices
    for name, experiment_id in [*experiments.items(), ("original", ids["original"]), ("retrained", ids["retrained"])]:
        runs, steps = [], None
        for _ in range(args.repeats):
            block = run_audits(experiment_id, "relearn", store=store, save=False)["relearn"]
            runs.append(block["seconds"]["model"])
            steps = block["relative"]
        relearn[name] = {"median_s": statistics.median(runs), "runs_s": runs, "relative": steps,
                         "steps_to_target": block["steps_to_target"]}
        model = model_from_state_dict(scenario.arch, scenario.spec.num_classes, store.load(experiment_id).state_dict())
        evals = evaluate_scenario(model, scenario)
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            layer_probes(evals, subsets, layers)
            runs.append(time.perf_counter() - start)
        probes[name] = {"median_s": statistics.median(runs), "runs_s": runs}
    report["relearn"] = relearn
    report["probes"] = probes
    report["load_after"] = _load()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"\nU-LiRA K = 8, M = 4, {args.workers} workers on {os.cpu_count()} cores (load {report['load_before']:.1f} "
          f"before, {report['load_after']:.1f} after)")
    print(f"- GA from cold caches: {report['ulira_ga_cold_s']:.1f} s (target <= 180 s); a second GA experiment: "
          f"{report['ulira_second_experiment_s']:.1f} s (target <= 10 s)\n")
    print("| model | U-LiRA accuracy | per held-out pair | images LR > 0 | relearn relative | relearn s | probes s |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, row in table.items():
        key = {"Original (no unlearning)": "original", "Retrained reference": "retrained"}.get(name, name)
        r, p = relearn.get(key), probes.get(key)
        rel = "—" if r is None or r["relative"] is None else f"{r['relative']:.2f}"
        relearn_s = "—" if r is None else f"{r['median_s']:.2f}"
        probes_s = "—" if p is None else f"{p['median_s']:.2f}"
        pairs = ", ".join(f"{v:.2f}" for v in row["per_pair"])
        print(f"| {name} | {row['ulira_acc']:.3f} | {pairs} | {row['share_flagged']:.0%} | {rel} | {relearn_s} | "
              f"{probes_s} |")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
