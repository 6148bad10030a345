"""``mucomp references``, ``mucomp download`` and ``mucomp methods``: a scenario's reference
models, the data sets and the unlearning methods."""

from __future__ import annotations

import argparse
import sys

from mucomp.catalogue import ACCURACY_KEYS
from mucomp.cli.common import (
    UsageError,
    add_scenario_arguments,
    apply_torch_threads,
    emit,
    epoch_progress,
    scenario_from_args,
)
from mucomp.display_text import for_terminal
from mucomp.forget_sets import parse_forget
from mucomp.specs import DATASETS


def cmd_references(args) -> int:
    """Build or load both reference models of a scenario and print their metrics."""
    from mucomp.evaluation import evaluate_scenario
    from mucomp.metrics import model_metrics
    from mucomp.reference_check import check_reference
    from mucomp.references import load_reference

    scenario = scenario_from_args(args)
    apply_torch_threads()
    progress = epoch_progress(sys.stderr.isatty() and not args.json)
    out = {}
    for kind in ("original", "retrained"):
        ref = load_reference(scenario, kind, source=args.source, progress=progress)
        evals = evaluate_scenario(ref.model, scenario, layers=())
        out[kind] = model_metrics(evals["train"], evals["test"], scenario)
        print(f"{kind}: {ref.source} ({ref.path}) in {ref.seconds:.1f} s", file=sys.stderr)
        if ref.source == "hub":
            check = check_reference(scenario.dataset, kind, scenario.forget_class, ref.path.name, evals["test"], out[kind])
            if check is not None:
                out[kind]["reference_check"] = check
                if not check["matches"]:
                    print(f"mucomp: warning: {for_terminal(check['message'])}", file=sys.stderr)

    def text() -> str:
        lines = [f"scenario {scenario.key} (forget {scenario.forget_set.describe(scenario.spec)})"]
        for kind, metrics in out.items():
            figures = "  ".join(f"{k} {metrics[k]:.4f}" for k in ACCURACY_KEYS)
            check = metrics.get("reference_check")
            mark = "" if check is None else ("  [matches published]" if check["matches"] else "  [DIFFERS FROM PUBLISHED]")
            lines.append(f"{kind:<10} {figures}{mark}")
            if check is not None and not check["matches"]:
                lines.append(f"           {check['message']}")
        return "\n".join(lines)

    emit(out, args.json, text)
    return 0


def cmd_download(args) -> int:
    """Find a data set's files on this machine, or download them into $MUCOMP_HOME/data; say where."""
    from mucomp.data import load_dataset

    data = load_dataset(args.dataset)
    print(f"{data.spec.label}: {len(data.train):,} train and {len(data.test):,} test images ready, read from "
          f"{data.where or data.root}")
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
            if param["name"] in method.get("unused", ()):
                continue  # a common hyper-parameter the method ignores (SSD's lr): not offered
            default = method["defaults"].get(param["name"])
            shown = "(required)" if default is None else _format_value(default)
            lines.append(f"  {param['name']:<20} {shown:<10} {param['allowed']}{'; ' + param['help'] if param['help'] else ''}")
        if method.get("optimizer"):
            lines.append(f"  {'optimizer':<20} {method['optimizer']}")
        for source in dict.fromkeys(method.get("default_sources", {}).values()):
            cited = [k for k, v in method["default_sources"].items() if v == source]
            lines.append(f"  defaults of {', '.join(cited)}: {source}")
    return "\n".join(lines)


def cmd_methods(args) -> int:
    """List every unlearning method (built-in and plugin) with its defaults for a data set."""
    from mucomp.methods import available_methods, plugin_errors

    arch = getattr(args, "arch", None)
    if arch is not None and arch not in DATASETS[args.dataset].archs:
        raise UsageError(f"--arch: {arch!r} is not an architecture of {args.dataset}; use one of "
                         f"{', '.join(DATASETS[args.dataset].archs)}")
    forget_kind = None
    if getattr(args, "forget", None) is not None:
        try:
            forget_kind = parse_forget(args.forget, DATASETS[args.dataset]).kind
        except ValueError as err:
            raise UsageError(f"--forget: {err}") from None
    methods = [info.as_dict(args.dataset, arch, forget_kind) for info in available_methods().values()]
    errors = plugin_errors()
    for error in errors:
        print(f"mucomp: plugin not loaded: {error}", file=sys.stderr)
    payload = {"dataset": args.dataset, "arch": arch or DATASETS[args.dataset].arch, "methods": methods,
               "plugin_errors": [vars(e) for e in errors]}
    emit(payload, args.json, lambda: _methods_text(args.dataset, methods))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    refs = sub.add_parser("references", help="build or load the Original and Retrained models of a scenario")
    add_scenario_arguments(refs)
    refs.add_argument("--source", choices=["train", "hub"], default=None,
                      help="train locally or use published checkpoints (default: train, except the published "
                           "ResNet-18 / ViT-B/16 architectures of cifar10 and fashion_mnist: hub)")
    refs.add_argument("--json", action="store_true", help="print JSON")
    refs.set_defaults(func=cmd_references)

    methods = sub.add_parser("methods", help="list the unlearning methods (built-in and plugins) with their defaults")
    methods.add_argument("--dataset", default="digits", choices=sorted(DATASETS), help="whose defaults to show (default: digits)")
    methods.add_argument("--arch", default=None, help="the architecture's defaults (default: the data set's own)")
    methods.add_argument("--forget", default=None, metavar="SET",
                         help="the defaults for this kind of forget set, e.g. random:10%% (default: class-wise)")
    methods.add_argument("--json", action="store_true", help="print JSON")
    methods.set_defaults(func=cmd_methods)

    download = sub.add_parser("download", help="find a data set's files on this machine, or download them")
    download.add_argument("dataset", choices=[n for n, s in DATASETS.items() if s.needs_download])
    download.set_defaults(func=cmd_download)
