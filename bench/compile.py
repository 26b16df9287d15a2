"""Definitions benchmark: load, validate and compile every process, against a plain YAML load.

Run as ``python -m bench.compile``; ``--help`` lists the options. In one run it measures:

1. **Baseline**: reading every YAML file under `skeletons/` and `processes/` and parsing
   it with `ruamel.yaml`'s safe loader, nothing more.
2. **Cold load**: `load_definitions`, which reads the same files and the letter
   templates, resolves each process against its skeleton, validates it and compiles it.
   The ratio cold / baseline has a target of at most 3.
3. **Cached load**: the same through the cache of `engine/definitions/cache.py`, once
   the cache has the files as they are (the state after any `validate` or `deploy`).
4. **Serve readiness**: a fresh SQLite database with every process deployed, then
   `sagsflow serve` started as a subprocess. It reports the time the server spends
   making every deployed process ready (its warm-up, which the server logs), with the
   cache and without it, and the time from starting the subprocess until `/health`
   responds, which also includes starting Python and importing the libraries. The
   warm-up with the cache has a target of under 1 second.
5. **Memory** that the compiled processes hold, measured with `tracemalloc` after the
   rest of the load result is released.

Each timing is the best of `--repeat` runs, so that a busy machine disturbs it less.
docs/benchmarks.md explains the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from engine.definitions.cache import load_cached
from engine.definitions.loader import PROCESSES_DIR, SKELETONS_DIR, load_definitions

REPOSITORY = Path(__file__).resolve().parent.parent
SAGSFLOW = Path(sys.executable).parent / "sagsflow"
READY_LINE = re.compile(r"(\d+) process(?:es|er)? .*?(\d+(?:\.\d+)?) ms")
SERVE_TIMEOUT_SECONDS = 60.0


class BenchmarkError(Exception):
    pass


def best_of(repeat: int, work: Callable[[], object]) -> float:
    timings = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def yaml_files(root: Path) -> list[Path]:
    return sorted(path for folder in (SKELETONS_DIR, PROCESSES_DIR) for path in (root / folder).rglob("*.yaml"))


def baseline(files: Sequence[Path]) -> None:
    yaml = YAML(typ="safe")
    for path in files:
        yaml.load(path.read_text(encoding="utf-8"))


def compiled_memory(root: Path) -> tuple[int, int]:
    """Return the bytes that the compiled processes alone occupy, and their number."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    loaded = load_definitions(root)
    compiled = dict(loaded.compiled)
    del loaded
    gc.collect()
    occupied = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return occupied, len(compiled)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run_cli(env: dict[str, str], *arguments: str) -> None:
    # The repository's own command line, with fixed arguments.
    result = subprocess.run(  # noqa: S603
        [str(SAGSFLOW), *arguments], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BenchmarkError(f"sagsflow {' '.join(arguments)} failed: {result.stderr.strip()[-2000:]}")


def serve_once(env: dict[str, str]) -> dict[str, float]:
    """Start `sagsflow serve`, wait for /health, stop it; return the warm-up and the wall time."""
    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(  # noqa: S603 - the repository's own command line
        [str(SAGSFLOW), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/health"
        while True:
            if server.poll() is not None:
                raise BenchmarkError(f"sagsflow serve stopped: {server.stderr.read() if server.stderr else ''}")
            if time.perf_counter() - started > SERVE_TIMEOUT_SECONDS:
                raise BenchmarkError("sagsflow serve gave no response within a minute")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.02)
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=10)
    match = READY_LINE.search(errors)
    if match is None:
        raise BenchmarkError(f"sagsflow serve did not report its warm-up: {errors[-2000:]}")
    return {"processes": float(match.group(1)), "warm_up_seconds": float(match.group(2)) / 1000, "wall_seconds": wall}


def serve_readiness(root: Path, repeat: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sagsflow-bench-") as folder:
        base = Path(folder)
        env = dict(os.environ)
        env.update(
            SAGSFLOW_DATABASE_URL=f"sqlite:///{base / 'sagsflow.db'}",
            SAGSFLOW_DEFINITIONS=str(root),
            SAGSFLOW_CACHE_DIR=str(base / "cache"),
            SAGSFLOW_DIGITAL_POST_DIR=str(base / "digital-post"),
            SAGSFLOW_LANGUAGE="en",
        )
        run_cli(env, "db", "upgrade")
        # Deploying loads the definitions, which leaves them in the cache.
        run_cli(env, "deploy")
        results: dict[str, Any] = {}
        for name, cache_dir in (("with_cache", str(base / "cache")), ("without_cache", "")):
            env["SAGSFLOW_CACHE_DIR"] = cache_dir
            runs = [serve_once(env) for _ in range(repeat)]
            results[name] = {
                "processes": int(runs[0]["processes"]),
                "warm_up_seconds": min(run["warm_up_seconds"] for run in runs),
                "wall_seconds": min(run["wall_seconds"] for run in runs),
            }
        return results


def measure(root: Path, repeat: int, serve: bool) -> dict[str, Any]:
    files = yaml_files(root)
    loaded = load_definitions(root)
    if loaded.errors:
        problems = "; ".join(problem.format("en") for problem in loaded.errors[:5])
        raise BenchmarkError(f"The definitions have errors: {problems}")
    processes = len(loaded.compiled)
    del loaded

    baseline_seconds = best_of(repeat, lambda: baseline(files))
    cold_seconds = best_of(repeat, lambda: load_definitions(root))
    with tempfile.TemporaryDirectory(prefix="sagsflow-cache-") as cache_dir:
        load_cached(root, None, Path(cache_dir))
        cached_seconds = best_of(repeat, lambda: load_cached(root, None, Path(cache_dir)))
    occupied, counted = compiled_memory(root)
    report: dict[str, Any] = {
        "files": len(files),
        "processes": processes,
        "baseline_seconds": baseline_seconds,
        "cold_seconds": cold_seconds,
        "cold_ratio": cold_seconds / baseline_seconds,
        "cached_seconds": cached_seconds,
        "cached_ratio": cached_seconds / baseline_seconds,
        "compiled_bytes": occupied,
        "compiled_bytes_per_process": occupied // max(counted, 1),
    }
    if serve:
        report["serve"] = serve_readiness(root, repeat)
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['processes']} processes from {report['files']} YAML files",
        f"  plain ruamel.yaml safe load       {report['baseline_seconds']:8.3f} s",
        f"  load, validate and compile        {report['cold_seconds']:8.3f} s   "
        f"ratio {report['cold_ratio']:.2f} (target at most 3)",
        f"  the same from the cache           {report['cached_seconds']:8.3f} s   ratio {report['cached_ratio']:.2f}",
        f"  memory held by compiled processes {report['compiled_bytes'] / 1e6:8.1f} MB "
        f"({report['compiled_bytes_per_process'] / 1e3:.0f} kB per process)",
    ]
    for name, serve in report.get("serve", {}).items():
        lines.append(
            f"  serve {name.replace('_', ' '):<14} warm-up {serve['warm_up_seconds']:6.3f} s for "
            f"{serve['processes']} processes; first answer after {serve['wall_seconds']:6.3f} s"
        )
    return "\n".join(lines)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compile",
        description="Time loading, validating and compiling every definition against a plain YAML load.",
    )
    parser.add_argument("--root", type=Path, default=REPOSITORY, help="definitions folder (default: the repository)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each timing; the best counts (default: 3)")
    parser.add_argument("--no-serve", action="store_true", help="skip the serve readiness measurement")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON to PATH")
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    return arguments


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    arguments = parse_arguments(argv)
    report = measure(arguments.root.resolve(), arguments.repeat, serve=not arguments.no_serve)
    print(format_report(report))
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    try:
        main()
    except BenchmarkError as error:
        sys.exit(f"Benchmark failed: {error}")
