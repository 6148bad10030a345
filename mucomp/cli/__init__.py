"""The headless ``mucomp`` command: one module per command family, each adding its own
sub-parsers (:mod:`~mucomp.cli.references`, :mod:`~mucomp.cli.runs`, :mod:`~mucomp.cli.store`,
:mod:`~mucomp.cli.audits`, :mod:`~mucomp.cli.ensembles`, :mod:`~mucomp.cli.sharing`,
:mod:`~mucomp.cli.report`).

Exit codes: 0 success, 2 bad arguments (one line, no usage block: the message names the argument,
what is allowed or where to look, e.g. ``mucomp list`` for an unknown id), 1 the work itself
failed (the message says why). Reading commands (``list``, ``show``,
``summary``) never import torch.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator

from mucomp.cli import audits, ensembles, references, report, runs, sharing, store
from mucomp.cli.common import ParseUsageError, UsageError, error_line
from mucomp.display_text import for_terminal

__all__ = ["UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from mucomp import settings

    parser = argparse.ArgumentParser(prog="mucomp", description="Machine Unlearning Comparator, headless",
                                     epilog=settings.threads_statement(workers=1).replace("`", ""))
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None,
                        help="precision of the evaluation passes (default: $MUCOMP_PRECISION, else fp32); bf16 / "
                             "fp16 run them under autocast where the device supports it")
    sub = parser.add_subparsers(dest="command", required=True)
    for family in (references, runs, store, audits, ensembles, sharing, report):
        family.add_parsers(sub)
    return parser


def chosen_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost sub-parser ``args`` were parsed with (``mucomp zoo pull``'s, not ``mucomp``'s),
    found through each level's sub-command ``dest``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return chosen_parser(action.choices[getattr(args, action.dest)], args)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, except that arguments no parser took are refused by the
    sub-command's own parser: ``mucomp list: error: unrecognized arguments: --grop x`` under
    ``mucomp list``'s usage (argparse would print the top-level usage, which names no option of
    the command the user typed). Exits 2, like every argparse error."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        chosen_parser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    return args


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the command ends as on Ctrl-C, its ``finally`` blocks run."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a job scheduler, a closing terminal) ends a command as Ctrl-C does, so
    what it cleans up on the way out is cleaned up (an export cut short removes its temporary file).
    Only in the main thread, where Python delivers signals; the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parse(parser, argv)
    except ParseUsageError as err:  # an option's value (a seed in other digits): one line, no usage block
        print(error_line(err.command, err), file=sys.stderr)
        return 2
    if args.precision is not None:  # read by every evaluation here and in the workers this starts
        os.environ["MUCOMP_PRECISION"] = args.precision
    try:
        with _terminate_as_interrupt():
            return int(args.func(args) or 0)
    except UsageError as err:  # one line saying what to do, no usage block
        print(error_line(args.command, err), file=sys.stderr)
        return 2
    except Terminated:
        print("mucomp: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("mucomp: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader (e.g. `| head`) stopped early: not a failure; silence the flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # every other failure is the work's, not the arguments'
        print(f"mucomp: {args.command} failed: {for_terminal(err, newlines=True)}", file=sys.stderr)
        return 1
