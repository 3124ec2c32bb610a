"""``runtrack demo``: simulated ingestion jobs on a real ledger.

One job per real-world scenario (a paginated job-board search, a price
lookup of products across marketplaces, a CRM connector, a discovery search
over NAICS codes with incremental windows, a provider that rate-limits and
gets paused), a long backfill that an operator cancels, and a worker process
that is killed with SIGKILL and then reaped.
"""

from runtrack.demo.story import run_demo

__all__ = ["run_demo"]
