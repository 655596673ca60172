"""The `janus` command line as a whole: help, version, lazy imports, one-line errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from clirun import run_cli
from detector import __version__
from detector.cli import COMMANDS, _where, main

HEAVY = ("numpy", "scipy", "sklearn", "kafka", "prometheus_client", "matplotlib", "jinja2")
# Commands whose own --help needs none of HEAVY (simulate lists numpy-built scenarios; demo is all of Janus).
LIGHT_HELP = [["--version"], ["--help"], *([name, "--help"] for name in COMMANDS if name not in ("simulate", "demo")),
              ["baseline", "build", "--help"]]


def test_help_and_version_import_no_heavy_library():
    """A fresh interpreter parses each argv; afterwards none of the heavy libraries is loaded."""
    probe = ("import contextlib, io, json, sys\n"
             "from detector.cli import main\n"
             "for argv in json.loads(sys.argv[1]):\n"
             "    with contextlib.redirect_stdout(io.StringIO()):\n"
             "        try:\n"
             "            main(argv)\n"
             "        except SystemExit:\n"
             "            pass\n"
             f"print(json.dumps(sorted(m for m in sys.modules if m.partition('.')[0] in {HEAVY!r})))\n")
    result = subprocess.run([sys.executable, "-c", probe, json.dumps(LIGHT_HELP)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"janus {__version__}\n"


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    listing = capsys.readouterr().out
    for name, (_, text) in COMMANDS.items():
        assert f"    {name} " in listing and text.split()[0] in listing


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_registers_its_options(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: janus {name} ") and "options:" in out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


# ---- a file the user named cannot be read or written: one line, exit 2 ---------------------------

FILE_ERRORS = [
    (["backtest", "--input", "{folder}", "--alerts-out", "{tmp}/alerts.jsonl"],
     "--input {folder}: it is a folder; give the path of a file"),
    (["backtest", "--input", "{tmp}/absent.jsonl", "--alerts-out", "{tmp}/alerts.jsonl"],
     "--input {tmp}/absent.jsonl: no such file or folder; check the path"),
    (["backtest", "--input", "{log}", "--alerts-out", "{folder}"],
     "--alerts-out {folder}: it is a folder; give the path of a file"),
    (["backtest", "--input", "{log}", "--alerts-out", "{file}/alerts.jsonl"],
     "{file} (from --alerts-out {file}/alerts.jsonl): a file of that name is in the way; "
     "remove it or give another path"),
    (["backtest", "--input", "{log}", "--rejects-out", "{folder}"],
     "--rejects-out {folder}: it is a folder; give the path of a file"),
    (["baseline", "build", "--input", "{folder}", "--reason", "r"],
     "--input {folder}: it is a folder; give the path of a file"),
    (["probe", "analyze", "--input", "{folder}"],
     "{folder}: cannot read input file: it is a folder; give the path of a file"),
    (["review", "record", "--input", "{folder}"],
     "{folder}: cannot read verdicts: it is a folder; give the path of a file"),
    (["simulate", "--scenario", "no-change", "--seed", "1", "--out", "{file}"],
     "{file}: cannot create output directory: a file of that name is in the way; remove it or give another path"),
    (["--config", "{folder}", "config", "show"],
     "{folder}: cannot read configuration file: it is a folder; give the path of a file"),
]


@pytest.mark.parametrize(("argv", "expected"), FILE_ERRORS, ids=[" ".join(a[:2]) for a, _ in FILE_ERRORS])
def test_file_errors_are_one_line_naming_the_file_and_the_fix(tmp_path, argv, expected):
    names = {"tmp": tmp_path, "folder": tmp_path / "folder", "file": tmp_path / "file.txt",
             "log": tmp_path / "log.jsonl"}
    names["folder"].mkdir()
    names["file"].write_text("not a folder\n")
    names["log"].write_bytes(b'{"decision_id": "d", "timestamp": 1, "model_id": "m", "traffic": "production"}\n')
    store = ["--store", str(tmp_path / "store")] if argv[0] in ("backtest", "baseline", "review") else []
    rc, out, err = run_cli([a.format(**names) for a in argv] + store)
    assert (rc, out) == (2, "")
    assert err == f"janus: error: {expected.format(**names)}\n"


def test_the_failed_file_is_named_after_the_closest_option():
    args = argparse.Namespace(command="baseline", baseline_command="build", input="in.jsonl", out=".",
                              store="s", reason="r", handler=None)
    assert _where(args, "in.jsonl") == "--input in.jsonl"
    assert _where(args, "s/m/1/meta.json") == "s/m/1/meta.json (from --store s)"  # not --out ., further up
    assert _where(args, "/elsewhere/x") == "/elsewhere/x"
    args.out = "out/sub/alerts.jsonl"
    assert _where(args, "out") == "out (from --out out/sub/alerts.jsonl)"
