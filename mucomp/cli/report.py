"""``mucomp report``: a static site of stored results (torch-free), see :mod:`mucomp.report`."""

from __future__ import annotations

import argparse
import sys

from mucomp.cli.common import UsageError, emit
from mucomp.display_text import for_terminal


def _ids(text: str | None) -> list[str] | None:
    return None if text is None else [i.strip() for i in text.split(",") if i.strip()]


def cmd_report(args) -> int:
    """Write the static report of the chosen scenarios, experiments and pairs into ``-o DIR``."""
    from mucomp.report import (
        DEFAULT_EMBEDDINGS,
        ReportError,
        ReportSelectionError,
        parse_pairs,
        plan_report,
        write_report,
    )
    from mucomp.store import ExperimentStore

    embeddings = DEFAULT_EMBEDDINGS if args.embeddings is None else args.embeddings
    if embeddings < 0:
        raise UsageError(f"--embeddings: must be 0 or more, got {args.embeddings}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers: must be 0 or more, got {args.workers}")
    store = ExperimentStore()
    listing = store.light_results()
    for name, problem in store.problems.items():
        print(f"mucomp: experiment {for_terminal(name)} is unreadable and left out ({for_terminal(problem)})",
              file=sys.stderr)
    scenarios = [s for item in args.scenario or [] for s in item.split(",") if s.strip()]
    try:
        plan = plan_report(listing, scenarios=[s.strip() for s in scenarios] or None,
                           experiments=None if args.all else _ids(args.experiments), pairs=parse_pairs(args.pairs))
    except ReportSelectionError as err:
        raise UsageError(str(err)) from err
    if not plan.scenarios:
        raise UsageError("the store holds no experiments to report; run some first (`mucomp run ...`)")
    for identifier, why in plan.skipped.items():
        print(f"mucomp: experiment {for_terminal(identifier)} left out: {for_terminal(why)}", file=sys.stderr)
    try:
        summary = write_report(args.output, plan, store.root, workers=args.workers, own_process=True,
                               embeddings=embeddings)
    except ReportError as err:
        raise UsageError(f"-o: {err}") from err
    payload = {"path": str(summary.path), "scenarios": [s.key for s in plan.scenarios], "experiments": summary.experiments,
               "pairs": summary.pairs, "figures": summary.figures, "bytes": summary.bytes,
               "seconds": round(summary.seconds, 2)}
    if not args.quiet or args.json:
        emit(payload, args.json, lambda: (
            f"wrote {summary.path}/index.html: {summary.experiments} experiments in {len(plan.scenarios)} scenario(s) "
            f"({', '.join(s.key for s in plan.scenarios)}), {summary.pairs} pairs, {summary.figures} figures, "
            f"{summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s"))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser("report", help="write a static site of stored results (opens from disk; a static "
                                           "Hugging Face Space)")
    report.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="folder to write (new, empty, or an earlier report, which is replaced)")
    report.add_argument("--scenario", action="append", default=None, metavar="KEY",
                        help="scenario key(s), e.g. digits-c3-s0 (repeatable or comma-separated; default: the "
                             "scenarios of --experiments / --pairs, else every scenario of the store)")
    chosen = report.add_mutually_exclusive_group()
    chosen.add_argument("--experiments", default=None, metavar="IDS",
                        help="comma-separated experiment ids to list (their scenarios' references are always listed)")
    chosen.add_argument("--all", action="store_true", help="every experiment of the chosen scenarios (the default)")
    report.add_argument("--pairs", action="append", default=None, metavar="A:B,...",
                        help="the pairs to contrast and attack (default: each experiment against the Original and "
                             "the Retrained model)")
    report.add_argument("--embeddings", type=int, default=None, metavar="N",
                        help="draw the twin embedding for the first N pairs (default: 10; each adds about 0.3 MB)")
    report.add_argument("--workers", type=int, default=None,
                        help="processes building the figures (default: this one for a small report, else one per "
                             "core, at most 4)")
    report.add_argument("--json", action="store_true", help="print what was written as JSON")
    report.add_argument("--quiet", action="store_true", help="print nothing on success")
    report.set_defaults(func=cmd_report)
