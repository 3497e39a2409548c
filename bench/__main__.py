"""``python -m bench NAME [--quick]``: run one benchmark, print its table, write its results.

A benchmark is a module ``bench/NAME.py`` (names starting with ``_`` are helpers, not benchmarks)
defining ``run(quick: bool, progress: Progress) -> list[Figure]``, either ``async def`` (run under
``trio.run``) or plain ``def``. It may also define ``versions() -> Mapping[str, str]``, called after
``run``, to add the versions of what it measured (e.g. a server it started) to the results.
A bench whose ``run`` takes a ``url`` keyword measures the server at ``--url`` instead of one
it starts itself. Two more optional hooks, called after ``run``: ``details() -> Mapping`` (JSON
values, written to the results as ``details``) and ``write_extras(results_dir, document) ->
list[Path]`` (files written beside the results, such as plots; ``document`` is the results).
The results go to ``bench/results/NAME.json`` in BENCH.md's format. The exit status is 0 whether
targets are met or not; 2 for an unknown NAME or a module that is not a benchmark.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import inspect
import json
import pkgutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import trio

from bench._harness import Figure, Progress, build_report, render_table

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def available() -> list[str]:
    """The names of the benchmarks in ``bench/``, sorted."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(BENCH_DIR)])
        if not info.name.startswith("_") and not info.ispkg
    )


def _run(module: Any, quick: bool, progress: Progress, url: str | None = None) -> Any:
    run = module.run
    if url is not None:
        run = functools.partial(run, url=url)
    if inspect.iscoroutinefunction(module.run):
        return trio.run(run, quick, progress)
    return run(quick, progress)


def _takes_url(module: Any) -> bool:
    return "url" in inspect.signature(module.run).parameters


def _check_figures(name: str, result: Any) -> list[Figure]:
    if not isinstance(result, list) or not all(isinstance(f, Figure) for f in result):
        raise TypeError(
            f"bench.{name}.run must return a list of bench._harness.Figure, got {result!r}"
        )
    return result


def _extra_versions(name: str, module: Any) -> Mapping[str, str]:
    hook = getattr(module, "versions", None)
    if hook is None:
        return {}
    versions = hook()
    if not isinstance(versions, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
    ):
        raise TypeError(
            f"bench.{name}.versions() must return a str -> str mapping, got {versions!r}"
        )
    return versions


def main(argv: Sequence[str] | None = None) -> int:
    names = available()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run one benchmark against its own baseline (see BENCH.md).",
        epilog="available benches: " + (", ".join(names) or "(none)"),
    )
    parser.add_argument("name", help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="smaller counts, under 30 s")
    parser.add_argument("--url", help="base URL of a running node to measure (the benches "
                                      "that take it: http, mixed); default: start one")
    opts = parser.parse_args(argv)
    name: str = opts.name

    if name not in names:
        print(
            f"python -m bench: unknown bench {name!r}; "
            f"available benches: {', '.join(names) or '(none)'}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(f"bench.{name}")
    if not callable(getattr(module, "run", None)):
        print(
            f"python -m bench: bench/{name}.py defines no run(quick, progress); "
            "add one returning a list of Figure",
            file=sys.stderr,
        )
        return 2

    if opts.url is not None and not _takes_url(module):
        print(f"python -m bench: bench {name!r} does not take --url (it starts what it "
              "measures)", file=sys.stderr)
        return 2

    when = datetime.datetime.now(datetime.UTC)
    with Progress(name + (" --quick" if opts.quick else "")) as progress:
        figures = _check_figures(name, _run(module, opts.quick, progress, opts.url))
        progress.step(f"done: {len(figures)} figures")
    report = build_report(name, figures, when=when, extra_versions=_extra_versions(name, module))
    details = getattr(module, "details", None)
    if details is not None:
        report["details"] = dict(details())

    print(render_table(figures))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    write_extras = getattr(module, "write_extras", None)
    if write_extras is not None:
        for extra in write_extras(RESULTS_DIR, report):
            print(f"wrote {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
