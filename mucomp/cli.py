"""The headless ``mucomp`` command.

Exit codes: 0 success, 2 bad arguments (the message names the argument and what is allowed),
1 the work itself failed (the message says why).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from mucomp.data import DATASETS


class UsageError(ValueError):
    """A bad command-line argument: exit code 2."""


def _emit(payload, as_json: bool, text: Callable[[], str]) -> None:
    from mucomp.metrics import to_json_safe

    if as_json:
        print(json.dumps(to_json_safe(payload), allow_nan=False))
    else:
        print(text())


def _scenario(args):
    from mucomp.data import Scenario

    try:
        return Scenario(args.dataset, args.forget_class, args.seed)
    except ValueError as err:
        raise UsageError(f"--forget-class / --seed: {err}") from err


def _stderr_progress(enabled: bool):
    if not enabled:
        return None

    def report(epoch: int, total: int, **figures) -> None:
        label = figures.get("reference", "")
        end = "\n" if epoch == total else ""
        print(f"\r  {label} epoch {epoch}/{total}", end=end, file=sys.stderr, flush=True)

    return report


def cmd_references(args) -> int:
    """Build or load both reference models of a scenario and print their metrics."""
    from mucomp.evaluation import evaluate_scenario
    from mucomp.metrics import model_metrics
    from mucomp.references import load_reference

    scenario = _scenario(args)
    progress = _stderr_progress(sys.stderr.isatty() and not args.json)
    out = {}
    for kind in ("original", "retrained"):
        ref = load_reference(scenario, kind, source=args.source, progress=progress)
        evals = evaluate_scenario(ref.model, scenario, layers=())
        out[kind] = model_metrics(evals["train"], evals["test"], scenario.forget_class)
        print(f"{kind}: {ref.source} ({ref.path}) in {ref.seconds:.1f} s", file=sys.stderr)

    def text() -> str:
        lines = [f"scenario {scenario.key} (forget class {scenario.forget_class_name!r})"]
        for kind, metrics in out.items():
            figures = "  ".join(f"{k} {metrics[k]:.4f}" for k in ("UA", "RA", "TUA", "TRA"))
            lines.append(f"{kind:<10} {figures}")
        return "\n".join(lines)

    _emit(out, args.json, text)
    return 0


def cmd_download(args) -> int:
    """Download a torchvision data set into $MUCOMP_HOME/data."""
    from mucomp.data import load_dataset

    data = load_dataset(args.dataset, download=True)
    print(f"{data.spec.label}: {len(data.train)} train and {len(data.test)} test images ready")
    return 0


def _format_value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _methods_text(dataset: str, methods: list[dict]) -> str:
    lines = [f"unlearning methods, defaults for {dataset}:"]
    for method in methods:
        where = "" if method["source"] == "builtin" else f"  [{method['source']}]"
        lines.append(f"\n{method['name']:<10} {method['label']}{where}")
        if method["description"]:
            lines.append(f"  {method['description']}")
        for param in method["params"]:
            default = method["defaults"].get(param["name"])
            shown = "(required)" if default is None else _format_value(default)
            lines.append(f"  {param['name']:<20} {shown:<10} {param['allowed']}{'; ' + param['help'] if param['help'] else ''}")
    return "\n".join(lines)


def cmd_methods(args) -> int:
    """List every unlearning method (built-in and plugin) with its defaults for a data set."""
    from mucomp.methods import available_methods, plugin_errors

    methods = [info.as_dict(args.dataset) for info in available_methods().values()]
    errors = plugin_errors()
    for error in errors:
        print(f"mucomp: plugin not loaded: {error}", file=sys.stderr)
    payload = {"dataset": args.dataset, "methods": methods, "plugin_errors": [vars(e) for e in errors]}
    _emit(payload, args.json, lambda: _methods_text(args.dataset, methods))
    return 0


def _add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", choices=sorted(DATASETS), help="data set (default: digits)")
    parser.add_argument("--forget-class", required=True, help="class to forget: index or name")
    parser.add_argument("--seed", type=int, default=0, help="experiment seed (default: 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mucomp", description="Machine Unlearning Comparator, headless")
    sub = parser.add_subparsers(dest="command", required=True)

    refs = sub.add_parser("references", help="build or load the Original and Retrained models of a scenario")
    _add_scenario_arguments(refs)
    refs.add_argument("--source", choices=["train", "hub"], default=None,
                      help="train locally or use published checkpoints (default: train for digits, hub otherwise)")
    refs.add_argument("--json", action="store_true", help="print JSON")
    refs.set_defaults(func=cmd_references)

    methods = sub.add_parser("methods", help="list the unlearning methods (built-in and plugins) with their defaults")
    methods.add_argument("--dataset", default="digits", choices=sorted(DATASETS), help="whose defaults to show (default: digits)")
    methods.add_argument("--json", action="store_true", help="print JSON")
    methods.set_defaults(func=cmd_methods)

    download = sub.add_parser("download", help="download a torchvision data set")
    download.add_argument("dataset", choices=[n for n, s in DATASETS.items() if s.needs_download])
    download.set_defaults(func=cmd_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        parser.print_usage(sys.stderr)
        print(f"mucomp: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mucomp: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # every other failure is the work's, not the arguments'
        print(f"mucomp: {args.command} failed: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
