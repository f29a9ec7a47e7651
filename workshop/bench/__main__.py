"""``python -m workshop.bench [--quick] [--out DIR] [--reference PACKAGE]``: run the benchmark,
write JSON and plots. ``--reference`` measures a candidate reference server (a package with the
same ``create_app``/``Settings``, importable by the server processes) in place of
``reference_server``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from pathlib import Path

from .report import format_report
from .runner import FULL, QUICK, RESULTS_DIR, run_benchmark, write_results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workshop.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (seconds), for CI")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="where to write (default %(default)s)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--reference", metavar="PACKAGE",
                        help="measure this package's create_app/Settings as the reference server "
                             "(a candidate change; default reference_server)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)  # clients closed after the loop: noise
    config = QUICK if args.quick else FULL
    if args.reference:  # read by the server processes (worker.build_app)
        os.environ["WORKSHOP_BENCH_REFERENCE"] = args.reference
    t0 = time.time()
    print(f"workshop benchmark ({'quick' if args.quick else 'full'}): 4 configurations x "
          f"{len(config.pacings)} pacings x concurrency {list(config.concurrency)}", flush=True)
    results = asyncio.run(run_benchmark(config, progress=lambda s: print(s, flush=True)))
    path = write_results(results, args.out, plots=not args.no_plots)
    print(format_report(results))
    print(f"\nwrote {path} and plots in {args.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
