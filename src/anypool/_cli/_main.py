"""The ``anypool`` command (also ``python -m anypool``): ``info`` and ``bench``.

Exit status: 0 success; 1 the command could not do its job (message on
stderr); 2 bad usage (unknown option, bad value, unknown backend); 130
interrupted with Ctrl-C. Results go to stdout, errors and progress to stderr.
The experiments live in :mod:`anypool._cli._bench`; this module parses and formats.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from ._format import format_bench, format_info

__all__ = ["main"]


class UsageError(Exception):
    """The command line asks for something impossible; exit status 2."""


class CommandError(Exception):
    """The command could not do its job; exit status 1."""


# -- argument types: each rejects bad input with a message argparse shows ----------------
def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _name_list(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


# -- commands ------------------------------------------------------------------------------
def _cmd_info(args: argparse.Namespace) -> int:
    from ._info import collect_info

    info = collect_info()
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        print(format_info(info))
    return 0


def _bench_backends(requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """The backend columns: as requested (each must be usable here), or the defaults present."""
    from .._backends import available_backends
    from ._bench import DEFAULT_BACKENDS

    available = {**available_backends(), "auto": True}  # auto chooses among those present
    if requested is None:
        present = tuple(b for b in DEFAULT_BACKENDS if available.get(b))
        for missing in (b for b in DEFAULT_BACKENDS if not available.get(b)):
            print(
                f"anypool bench: note: the {missing!r} backend is not available; "
                "its column is left out",
                file=sys.stderr,
            )
        return present
    from .._backends import BACKENDS

    usable = [name for name, ok in available.items() if ok]
    for name in requested:
        if name in usable:
            continue
        extra = BACKENDS[name].extra if name in BACKENDS else None
        hint = f" (install it with: pip install 'anypool[{extra}]')" if extra else ""
        raise UsageError(
            f"backend {name!r} is not available here{hint}; choose from {', '.join(usable)}"
        )
    return requested


def _bench_config(args: argparse.Namespace) -> Any:
    from ._bench import BenchConfig

    names = {f.name for f in fields(BenchConfig)} - {"backends"}
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    try:
        return BenchConfig(backends=_bench_backends(args.backends), **given)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _progress_printer() -> Callable[[str], None] | None:
    if not sys.stderr.isatty():
        return None
    return lambda msg: print(f"  ... {msg}", file=sys.stderr, flush=True)


def _cmd_bench(args: argparse.Namespace) -> int:
    config = _bench_config(args)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        raise CommandError(
            "--plot needs matplotlib, which is not installed; "
            "install it with: pip install 'anypool[plot]'"
        )
    from ._bench import run_bench

    report = run_bench(config, note=_progress_printer())
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_bench(report))
    if args.plot:
        from ._plot import plot_report

        try:
            plot_report(report, args.plot)
        except OSError as exc:
            raise CommandError(f"cannot write the plot to {args.plot!r}: {exc}") from None
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


# -- the parser ----------------------------------------------------------------------------
def _add_bench_options(bench: argparse.ArgumentParser) -> None:
    from ._bench import BenchConfig

    d = BenchConfig()  # the help shows the real defaults, so the two cannot drift apart
    size = bench.add_argument_group("sizing (defaults finish in well under 30 s on 2 cores)")
    sizing: list[tuple[str, Callable[[str], Any], str, str]] = [
        ("--counter", _positive_int, "N",
         f"steps of the counter loop per CPU-bound task (default {d.counter:_})"),
        ("--workers", _positive_int, "N",
         f"workers and counter tasks for the CPU-bound experiment (default {d.workers})"),
        ("--io-tasks", _positive_int, "N",
         f"sleeps in the IO-bound experiment (default {d.io_tasks})"),
        ("--io-ms", _positive_float, "MS",
         f"length of each sleep in milliseconds (default {d.io_ms:g})"),
        ("--io-workers", _positive_int, "N",
         f"workers for the IO-bound and mixed experiments (default {d.io_workers})"),
        ("--mixed-tasks", _positive_int, "N",
         f"tasks of the mixed experiment (default {d.mixed_tasks})"),
        ("--repeat", _positive_int, "N",
         f"rounds per mode; the fastest is reported (default {d.repeat})"),
    ]  # fmt: skip
    for flag, kind, metavar, text in sizing:
        size.add_argument(flag, type=kind, metavar=metavar, help=text)
    what = bench.add_argument_group("what to run and how to report it")
    what.add_argument(
        "--workloads",
        type=_name_list,
        metavar="LIST",
        help=f"comma-separated subset of cpu,io,mixed (default: {','.join(d.workloads)})",
    )
    what.add_argument(
        "--backends",
        type=_name_list,
        metavar="LIST",
        help="comma-separated backends to compare with the sequential loop "
        f"(default: those of {','.join(d.backends)} that are available)",
    )
    what.add_argument("--json", action="store_true", help="print the results as JSON")
    what.add_argument("--plot", metavar="PNG", help="also draw a bar chart (needs matplotlib)")


def _parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="anypool",
        description="anypool: one pool API over threads, processes and more.",
    )
    parser.add_argument("--version", action="version", version=f"anypool {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser(
        "info",
        help="show the interpreter, GIL, CPUs and installed backends",
        description="Show the Python build, whether the GIL is enabled, usable CPUs, the "
        "default start method, installed backends and optional packages.",
    )
    info.add_argument("--json", action="store_true", help="print the facts as JSON")
    info.set_defaults(handler=_cmd_info)
    bench = commands.add_parser(
        "bench",
        help="measure threads vs processes on CPU-bound and IO-bound work",
        description="Run a CPU-bound counter loop, many short sleeps and a mix of both, "
        "sequentially and on each backend, then say what to use on this machine.",
    )
    _add_bench_options(bench)
    bench.set_defaults(handler=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``anypool`` command; returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 after --help/--version
        return exc.code if isinstance(exc.code, int) else 0
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("anypool: error: choose a command: info or bench", file=sys.stderr)
        return 2
    try:
        status: int = args.handler(args)
        sys.stdout.flush()  # here, where a reader that went away is handled below
    except UsageError as exc:
        print(f"anypool {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"anypool {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"anypool {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_gone()
    return status


def _reader_gone() -> int:
    """The program reading our output stopped early (``anypool info --json | head``): not
    an error of ours. Python's advice: point stdout at devnull, so that the flush at exit
    does not raise again, and exit as a process killed by SIGPIPE would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141
