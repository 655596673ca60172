"""Run the benchmark parts, merge them into results.json, regenerate the markdown and plots.

    .venv-bench/bin/python bench/run.py --quick                 # make bench-quick → bench/quick/
    .venv-bench/bin/python bench/run.py                         # make bench → bench/, BENCHMARKS.md
    .venv-bench/bin/python bench/run.py --parts whole --merge   # re-run one part, keep the others

Each part runs in its own process (single_stream.py, whole_stream.py, realistic_logs.py,
refusal_recogniser.py, throughput.py, stages.py, scale_out.py) and writes
``<out>/parts/<part>.json``; a failed part is reported in results.json and does not hide the rest.
The detection parts (single-stream changes in two parts, whole streams) run in two lanes side by side,
one per core; the throughput parts (throughput, stages, scale_out) then run alone, one after the other, so
their rates are not shared with the benchmark itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PACKAGES = ["numpy", "scipy", "river", "alibi-detect", "kafka-python", "orjson", "scikit-learn", "matplotlib"]


def part_commands(quick: bool, backtest_records: str | None = None, serve_records: str | None = None) -> dict[str, list[str]]:
    flag = ["--quick"] if quick else []
    backtest = ["--backtest-records", *(backtest_records or ("50000" if quick else "1000000")).split(",")]
    serve = ["--serve-records", serve_records or ("10000" if quick else "50000"),
             *(["--latency-records", "6000"] if quick else [])]
    single = [str(HERE / "single_stream.py"), *flag, "--changes"]
    return {"single-1": [*single, "0,1"], "single-2": [*single, "2,3,4"],
            "whole": [str(HERE / "whole_stream.py"), *flag],
            "realistic": [str(HERE / "realistic_logs.py"), *flag],
            "refusal": [str(HERE / "refusal_recogniser.py"), *flag],
            # A log generator Janus was not built with (bench/peopledesk_logs.py): the null and changes.
            "independent": [str(HERE / "independent.py"), *flag],
            "throughput": [str(HERE / "throughput.py"), *backtest, *serve],
            # Per-stage rates (parse, featurise, detect) from bench/stages.py; its serve part is
            # left to throughput.py, which runs `janus serve` itself.
            "stages": [str(HERE / "stages.py"), *(["-n", "10000", "--repeat", "1"] if quick else ["-n", "30000"]),
                       "--no-serve"],
            # One busy model: one vs two featuriser processes feeding one detector, the detector's
            # ceiling, state-topic checkpoint size and time (bench/scale_out.py).
            "scale_out": [str(HERE / "scale_out.py"), *flag]}


# CPU-bound detection parts: one lane per core, a lane's parts one after the other; the single-stream
# changes are split so that both lanes take about as long. The other parts then run alone.
LANES = (("single-2", "realistic"), ("whole", "single-1", "refusal", "independent"))
SINGLE_PARTS = ("single-1", "single-2")  # merged, in this order, into results["single_stream"]


def part_main(run, doc: str, argv: list[str] | None = None, options: dict[str, str] | None = None) -> int:
    """Command line of a part: ``--quick``, ``--out FILE`` (the JSON that ``run(quick, **options)`` returns)
    and the part's own string ``options`` (name → help)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few runs: minutes, for development")
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    for name, help_ in (options or {}).items():
        parser.add_argument(f"--{name}", help=help_)
    args = vars(parser.parse_args(argv))
    out = Path(args.pop("out"))
    out.write_text(json.dumps(run(**args), indent=1))
    return 0


