"""The sizes of a run: the full suite's (the issue's) and ``--quick``'s."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bench.overhead import OverheadParams

__all__ = ["FULL", "QUICK", "Params"]


@dataclass(frozen=True, slots=True)
class Params:
    overhead: OverheadParams
    runs: int  # runs in the generated ledger
    jobs: int
    item_share: float  # share of runs that have items
    items_per_run: int  # items of each run that has some
    query_reps: int  # timed calls of each query
    reap: int  # stale runs to reap
    prune: int  # runs to prune
    prune_batch: int
    api_requests: int  # per endpoint, the bound of the load generator
    api_seconds: float  # per endpoint, the other bound
    api_clients: int
    exec_reps: tuple[int, int]  # alternations, commands per batch of `runtrack exec true`
    queue_reps: int = 40  # triggers timed to running, per database
    queue_drain: int = 1_000  # runs drained by 4 workers x 4

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_runs(self, runs: int) -> Params:
        return dataclasses.replace(self, runs=runs, prune=min(self.prune, runs // 2))


FULL = Params(
    overhead=OverheadParams(
        reps=30, batch=100, items=100_000, item_reps=3, increments=1_000_000, counter_reps=5
    ),
    runs=1_000_000,
    jobs=200,
    item_share=0.01,
    items_per_run=20,
    query_reps=40,
    reap=1_000,
    prune=500_000,
    prune_batch=1_000,
    api_requests=5_000,
    api_seconds=10.0,
    api_clients=8,
    exec_reps=(10, 5),
)

QUICK = Params(
    overhead=OverheadParams(
        reps=6, batch=40, items=20_000, item_reps=2, increments=200_000, counter_reps=3
    ),
    runs=20_000,
    jobs=200,
    item_share=0.01,
    items_per_run=20,
    query_reps=10,
    reap=1_000,
    prune=10_000,
    prune_batch=1_000,
    api_requests=500,
    api_seconds=2.0,
    api_clients=4,
    exec_reps=(3, 3),
    queue_reps=10,
    queue_drain=200,
)
