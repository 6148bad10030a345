"""What every command of ``mucomp`` shares: argument errors, output, scenario options, progress lines.

Exit codes: 0 success, 2 bad arguments (:class:`UsageError`; the message names the argument and
what is allowed), 1 the work itself failed (the message says why).
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from collections.abc import Callable
from typing import Any

from mucomp.catalogue import LIST_METRICS
from mucomp.display_text import for_terminal
from mucomp.forget_sets import of_classes
from mucomp.specs import DATASETS, get_spec


class UsageError(ValueError):
    """A bad command-line argument: exit code 2."""


class ParseUsageError(UsageError):
    """A UsageError found while the command line is parsed (an option's value), before the
    command runs; ``command`` names it (``run``, ``zoo pull``) for :func:`error_line`."""

    def __init__(self, message: str, command: str | None) -> None:
        super().__init__(message)
        self.command = command


class SeedOption(argparse.Action):
    """``--seed N`` and the like: a seed written with the digits 0-9 only
    (:func:`mucomp.seeds.seed_from_text`), else one line saying so (exit 2), not argparse's usage
    block (``type=int`` would also read ``1_0`` as 10 and accept ``١``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from mucomp.seeds import seed_from_text

        try:
            seed = seed_from_text(values)
        except ValueError as err:
            # argparse handles ValueError only from a `type`; raised here it reaches main()
            command = parser.prog.removeprefix("mucomp").strip() or None
            raise ParseUsageError(f"{option_string}: {err}", command) from None
        setattr(namespace, self.dest, seed)


def emit(payload: Any, as_json: bool, text: Callable[[], str]) -> None:
    """Print ``payload`` as JSON (``json.dumps`` escapes every control character), or ``text()``
    with every control character but its line breaks made visible (:func:`for_terminal`)."""
    if as_json:
        try:  # stored results are JSON-safe already: no numpy import for list / show
            print(json.dumps(payload, allow_nan=False))
        except (TypeError, ValueError):
            from mucomp.metrics import to_json_safe

            print(json.dumps(to_json_safe(payload), allow_nan=False))
    else:
        print(for_terminal(text(), newlines=True))


def forget_text(args: argparse.Namespace) -> str:
    """The forget set of ``--forget`` or its short form ``--forget-class`` (exactly one), as typed
    (``--forget-class`` resolved to ``class:K``)."""
    forget, forget_class = getattr(args, "forget", None), getattr(args, "forget_class", None)
    if forget is not None and forget_class is not None:
        raise UsageError("give --forget or --forget-class, not both (--forget-class K is --forget class:K)")
    if forget is None and forget_class is None:
        raise UsageError("say what to forget: --forget class:K | classes:K1,K2 | random:P% | random:N | "
                         "random:N:salun | indices:FILE, or --forget-class K")
    if forget is None:
        spec = DATASETS[args.dataset]
        try:
            return of_classes(spec.class_index(forget_class)).text
        except ValueError as err:  # an unknown name or an index out of range
            raise UsageError(f"--forget-class: {err}") from err
    return forget


def canonical_forget(args: argparse.Namespace) -> str:
    """The canonical text of a listing's ``--forget`` / ``--forget-class`` filter."""
    from mucomp.forget_sets import parse_forget

    dataset = args.dataset or "digits"
    args.dataset = dataset
    try:
        return parse_forget(forget_text(args), get_spec(dataset)).text
    except ValueError as err:
        raise UsageError(f"--forget: {err}") from err


def scenario_from_args(args: argparse.Namespace, train_seed: int | None = None):
    """The :class:`~mucomp.data.Scenario` the scenario options name (``train_seed``: instead of
    ``--seed``)."""
    from mucomp.data import Scenario

    forget = forget_text(args)
    try:
        return Scenario(args.dataset, None, args.seed if train_seed is None else train_seed, forget,
                        getattr(args, "data_seed", 0) or 0, getattr(args, "arch", None))
    except ValueError as err:
        option = "--forget" if getattr(args, "forget", None) is not None else "--forget-class"
        raise UsageError(f"{option} / --seed / --arch: {err}") from err


def seed_list(text: str | None, default: int, option: str) -> list[int]:
    """Seeds from ``0-4`` / ``0,3,7`` (``default`` alone when not given)."""
    from mucomp.seeds import parse_seeds

    if text is None:
        return [default]
    try:
        return parse_seeds(text)
    except ValueError as err:
        raise UsageError(f"{option}: {err}") from err


def epoch_progress(enabled: bool) -> Callable[..., None] | None:
    """A ``progress(epoch, total, **figures)`` line on stderr for reference training."""
    if not enabled:
        return None

    def report(epoch: int, total: int, **figures: Any) -> None:
        label = figures.get("reference", "")
        end = "\n" if epoch == total else ""
        print(f"\r  {label} epoch {epoch}/{total}", end=end, file=sys.stderr, flush=True)

    return report


def apply_torch_threads() -> None:
    """Work done in this process uses ``MUCOMP_TORCH_THREADS`` threads when it is set
    (:func:`mucomp.settings.torch_threads`)."""
    from mucomp import settings

    threads = settings.torch_threads()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def store_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a store operation; a malformed or unknown id is the caller's argument error, whose
    message says where the stored ids are listed."""
    from mucomp.store import ExperimentNotFoundError, InvalidIdError

    try:
        return fn(*args, **kwargs)
    except (ExperimentNotFoundError, InvalidIdError) as err:
        raise UsageError(f"{err}; `mucomp list` shows the stored experiments' ids") from err


def load_experiment(store: Any, experiment_id: str) -> Any:
    """``store.load(experiment_id)`` for a command: an unknown or malformed id is a usage error
    (:func:`store_call`); a folder whose result can't be read, including one without result.json,
    is a RuntimeError saying so (exit 1), the words `mucomp show` and `mucomp list` use for it."""
    from mucomp.store import ExperimentNotFoundError, UnreadableExperimentError

    try:
        try:
            return store_call(store.load, experiment_id)
        except UsageError as err:
            if not isinstance(err.__cause__, ExperimentNotFoundError):
                raise
            # load calls a folder without result.json absent; the index (`show`, `list`) calls it
            # unreadable: ask the index, which raises UnreadableExperimentError for it.
            store_call(store.entry, experiment_id)
            raise
    except UnreadableExperimentError as err:
        raise RuntimeError(str(err)) from err


#: What an existing path that is not a regular file is, by its ``lstat`` mode test.
_NOT_A_FILE = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def file_problem(path: str | os.PathLike, missing: str = "no file") -> str | None:
    """Why ``path`` can't be read as an input file, or None when it is a regular file (or a link
    to one): ``"no file 'x'"`` (``missing``), ``"'/dev/zero' is a character device, not a regular
    file"``, or that it can't be read. A device or a FIFO is named as such, not as missing: it
    exists, and reading it would block or never end."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"{missing} {str(path)!r}"
    except OSError as err:  # e.g. a folder on the way that can't be searched
        return f"{str(path)!r} can't be read ({err.strerror or err})"
    if stat.S_ISREG(mode):
        return None
    what = next((name for test, name in _NOT_A_FILE if test(mode)), "something other than a file")
    return f"{str(path)!r} is {what}, not a regular file"


def check_output_file(output: str | os.PathLike, option: str = "-o") -> None:
    """UsageError unless ``output`` is a path a zip file may be written to: absent, or a regular
    file (replaced). The writers rename a finished temporary file onto the path, which would
    replace a device node, a FIFO or a symbolic link itself (not the file it points to), so
    anything else is refused before a byte is written."""
    try:
        mode = os.lstat(output).st_mode
    except FileNotFoundError:
        return
    except OSError as err:  # e.g. a folder on the way that cannot be read: the writer would fail too
        raise UsageError(f"{option} {output}: {err.strerror}; choose a file path you can write") from err
    if stat.S_ISREG(mode):
        return
    what = next((name for test, name in _NOT_A_FILE if test(mode)), "not a regular file")
    raise UsageError(f"{option} {output} is {what}, not a regular file; {option} names the zip file to write: "
                     f"choose a file path (a new file, or a regular file to replace). Nothing was written")


def error_line(command: str | None, err: BaseException) -> str:
    """The one line a user error prints: the command, what is wrong and what to do (the message
    says both), without argparse's usage block (``mucomp COMMAND --help`` shows that)."""
    where = f"mucomp {command}" if command else "mucomp"
    return f"{where}: error: {for_terminal(err, newlines=True)}"


def summary_row(result: dict) -> dict:
    """The listing fields of a stored result (or an index entry)."""
    config, metrics = result["config"], result["metrics"]
    row = {"id": result["id"], "kind": result["kind"], "group": result.get("group"), "dataset": config.get("dataset"),
           "forget": config.get("forget"), "forget_class": config.get("forget_class"),
           "train_seed": config.get("train_seed"), "unlearn_seed": config.get("unlearn_seed"),
           "method": config.get("method"), "base": config.get("base"), "epochs": config.get("epochs"),
           "lr": config.get("lr"), "batch_size": config.get("batch_size"), "created_at": result.get("created_at")}
    row.update({key: metrics.get(key) for key in LIST_METRICS})
    return row


def format_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return for_terminal(value)  # stored text: one visible line, whatever it holds


def table_text(rows: list[dict], columns: list[str]) -> str:
    """Rows as aligned text columns (``-`` for a missing value)."""
    if not rows:
        return "no experiments"
    cells = [[format_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


#: The columns of ``mucomp list`` and of a run's printout.
LIST_COLUMNS = ["id", "kind", "dataset", "forget", "train_seed", "unlearn_seed", "method", "epochs", "lr",
                "batch_size", *LIST_METRICS]


def results_text(results: list[dict]) -> str:
    return table_text([summary_row(r) for r in results], LIST_COLUMNS)


def add_forget_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--forget", default=None, metavar="SET",
                        help="what to forget: class:K, classes:K1,K2, random:P%% (e.g. random:10%%), random:N, "
                             "random:N:salun (SalUn's published protocol, e.g. random:4500:salun on cifar10) or "
                             "indices:FILE (one training index per line)")
    parser.add_argument("--forget-class", default=None, help="short for --forget class:K (an index or a class name)")


def add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="digits", choices=sorted(DATASETS), help="data set (default: digits)")
    parser.add_argument("--arch", default=None,
                        help="architecture (default: the data set's; digits: digits_cnn or vit_digits; fashion_mnist: "
                             "resnet18_fmnist or fmnist_cnn)")
    add_forget_arguments(parser)
    parser.add_argument("--seed", action=SeedOption, default=0,
                        help="training seed of the references (default: 0); for run also the unlearning seed unless "
                             "--seeds is given")
    parser.add_argument("--data-seed", dest="data_seed", action=SeedOption, default=0,
                        help="seed of a random forget set and of the fixed subsets (default: 0)")
