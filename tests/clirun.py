"""Run the ``janus`` CLI in-process and capture what it prints (for the CLI tests)."""

from __future__ import annotations

import contextlib
import io

from detector.cli import main


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``janus ARGV``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()
