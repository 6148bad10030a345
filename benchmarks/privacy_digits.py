"""Time the privacy figures of one digits experiment (forget class 3): privacy score + MIA-Efficacy.

The references are loaded (trained once and cached under MUCOMP_HOME) and evaluated once per split
before timing starts: privacy only reads logits. One timed run computes, for the Original model
against the Retrained model, everything :func:`mucomp.privacy.privacy_metrics` returns: attack
features of all forget images of both models, the exact threshold sweep over both metrics and both
directions, and SalUn's SVC MIA-Efficacy (final fit + the held-out check fit).

    python benchmarks/privacy_digits.py [--repeats 7] [--threads 2]

Target (issue 4): <= 1 s on 2 CPU cores (median).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))

    import torch

    torch.set_num_threads(args.threads)
    from mucomp import privacy
    from mucomp.data import Scenario
    from mucomp.evaluation import evaluate_scenario
    from mucomp.references import load_references

    scenario = Scenario("digits", 3, 0)
    original, retrained = load_references(scenario, device="cpu")
    orig_eval = evaluate_scenario(original.model, scenario, layers=(), device="cpu")
    retr_eval = evaluate_scenario(retrained.model, scenario, layers=(), device="cpu")
    u = privacy.forget_logits(scenario, orig_eval["train"])
    r = privacy.forget_logits(scenario, retr_eval["train"])
    retrained_values = privacy.feature_values(r)

    def timed(fn):
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = fn()
            runs.append(time.perf_counter() - start)
        return result, runs

    rows = {
        "privacy_score": timed(lambda: privacy.privacy_score(u, r)),
        "mia_report": timed(lambda: privacy.scenario_mia_report(scenario, orig_eval["train"], orig_eval["test"])),
        "privacy_metrics (both)": timed(
            lambda: privacy.privacy_metrics(scenario, orig_eval["train"], orig_eval["test"], retr_eval["train"])
        ),
        # As the runner calls it: the Retrained model's attack values are computed once per scenario.
        "privacy_metrics (Retrained values given)": timed(
            lambda: privacy.privacy_metrics(scenario, orig_eval["train"], orig_eval["test"], None,
                                            retrained_values=retrained_values)
        ),
    }
    metrics = rows["privacy_metrics (both)"][0]
    members, _ = scenario.mia_indices
    print(
        f"digits forget class 3, Original vs Retrained: {u.shape[0]} forget images, {members.size} members / "
        f"non-members; {args.threads} threads, {os.cpu_count()} CPUs, {args.repeats} runs"
    )
    print(
        f"PS = {metrics['PS']:.4f}, MIA-Efficacy = {metrics['MIA_efficacy']:.4f}, "
        f"SVC held-out accuracy = {metrics['MIA_svc_accuracy']:.4f}"
    )
    print("| step | median s | min s | max s |")
    print("| --- | ---: | ---: | ---: |")
    for name, (_, runs) in rows.items():
        print(f"| {name} | {statistics.median(runs):.4f} | {min(runs):.4f} | {max(runs):.4f} |")


if __name__ == "__main__":
    main()
