"""`janus` command line: each command group lives in its own module with a `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys

from detector import __version__
from detector.errors import JanusError

# Each module registers its sub-commands; imported lazily so `janus --help` stays fast.
COMMAND_MODULES = [
    "detector.cli.config_cmd",
    "detector.cli.simulate_cmd",
    "detector.cli.baseline_cmd",
    "detector.cli.backtest_cmd",
    "detector.cli.demo_cmd",
    "detector.cli.serve_cmd",
    "detector.cli.report_cmd",
    "detector.cli.probe_cmd",
    "detector.cli.review_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="janus",
        description="Catch AI models that behave differently in production from evaluation.",
    )
    parser.add_argument("--version", action="version", version=f"janus {__version__}")
    parser.add_argument("--config", help="TOML configuration file (default: built-in defaults)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except JanusError as exc:
        print(f"janus: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
