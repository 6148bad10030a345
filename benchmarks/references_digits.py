"""Time building both digits references (forget class 3) from an empty cache.

Each repetition runs in a fresh Python process with an empty MUCOMP_HOME, so the figure includes
nothing cached. Reports the median of the build itself and of the whole process (imports too).

    python benchmarks/references_digits.py [--repeats 3] [--threads 2]

Target (issue 2): <= 30 s on 2 CPU cores.
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
from mucomp.references import load_references
scenario = Scenario("digits", 3, 0)
scenario.data
start = time.perf_counter()
original, retrained = load_references(scenario, device="cpu")
assert original.source == retrained.source == "trained"
print(json.dumps({"build_s": time.perf_counter() - start, "original_s": original.seconds,
                  "retrained_s": retrained.seconds}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, MUCOMP_HOME=home, MUCOMP_DEVICE="cpu")
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(args.threads)], env=env,
                                 capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["process_s"] = time.perf_counter() - start
            rows.append(row)
    print(f"digits references (forget class 3), empty cache, {args.threads} threads, {os.cpu_count()} CPUs, "
          f"{args.repeats} runs")
    print("| figure | median s | runs |")
    print("| --- | ---: | --- |")
    for key in ("original_s", "retrained_s", "build_s", "process_s"):
        values = [r[key] for r in rows]
        print(f"| {key[:-2]} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")


if __name__ == "__main__":
    main()
