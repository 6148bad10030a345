"""Time building both digits references (forget class 3) from an empty cache.

Each repetition runs in a fresh Python process with an empty MUCOMP_HOME, so the figure includes
nothing cached. Reports the median of the build itself and of the whole process (imports too).

    python benchmarks/references_digits.py [--repeats 3] [--threads 2] [--arch vit_digits]

Targets: <= 30 s for both on 2 CPU cores (issue 2, digits_cnn); <= 30 s each for ``vit_digits``
with test accuracy >= 0.9 (issue 17). Also reports each reference's test accuracy (all test images
for the Original, the retained classes' for the Retrained model) and the process CPU seconds of
the build (less sensitive than the wall clock to other work on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from mucomp.data import Scenario
from mucomp.evaluation import evaluate
from mucomp.references import load_reference
scenario = Scenario("digits", 3, 0, arch=sys.argv[2] or None)
scenario.data
start, cpu = time.perf_counter(), time.process_time()
original = load_reference(scenario, "original", device="cpu")
original_cpu = time.process_time() - cpu
retrained = load_reference(scenario, "retrained", device="cpu")
build, cpu = time.perf_counter() - start, time.process_time() - cpu
assert original.source == retrained.source == "trained"
test = scenario.data.test
def accuracy(model, keep):
    result = evaluate(model, test, keep, device="cpu")
    return float((result.predictions == result.labels).mean())
print(json.dumps({"build_s": build, "original_s": original.seconds, "retrained_s": retrained.seconds,
                  "original_cpu_s": original_cpu, "retrained_cpu_s": cpu - original_cpu,
                  "original_acc": accuracy(original.model, None),
                  "retrained_acc": accuracy(retrained.model, scenario.test_retain_indices)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arch", default="", help="digits_cnn (default) or vit_digits")
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, MUCOMP_HOME=home, MUCOMP_DEVICE="cpu")
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.threads), args.arch], env=env,
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["process_s"] = time.perf_counter() - start
            rows.append(row)
    print(f"digits references ({args.arch or 'digits_cnn'}, forget class 3), empty cache, {args.threads} threads, "
          f"{os.cpu_count()} CPUs, {args.repeats} runs")
    print("| figure | median | runs |")
    print("| --- | ---: | --- |")
    for key in ("original_s", "retrained_s", "build_s", "process_s", "original_cpu_s", "retrained_cpu_s",
                "original_acc", "retrained_acc"):
        values = [r[key] for r in rows]
        digits = 3 if key.endswith("acc") else 2
        print(f"| {key} | {statistics.median(values):.{digits}f} | {', '.join(f'{v:.{digits}f}' for v in values)} |")


if __name__ == "__main__":
    main()
