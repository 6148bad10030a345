"""Tune (or check) the fmnist_cnn defaults of the built-in methods on ONE forget class.

The protocol (recorded in each method's ``default_sources`` as ``FMNIST_CNN_TUNED``): for each
method, run every setting of a small grid from the Original of ``fashion_mnist`` / ``fmnist_cnn``
(training seed 0, data seed 0, unlearning seed 0, forget class 0 unless ``--forget-class``), evaluate
the unlearned model once per split and keep the setting with the smallest Avg. Gap to the
Retrained model (mean |difference| over UA, RA, TRA and MIA-Efficacy, SalUn's measure; the
Unlearn-WorstCase maintainers' selection rule) among the settings that meet the issue's bar
(UA <= 0.15 and TRA within 0.05 of the Original's) and unlearn in at most 60 s on 2 CPU cores (so
that the run and its evaluation fit 90 s); when none does, the setting that misses the bar by the
least (the larger of its UA excess and its TRA shortfall), flagged. Settings are ``--grid METHOD.NAME=V1,V2`` products on top of the method's current
defaults; without a grid each method runs once at its defaults (a check of the defaults).

Prints one Markdown row per run (UA, RA, TRA, MIA-Efficacy, Avg. Gap, RT in s, whether it meets
the bar) and the chosen setting per method; ``--json PATH`` writes every row.

    python benchmarks/tune_fmnist_cnn.py --methods ft,ga --grid ft.epochs=2,3 ft.lr=0.01,0.05
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import sys
import time

UA_BAR = 0.15
TRA_BAR = 0.05
#: A default must leave room for its evaluation inside the issue's 90 s per run on 2 cores.
RT_BUDGET_S = 60.0


def parse_grid(items: list[str]) -> dict[str, dict[str, list]]:
    """``["ft.lr=0.01,0.05"]`` -> ``{"ft": {"lr": [0.01, 0.05]}}`` (whole numbers stay ints)."""
    out: dict[str, dict[str, list]] = {}
    for item in items:
        key, _, values = item.partition("=")
        method, _, name = key.partition(".")
        parsed = []
        for value in values.split(","):
            number = float(value)
            parsed.append(int(number) if number.is_integer() and "." not in value and "e" not in value else number)
        out.setdefault(method, {})[name] = parsed
    return out


def shortfall(row: dict, base: dict) -> float:
    """How far a run misses the bar: its larger excess of UA over 0.15 and of the TRA drop over 0.05."""
    return max(row["UA"] - UA_BAR, base["TRA"] - row["TRA"] - TRA_BAR)


def settings(grid: dict[str, list]) -> list[dict]:
    """Every combination of a method's grid (one empty setting without a grid)."""
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(grid[n] for n in names))] or [{}]


def scores(scenario, model) -> dict:
    """UA, RA, TRA and MIA-Efficacy of ``model`` from one pass per split."""
    from mucomp.evaluation import evaluate_scenario
    from mucomp.metrics import accuracy_metrics
    from mucomp.privacy.mia import scenario_mia_report

    evals = evaluate_scenario(model, scenario, layers=(), device="cpu")
    metrics = accuracy_metrics(evals["train"], evals["test"], scenario.forget_class)
    metrics["MIA_efficacy"] = scenario_mia_report(scenario, evals["train"], evals["test"], holdout_share=0.0).efficacy
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="ft,ga,rl,scrub,salun,neggrad_plus,l1_sparse,ssd,bad_teacher,unsir")
    parser.add_argument("--grid", nargs="*", default=[], help="METHOD.NAME=V1,V2 ...")
    parser.add_argument("--forget-class", type=int, default=0)
    parser.add_argument("--home", default=os.environ.get("MUCOMP_HOME", "runs"))
    parser.add_argument("--json", default=None, help="write every row to this file")
    args = parser.parse_args()
    os.environ["MUCOMP_HOME"] = args.home
    os.environ.setdefault("MUCOMP_DEVICE", "cpu")

    import torch

    from mucomp.data import Scenario
    from mucomp.methods import get_method, run_unlearning
    from mucomp.metrics import avg_gap
    from mucomp.references import load_references

    torch.set_num_threads(int(os.environ.get("MUCOMP_TORCH_THREADS", "2")))
    scenario = Scenario("fashion_mnist", args.forget_class, 0, arch="fmnist_cnn")
    original, retrained = load_references(scenario, device="cpu")
    base = scores(scenario, original.model)
    target = scores(scenario, retrained.model)
    print(f"Original: UA {base['UA']:.3f} TRA {base['TRA']:.3f}; Retrained: UA {target['UA']:.3f} "
          f"TRA {target['TRA']:.3f} MIA {target['MIA_efficacy']:.3f}", flush=True)
    grids = parse_grid(args.grid)
    rows = []
    print("| method | setting | UA | RA | TRA | MIA | Avg. Gap | RT (s) | meets |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for method in [m for m in args.methods.split(",") if m]:
        defaults = get_method(method).resolve_for(scenario)
        for setting in settings(grids.get(method, {})):
            model = copy.deepcopy(original.model)
            start = time.perf_counter()
            result = run_unlearning(method, model, scenario, {**defaults, **setting}, device="cpu")
            seconds = time.perf_counter() - start
            metrics = scores(scenario, model)
            gap = avg_gap(metrics, target)
            meets = (metrics["UA"] <= UA_BAR and abs(metrics["TRA"] - base["TRA"]) <= TRA_BAR
                     and result.rt_seconds <= RT_BUDGET_S)
            row = {"method": method, "setting": setting, "UA": metrics["UA"], "RA": metrics["RA"],
                   "TRA": metrics["TRA"], "MIA": metrics["MIA_efficacy"], "gap": gap, "rt": result.rt_seconds,
                   "wall": seconds, "meets": meets, "status": result.status}
            rows.append(row)
            print(f"| {method} | {setting or 'defaults'} | {row['UA']:.3f} | {row['RA']:.3f} | {row['TRA']:.3f} | "
                  f"{row['MIA']:.3f} | {gap:.4f} | {row['rt']:.1f} | {'yes' if meets else 'no'} |", flush=True)
        own = [r for r in rows if r["method"] == method]
        good = [r for r in own if r["meets"]]
        # None meets the bar: the setting that misses it by the least (its larger shortfall).
        best = min(good, key=lambda r: r["gap"]) if good else min(own, key=lambda r: shortfall(r, base))
        print(f"chosen {method}: {best['setting'] or 'defaults'} (gap {best['gap']:.4f}"
              f"{'' if good else ', MISSES the bar'})", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"original": base, "retrained": target, "rows": rows}, handle, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