def merge_single(parts: list[dict]) -> dict:
    """One single_stream result from parts that each ran some of the changes."""
    return {**parts[0], **{k: [x for p in parts for x in p[k]] for k in ("changes", "matched", "rows", "curves")}}


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
    parser.add_argument("--parts", help="comma-separated subset (default: all; quick: all but stages and scale_out)")
    parser.add_argument("--merge", action="store_true", help="keep part results already in the output folder")
    parser.add_argument("--backtest-records", help="comma-separated log sizes (default 1000000; quick 50000)")
    parser.add_argument("--serve-records", help="records on the serve topic (default 50000; quick 10000)")
    args = parser.parse_args(argv)
    out_dir = HERE / "quick" if args.quick else HERE
    parts_dir = out_dir / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    commands = part_commands(args.quick, args.backtest_records, args.serve_records)
    # quick leaves out the per-stage rates and the scale-out (bench/stages.py, bench/scale_out.py): make
    # bench-quick must stay under 2 minutes
    default = ",".join(p for p in commands if not (args.quick and p in ("stages", "scale_out")))
    parts = args.parts if args.parts is not None else default
    wanted = [p.strip() for p in parts.split(",") if p.strip()]
    unknown = set(wanted) - set(commands)
    if unknown:
        parser.error(f"unknown part(s) {sorted(unknown)}; valid: {sorted(commands)}")
    started = time.time()
    load = os.getloadavg()[0]
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}", "TF_CPP_MIN_LOG_LEVEL": "3"}

    def run_lane(lane: list[str], alongside: list[str]) -> None:
        for part in lane:
            target = parts_dir / f"{part}.json"
            target.unlink(missing_ok=True)
            print(f"[bench] {part}: {' '.join(commands[part][1:])}", flush=True)
            t0 = time.time()
            proc = subprocess.run([sys.executable, *commands[part], "--out", str(target)], env=env, cwd=ROOT)
            meta = {"seconds": round(time.time() - t0, 1), "returncode": proc.returncode,
                    "args": " ".join(commands[part][1:]), "load_average": round(os.getloadavg()[0], 1),
                    "alongside": alongside,
                    "finished": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "git": git()[0]}
            (parts_dir / f"{part}.meta.json").write_text(json.dumps(meta))
            print(f"[bench] {part}: exit {proc.returncode} after {meta['seconds']:.0f} s", flush=True)

    lanes = [lane for lane in ([p for p in lane if p in wanted] for lane in LANES) if lane]
    threads = [threading.Thread(target=run_lane, args=(lane, [p for o in lanes if o is not lane for p in o]))
               for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run_lane([p for p in wanted if not any(p in lane for lane in LANES)], [])
    results: dict = {}
    for part in commands:
        target, meta_file = parts_dir / f"{part}.json", parts_dir / f"{part}.meta.json"
        if part not in wanted and not args.merge:
            continue
        if target.exists():
            results[{"whole": "whole_stream"}.get(part, part)] = json.loads(target.read_text())
        results.setdefault("part_runs", {})[part] = json.loads(meta_file.read_text()) if meta_file.exists() else None
    singles = [results.pop(part) for part in SINGLE_PARTS if part in results]
    if singles:
        results["single_stream"] = merge_single(singles)
    rev, dirty = git()
    command = "make bench-quick" if args.quick else "make bench"
    if not wanted:
        command = "bench/run.py --parts '' --merge (results of the parts below, each run by bench/run.py)"
    elif args.parts is not None or args.merge or args.backtest_records or args.serve_records:
        command = (f"bench/run.py{' --quick' if args.quick else ''} --parts {args.parts}"
                   f"{' --merge' if args.merge else ''}"
                   f"{f' --backtest-records {args.backtest_records}' if args.backtest_records else ''}"
                   f"{f' --serve-records {args.serve_records}' if args.serve_records else ''}")
    results["meta"] = {"command": command, "mode": "quick" if args.quick else "full",
                       "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                       "minutes": (time.time() - started) / 60, "machine": machine(),
                       "load_average": round(load, 1), "versions": versions(), "git": rev, "dirty": dirty}
    soak = HERE / "soak.json"
    if soak.exists() and not args.quick:  # written by `make bench-soak`; reported beside this run, with its date
        results["soak"] = {**json.loads(soak.read_text()), "date": dt.datetime.fromtimestamp(
            soak.stat().st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    md = ROOT / "BENCHMARKS.md" if not args.quick else out_dir / "BENCHMARKS.md"
    subprocess.run([sys.executable, str(HERE / "report.py"), str(out_dir / "results.json"), str(md)], check=True,
                   env=env)
    print(f"[bench] wrote {out_dir / 'results.json'} and {md}", flush=True)
    failed = [p for p, m in results.get("part_runs", {}).items() if m and m["returncode"]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
