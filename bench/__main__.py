"""``python -m bench [--quick] [--name NAME] [--only SECTION,...]``

Runs the suite, prints one table and writes ``bench/results/<name>.json``
(and the same table as ``<name>.md``). Sections: overhead (run overhead,
items, counters, handing out carried items), queries (the API and dashboard queries on a generated
ledger), maintenance (reap, prune under a concurrent starter), api (a live
uvicorn under a bounded load generator), integrations (what tracking adds per
Celery task and per Scrapy crawl), exec (``runtrack exec true`` next to ``true``),
alerts (``check()`` and the volume guard), queue (trigger -> running, draining
with 4 workers x 4, the claim with 10,000 queued).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from bench import machine
from bench.databases import Databases
from bench.params import FULL, QUICK, Params
from bench.results import Measure, markdown_report, text_table, write_json
from bench.sections import SECTIONS, Suite
from runtrack.clock import SystemClock

RESULTS = Path(__file__).parent / "results"


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under a minute)")
    parser.add_argument("--name", help="results file name (default: full or quick)")
    parser.add_argument("--only", help=f"comma-separated sections of: {', '.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, help="runs in the generated ledger")
    return parser.parse_args(argv)


def _document(args: argparse.Namespace, p: Params, dbs: Databases, began: float) -> dict[str, Any]:
    return {
        "name": args.name or ("quick" if args.quick else "full"),
        "date": SystemClock().now().isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "machine": machine.describe_machine(),
        "versions": machine.versions(dbs.pg_version),
        "parameters": p.as_dict(),
        "postgresql": "ok" if dbs.pg_admin else f"skipped: {dbs.pg_error}",
        "elapsed_seconds": None,
        "started_monotonic": began,
    }


def main(argv: list[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # The reaper logs every run it ends: a thousand lines that are not results.
    logging.getLogger("runtrack").setLevel(logging.ERROR)
    p = QUICK if args.quick else FULL
    if args.runs:
        p = p.with_runs(args.runs)
    wanted = args.only.split(",") if args.only else list(SECTIONS)
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    began = time.monotonic()
    dbs = Databases()
    document = _document(args, p, dbs, began)
    measures: list[Measure] = []
    suite = Suite(p, dbs)
    try:
        for name in wanted:
            print(f"== {name}", flush=True)
            measures += SECTIONS[name](suite)
    finally:
        dbs.close()
    document["generated"] = suite.generated
    document["plans"] = suite.plans
    document.pop("started_monotonic")
    document["elapsed_seconds"] = round(time.monotonic() - began, 1)
    document["machine"]["load_average_at_end"] = machine.load_average()
    document["measures"] = [m.as_dict() for m in measures]
    targets = [m for m in measures if m.target]
    document["summary"] = {
        "pass": sum(m.verdict == "PASS" for m in targets),
        "miss": sum(m.verdict == "MISS" for m in targets),
    }
    print()
    print(text_table(measures))
    name = document["name"]
    write_json(RESULTS / f"{name}.json", document)
    (RESULTS / f"{name}.md").write_text(markdown_report(document, measures))
    summary = document["summary"]
    print(
        f"\n{summary['pass']} PASS, {summary['miss']} MISS in {document['elapsed_seconds']} s; "
        f"wrote bench/results/{name}.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
