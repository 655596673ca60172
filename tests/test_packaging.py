"""pyproject.toml as pip, the build backend and pytest read it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_the_pinned_backend_understands():
    # The table form ({text = ...}) makes pip and setuptools warn on every install; the SPDX string
    # form (PEP 639) needs setuptools 77 or later.
    assert isinstance(PYPROJECT["project"]["license"], str)
    (pin,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert int(re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", pin).group(1)) >= 77


def test_a_plain_pytest_run_collects_the_docstring_examples_of_the_package():
    """`make test` runs `pytest` with no path: its configuration must reach detector/'s doctests."""
    recipe = re.search(r"^test:.*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)
    assert recipe == "$(BIN)/python -m pytest -q -p no:cacheprovider"  # no path: pytest's testpaths decide
    assert "detector" in PYPROJECT["tool"]["pytest"]["ini_options"]["testpaths"]
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "detector"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    doctests = [line for line in result.stdout.splitlines() if line.startswith("detector/")]
    assert len(doctests) >= 30, result.stdout
    assert "detector/monitor/monitor.py::detector.monitor.monitor" in doctests
