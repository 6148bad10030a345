"""UA, TRA and both privacy scores of some methods on every digits class, at their digits defaults.

For each forget class 0..9 (seed 0) the Original and the Retrained model are loaded (trained once
and cached under MUCOMP_HOME, not timed), each method runs from a fresh copy of the Original, and
the unlearned model is evaluated once per split. Prints one Markdown table: per class and method
UA, RA, TRA, PS (51-point grid, the published definition) and PS_exact (every raw value a
threshold), then the mean over classes. Used to re-tune defaults (issue 12: SalUn's schedule).

    python benchmarks/classwise_digits.py [--methods salun,rl] [--classes 0-9] [--home DIR]
                                          [--param salun.lr=0.02 ...] [--arch vit_digits]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys


def parse_classes(text: str) -> list[int]:
    """``"0-9"`` or ``"1,3,8"`` -> the class numbers."""
    if "-" in text:
        lo, hi = (int(part) for part in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(part) for part in text.split(",") if part]


def parse_params(items: list[str]) -> dict[str, dict[str, float]]:
    """``["salun.lr=0.02"]`` -> ``{"salun": {"lr": 0.02}}`` (ints stay ints)."""
    out: dict[str, dict[str, float]] = {}
    for item in items:
        key, _, value = item.partition("=")
        method, _, name = key.partition(".")
        number = float(value)
        out.setdefault(method, {})[name] = int(number) if number.is_integer() and "." not in value else number
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="salun,rl")
    parser.add_argument("--classes", default="0-9")
    parser.add_argument("--home", default=os.environ.get("MUCOMP_HOME", "runs"))
    parser.add_argument("--param", action="append", default=[], help="METHOD.NAME=VALUE overrides")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", default=None, help="digits_cnn (default) or vit_digits")
    args = parser.parse_args()
    os.environ["MUCOMP_HOME"] = args.home
    os.environ.setdefault("MUCOMP_DEVICE", "cpu")

    import torch

    torch.set_num_threads(args.threads)
    from mucomp import privacy
    from mucomp.data import Scenario
    from mucomp.evaluation import evaluate_scenario
    from mucomp.methods import run_unlearning
    from mucomp.metrics import accuracy_metrics
    from mucomp.references import load_references

    methods = [m for m in args.methods.split(",") if m]
    overrides = parse_params(args.param)
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    print("| class | method | hyper-parameters | UA | RA | TRA | PS | PS_exact |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for forget_class in parse_classes(args.classes):
        scenario = Scenario("digits", forget_class, 0, arch=args.arch)
        original, retrained = load_references(scenario, device="cpu")
        retrained_train = evaluate_scenario(retrained.model, scenario, layers=(), device="cpu")["train"]
        retrained_values = privacy.forget_feature_values(scenario, retrained_train)
        for method in methods:
            model = copy.deepcopy(original.model)
            result = run_unlearning(method, model, scenario, overrides.get(method), device="cpu")
            evals = evaluate_scenario(model, scenario, layers=(), device="cpu")
            metrics = accuracy_metrics(evals["train"], evals["test"], forget_class)
            values = privacy.forget_feature_values(scenario, evals["train"])
            worst = {
                "PS": privacy.worst_case(values, retrained_values, privacy.PUBLISHED_GRID).privacy_score,
                "PS_exact": privacy.worst_case(values, retrained_values, None, clip=False).privacy_score,
            }
            row = {**metrics, **worst}
            rows[method].append(row)
            hyper = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.hyper.items())
            print(f"| {forget_class} | {method} | {hyper} | {row['UA']:.3f} | {row['RA']:.3f} | {row['TRA']:.3f} | "
                  f"{row['PS']:.3f} | {row['PS_exact']:.3f} |", flush=True)
    for method, items in rows.items():
        means = {k: statistics.fmean(r[k] for r in items) for k in ("UA", "RA", "TRA", "PS", "PS_exact")}
        print(f"| mean | {method} | | {means['UA']:.3f} | {means['RA']:.3f} | {means['TRA']:.3f} | "
              f"{means['PS']:.3f} | {means['PS_exact']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
