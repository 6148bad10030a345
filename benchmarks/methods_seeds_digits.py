"""Every built-in method on digits class 3 over several unlearning seeds: mean and 95 % interval.

The Original and the Retrained model (training seed 0) are loaded once (trained and cached under
MUCOMP_HOME first, not timed). Each method runs at its digits defaults from a fresh copy of the
Original once per unlearning seed; the unlearned model is evaluated once per split. Per method
the table gives UA, TRA, PS (51-point grid) and RT (seconds of the unlearning loop, in this
process) as mean +- the half-width of a 95 % Student-t interval (n - 1 degrees of freedom), and
the samples back-propagated (the cost count, identical across seeds for most methods).

    python benchmarks/methods_seeds_digits.py [--seeds 0-4] [--methods ft,ga] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile


def interval(values: list[float]) -> tuple[float, float]:
    """(mean, half-width of the 95 % Student-t interval: mucomp.groups.t_interval); 0 for one value."""
    from mucomp.groups import t_interval

    entry = t_interval(values)
    return entry["mean"], entry["half_width"] or 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--methods", default="")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--home", default=None)
    args = parser.parse_args()
    os.environ["MUCOMP_HOME"] = args.home or tempfile.mkdtemp(prefix="mucomp-seeds-")
    os.environ.setdefault("MUCOMP_DEVICE", "cpu")
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))

    import torch

    torch.set_num_threads(args.threads)
    from mucomp import privacy
    from mucomp.data import Scenario
    from mucomp.evaluation import evaluate_scenario
    from mucomp.methods import available_methods, run_unlearning
    from mucomp.metrics import accuracy_metrics
    from mucomp.references import load_references

    scenario = Scenario("digits", 3, 0)
    original, retrained = load_references(scenario, device="cpu")
    retrained_values = privacy.forget_feature_values(
        scenario, evaluate_scenario(retrained.model, scenario, layers=(), device="cpu")["train"]
    )
    names = [n for n in args.methods.split(",") if n] or [n for n, m in available_methods().items() if m.builtin]
    run_unlearning("ft", copy.deepcopy(original.model), scenario, {"epochs": 1})  # warm-up, not reported

    print(f"digits, forget class 3, training seed 0, unlearning seeds {seeds}; {args.threads} torch threads, "
          f"{os.cpu_count()} CPUs; mean +- 95 % t-interval half-width, n = {len(seeds)}")
    print()
    print("| method | UA | TRA | PS | RT s | samples back-propagated | not completed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        rows, failed = [], 0
        for seed in seeds:
            model = copy.deepcopy(original.model)
            result = run_unlearning(name, model, scenario, seed=seed, device="cpu")
            if result.status != "completed":
                failed += 1
                continue
            evals = evaluate_scenario(model, scenario, layers=(), device="cpu")
            metrics = accuracy_metrics(evals["train"], evals["test"], scenario.forget_class)
            values = privacy.forget_feature_values(scenario, evals["train"])
            rows.append({
                "UA": metrics["UA"], "TRA": metrics["TRA"], "RT": result.rt_seconds,
                "PS": privacy.worst_case(values, retrained_values, privacy.PUBLISHED_GRID).privacy_score,
                "cost": result.cost["samples_backpropagated"],
            })
        if not rows:
            print(f"| {name} | | | | | | {failed} |")
            continue
        cells = []
        for key, digits in (("UA", 3), ("TRA", 3), ("PS", 3), ("RT", 2)):
            mean, half = interval([r[key] for r in rows])
            cells.append(f"{mean:.{digits}f} ± {half:.{digits}f}")
        cost = statistics.fmean(r["cost"] for r in rows)
        print(f"| {name} | {' | '.join(cells)} | {cost:,.0f} | {failed} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
