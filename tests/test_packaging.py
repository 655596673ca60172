"""pyproject.toml as pip and the build backend read it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())


def test_license_is_an_spdx_expression_the_pinned_backend_understands():
    # The table form ({text = ...}) makes pip and setuptools warn on every install; the SPDX string
    # form (PEP 639) needs setuptools 77 or later.
    assert isinstance(PYPROJECT["project"]["license"], str)
    (pin,) = [r for r in PYPROJECT["build-system"]["requires"] if r.startswith("setuptools")]
    assert int(re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", pin).group(1)) >= 77
