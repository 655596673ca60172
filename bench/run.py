"""Run the benchmark parts, merge them into results.json, regenerate the markdown and plots.

    .venv-bench/bin/python bench/run.py --quick                 # make bench-quick → bench/quick/
    .venv-bench/bin/python bench/run.py                         # make bench → bench/, BENCHMARKS.md
    .venv-bench/bin/python bench/run.py --parts whole --merge   # re-run one part, keep the others

Each part runs in its own process (single_stream.py, whole_stream.py, throughput.py, stages.py) and writes
``<out>/parts/<part>.json``; a failed part is reported in results.json and does not hide the rest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGES = ["numpy", "scipy", "river", "alibi-detect", "kafka-python", "orjson", "scikit-learn", "matplotlib"]


def part_commands(quick: bool, backtest_records: str | None = None, serve_records: str | None = None) -> dict[str, list[str]]:
    flag = ["--quick"] if quick else []
    backtest = ["--backtest-records", *(backtest_records or ("100000" if quick else "1000000")).split(",")]
    serve = ["--serve-records", serve_records or ("30000" if quick else "100000")]
    return {"single": [str(HERE / "single_stream.py"), *flag],
            "whole": [str(HERE / "whole_stream.py"), *flag],
            "throughput": [str(HERE / "throughput.py"), *backtest, *serve],
            # Per-stage rates (parse, featurise, detect) from bench/stages.py; its serve part is
            # left to throughput.py, which runs `janus serve` itself.
            "stages": [str(HERE / "stages.py"), "-n", "20000" if quick else "60000", "--no-serve"]}


def part_main(run, doc: str, argv: list[str] | None = None) -> int:
    """Command line of a part: ``--quick`` and ``--out FILE`` (the JSON that ``run(quick)`` returns)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs: minutes, for development")
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    args = parser.parse_args(argv)
    Path(args.out).write_text(json.dumps(run(args.quick), indent=1))
    return 0


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        mem = float("nan")
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git() -> tuple[str, bool]:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "detector"], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
        return rev, dirty
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs: minutes, for development")
    parser.add_argument("--parts", default="single,whole,throughput,stages", help="comma-separated subset")
    parser.add_argument("--merge", action="store_true", help="keep part results already in the output folder")
    parser.add_argument("--backtest-records", help="comma-separated log sizes (default 1000000; quick 100000)")
    parser.add_argument("--serve-records", help="records on the serve topic (default 100000; quick 30000)")
    args = parser.parse_args(argv)
    out_dir = HERE / "quick" if args.quick else HERE
    parts_dir = out_dir / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    commands = part_commands(args.quick, args.backtest_records, args.serve_records)
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(wanted) - set(commands)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; valid: {sorted(commands)}")
    started = time.time()
    load = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for part in wanted:
        target = parts_dir / f"{part}.json"
        target.unlink(missing_ok=True)
        t0 = time.time()
        print(f"[bench] {part}: {' '.join(commands[part][1:])}", flush=True)
        proc = subprocess.run([sys.executable, *commands[part], "--out", str(target)], env=env, cwd=ROOT)
        meta = {"seconds": round(time.time() - t0, 1), "returncode": proc.returncode,
                "args": " ".join(commands[part][1:]), "load_average": round(os.getloadavg()[0], 1),
                "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        (parts_dir / f"{part}.meta.json").write_text(json.dumps(meta))
        print(f"[bench] {part}: exit {proc.returncode} after {meta['seconds']:.0f} s", flush=True)
    results: dict = {}
    for part in commands:
        target, meta_file = parts_dir / f"{part}.json", parts_dir / f"{part}.meta.json"
        if part not in wanted and not args.merge:
            continue
        if target.exists():
            results[{"single": "single_stream", "whole": "whole_stream"}.get(part, part)] = json.loads(target.read_text())
        results.setdefault("part_runs", {})[part] = json.loads(meta_file.read_text()) if meta_file.exists() else None
    rev, dirty = git()
    command = "make bench-quick" if args.quick else "make bench"
    if not wanted:
        command = "bench/run.py --parts '' --merge (results of the parts below, each run by bench/run.py)"
    elif args.parts != "single,whole,throughput,stages" or args.merge or args.backtest_records or args.serve_records:
        command = (f"bench/run.py{' --quick' if args.quick else ''} --parts {args.parts}"
                   f"{' --merge' if args.merge else ''}"
                   f"{f' --backtest-records {args.backtest_records}' if args.backtest_records else ''}"
                   f"{f' --serve-records {args.serve_records}' if args.serve_records else ''}")
    results["meta"] = {"command": command, "mode": "quick" if args.quick else "full",
                       "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       "minutes": (time.time() - started) / 60, "machine": machine(),
                       "load_average": round(load, 1), "versions": versions(), "git": rev, "dirty": dirty}
    if "throughput" in results:
        results["throughput"]["note"] = (
            "RSS at 5M records is not part of `make bench` (≈15 min more on this machine): "
            "`make bench-soak` runs the backtest at 1M and 5M records.")
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    md = ROOT / "BENCHMARKS.md" if not args.quick else out_dir / "BENCHMARKS.md"
    subprocess.run([sys.executable, str(HERE / "report.py"), str(out_dir / "results.json"), str(md)], check=True,
                   env=env)
    print(f"[bench] wrote {out_dir / 'results.json'} and {md}", flush=True)
    failed = [p for p, m in results.get("part_runs", {}).items() if m and m["returncode"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
