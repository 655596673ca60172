"""`janus` command line: each command lives in its own module, whose `register(parser)` fills in
the command's parser."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from detector import __version__
from detector.errors import JanusError, file_error

# Command → (its module, one line for `janus --help`). A module is imported only when its command is
# parsed: `janus --help` and `janus --version` then load no numerical, Kafka or Prometheus library.
COMMANDS = {
    "config": ("detector.cli.config_cmd", "show the effective configuration"),
    "schema": ("detector.cli.schema_cmd", "print the decision record's JSON Schema (docs/schema.md)"),
    "simulate": ("detector.cli.simulate_cmd",
                 "write synthetic evaluation/production decision logs with a known, injected change"),
    "baseline": ("detector.cli.baseline_cmd", "build, inspect, compare, promote and roll back baselines"),
    "backtest": ("detector.cli.backtest_cmd", "replay a JSONL decision log through the detector"),
    "demo": ("detector.cli.demo_cmd", "embedded broker, simulated agents, live detection, metrics and alerts"),
    "serve": ("detector.cli.serve_cmd", "consume decision topics and detect drift continuously"),
    "state": ("detector.cli.state_cmd", "show or drop the partition states `janus serve` keeps in Kafka"),
    "report": ("detector.cli.report_cmd",
               "self-contained HTML report: evaluation vs production, drift, alert evidence"),
    "probe": ("detector.cli.probe_cmd", "monitoring-cue probe pairs: make them, analyse the answers"),
    "review": ("detector.cli.review_cmd", "human review: sample sizes, verdicts, weighted violation rates"),
}


class _CommandParser(argparse.ArgumentParser):
    """A command's parser, filled in by its module's ``register`` when it first parses arguments."""

    def __init__(self, *args, module: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._module = module

    def parse_known_args(self, args=None, namespace=None):
        if self._module is not None:
            module, self._module = self._module, None
            importlib.import_module(module).register(self)
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="janus",
        description="Catch AI models that behave differently in production from evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"janus {__version__}")
    parser.add_argument("--config", help="TOML configuration file (default: built-in defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser)
    for name, (module, text) in COMMANDS.items():
        sub.add_parser(name, help=text, description=text, module=module)
    return parser


def _where(args: argparse.Namespace, filename: str) -> str:
    """The failed file, named after the option that led to it: ``--input data`` when the option names
    it, ``data/m/1/meta.json (from --store data)`` when the option names a folder above it or a file
    below it (the closest such option)."""
    failed = Path(os.path.abspath(filename))
    related = []
    for dest, value in vars(args).items():
        if not isinstance(value, str) or not value or dest == "command" or dest.endswith("_command"):
            continue  # (sub-command names are not paths)
        given = Path(os.path.abspath(value))
        if given.is_relative_to(failed) or failed.is_relative_to(given):
            related.append((abs(len(given.parts) - len(failed.parts)), f"--{dest.replace('_', '-')} {value}"))
    if not related:
        return filename
    distance, option = min(related, key=lambda r: r[0])
    return option if distance == 0 else f"{filename} (from {option})"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except JanusError as exc:
        print(f"janus: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is None:  # not about a file (a connection, say): no advice to give
            raise
        print(f"janus: error: {file_error(exc, _where(args, exc.filename))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
