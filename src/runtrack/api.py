"""The HTTP API's entry point: ``runtrack.api.create_app(ledger, settings)``.

Needs the ``server`` extra (FastAPI, uvicorn, prometheus_client).
"""

from __future__ import annotations

from runtrack.web.app import create_app

__all__ = ["create_app"]
