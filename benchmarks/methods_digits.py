"""Time every unlearning method on digits (forget class 3) at its digits defaults.

Starts from the Original (trained into a temporary MUCOMP_HOME first, not timed), runs each
method ``--repeats`` times from a fresh copy and reports the median RT (the unlearning loop only,
as the runner measures it), the median preparation time (saliency mask, teacher copy) and the
median wall time of the whole call (RT + preparation + the per-epoch forget-accuracy passes).
torch runs on ``--threads`` threads, pinned to that many cores where the OS allows it. One
untimed warm-up run first takes torch's one-off start-up costs out of the first method's figure.

    python benchmarks/methods_digits.py [--repeats 3] [--threads 2] [--methods ga,rl] [--arch vit_digits]

Targets (issue 3): RT <= 5 s for every method, retrain <= 15 s, on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

TARGETS = {"retrain": 15.0}
DEFAULT_TARGET = 5.0


def pin(threads: int) -> str:
    """Keep this process on ``threads`` cores (Linux); returns a note for the header."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cores = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cores)
    return f"pinned to cores {cores}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="", help="comma-separated names (default: every method)")
    parser.add_argument("--home", default=None, help="MUCOMP_HOME to use (default: a fresh temporary folder)")
    parser.add_argument("--arch", default=None, help="digits_cnn (default) or vit_digits")
    args = parser.parse_args()

    os.environ["MUCOMP_HOME"] = args.home or tempfile.mkdtemp(prefix="mucomp-bench-")
    os.environ["MUCOMP_DEVICE"] = "cpu"
    affinity = pin(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from mucomp.data import Scenario
    from mucomp.evaluation import evaluate_scenario
    from mucomp.methods import available_methods, run_unlearning
    from mucomp.metrics import accuracy_metrics
    from mucomp.references import load_reference

    scenario = Scenario("digits", 3, 0, arch=args.arch)
    original = load_reference(scenario, "original", device="cpu").model
    names = [n for n in args.methods.split(",") if n] or list(available_methods())
    run_unlearning("ft", copy.deepcopy(original), scenario, {"epochs": 1})  # warm-up, not reported

    rows = []
    for name in names:
        rt, prep, wall = [], [], []
        for _ in range(args.repeats):
            model = copy.deepcopy(original)
            start = time.perf_counter()
            result = run_unlearning(name, model, scenario)
            wall.append(time.perf_counter() - start)
            rt.append(result.rt_seconds)
            prep.append(result.prep_seconds)
        evals = evaluate_scenario(model, scenario, layers=())
        metrics = accuracy_metrics(evals["train"], evals["test"], scenario.forget_class)
        rows.append((name, result, statistics.median(rt), statistics.median(prep), statistics.median(wall), rt, metrics))

    print(f"digits ({scenario.arch}), forget class 3, seed 0, method defaults; {args.threads} torch threads, {affinity}, "
          f"{os.cpu_count()} CPUs; median of {args.repeats}")
    print()
    print("| method | hyper-parameters | RT s (median) | RT runs | prep s | wall s | UA | RA | TUA | TRA | target | ok |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    failed = False
    for name, result, rt, prep, wall, runs, m in rows:
        target = TARGETS.get(name, DEFAULT_TARGET)
        ok = result.status == "completed" and rt <= target
        failed |= not ok
        hyper = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.hyper.items())
        print(f"| {name} | {hyper} | {rt:.2f} | {', '.join(f'{r:.2f}' for r in runs)} | {prep:.2f} | {wall:.2f} | "
              f"{m['UA']:.3f} | {m['RA']:.3f} | {m['TUA']:.3f} | {m['TRA']:.3f} | <= {target:g} | {'yes' if ok else 'NO'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
