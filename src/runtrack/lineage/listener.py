"""The OpenLineage listener: START when a run starts, one terminal event when it ends.

The ledger calls it after each commit, on the thread that made the change
(the run's, a reaper's, a canceller's). It only queues the committed record;
the event is built and sent on the emitter's thread through the
openlineage-python client, so an endpoint that is down, slow or refusing
never fails or slows a run. A run cancelled or reaped before it started gets
its terminal event only (ABORT or FAIL, no START).
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunState
from openlineage.client.transport import Transport, get_default_factory

from runtrack.config import Settings
from runtrack.errors import ConfigurationError
from runtrack.lineage.emitter import Emission, Emitter, EmitterStats
from runtrack.lineage.events import TERMINAL_EVENTS, run_event
from runtrack.logs import run_fields
from runtrack.models import RunRecord

__all__ = ["HTTP_TIMEOUT", "OpenLineageListener", "transport_config"]

log = logging.getLogger("runtrack.lineage")

#: Seconds one HTTP request to the lineage endpoint may take (per try).
HTTP_TIMEOUT = 5.0


class OpenLineageListener:
    """A run listener that emits OpenLineage run events through ``client``.

    ``queue_size`` bounds the events waiting to be sent (more are dropped with
    a warning); ``close_timeout`` bounds how long :meth:`close` waits for them.
    """

    def __init__(
        self,
        client: OpenLineageClient,
        *,
        namespace: str = "runtrack",
        queue_size: int = 1000,
        close_timeout: float = 5.0,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.close_timeout = close_timeout
        self._emitter = Emitter(
            self._send,
            maxsize=queue_size,
            on_close=lambda: client.close(timeout=close_timeout),
            name="runtrack-openlineage",
        )
        # A script that never closes its ledger still gets its last events out
        # (the emitter's daemon thread would otherwise die with the interpreter).
        atexit.register(self.close)

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> OpenLineageListener:
        """A listener on the transports the settings name (``RUNTRACK_OPENLINEAGE_*``)."""
        try:
            transport: Transport = get_default_factory().create(transport_config(settings))
        except (ValueError, RuntimeError, TypeError) as exc:
            raise ConfigurationError(f"RUNTRACK_OPENLINEAGE_*: {exc}") from exc
        return cls(
            OpenLineageClient(transport=transport),
            namespace=settings.openlineage_namespace,
            **options,
        )

    @property
    def stats(self) -> EmitterStats:
        """Events sent, failed, dropped and waiting."""
        return self._emitter.stats

    def run_started(self, run: RunRecord) -> None:
        self._emitter.submit(Emission(RunState.START.value, run))

    def run_finished(self, run: RunRecord) -> None:
        state = TERMINAL_EVENTS.get(run.status)
        if state is None:  # the ledger reports terminal runs only; never send a bogus end
            log.warning("run %s finished as %s?", run.id, run.status, extra=run_fields(run))
            return
        self._emitter.submit(Emission(state.value, run))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the events queued so far are sent (or failed)."""
        return self._emitter.flush(self.close_timeout if timeout is None else timeout)

    def close(self) -> None:
        """Send what is queued (for at most ``close_timeout``), then stop."""
        atexit.unregister(self.close)
        self._emitter.close(self.close_timeout)

    def _send(self, emission: Emission) -> None:
        state = RunState(emission.event_type)
        self.client.emit(run_event(emission.run, state, self.namespace))


def transport_config(settings: Settings) -> dict[str, Any]:
    """The openlineage-python transport configuration the settings describe:
    ``http`` (``RUNTRACK_OPENLINEAGE_URL``: the server's base URL, events go to
    ``/api/v1/lineage``), ``file`` (``RUNTRACK_OPENLINEAGE_FILE``: JSON lines
    appended to that path), ``console`` (``RUNTRACK_OPENLINEAGE_CONSOLE``: the
    ``openlineage.client.transport.console`` logger). Several: all of them."""
    transports: list[dict[str, Any]] = []
    if settings.openlineage_url:
        url = _http_url(settings.openlineage_url)
        transports.append({"type": "http", "url": url, "timeout": HTTP_TIMEOUT})
    if settings.openlineage_file:
        path = _file_path(settings.openlineage_file)
        transports.append({"type": "file", "log_file_path": path, "append": True})
    if settings.openlineage_console:
        transports.append({"type": "console"})
    if not transports:
        raise ConfigurationError(
            "OpenLineage has no transport: set RUNTRACK_OPENLINEAGE_URL, "
            "RUNTRACK_OPENLINEAGE_FILE or RUNTRACK_OPENLINEAGE_CONSOLE"
        )
    if len(transports) == 1:
        return transports[0]
    return {
        "type": "composite",
        "transports": transports,
        "continue_on_failure": True,  # a dead endpoint must not starve the file
        "continue_on_success": True,
    }


def _http_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"RUNTRACK_OPENLINEAGE_URL={url!r} is not an http(s) URL "
            "(allowed: the lineage server's base URL, e.g. http://marquez:5000)"
        )
    return url.strip()


def _file_path(path: str) -> str:
    folder = Path(path).expanduser().resolve().parent
    if not folder.is_dir():
        raise ConfigurationError(
            f"RUNTRACK_OPENLINEAGE_FILE={path!r}: folder {str(folder)!r} does not exist "
            "(allowed: a file path in an existing folder; events are appended as JSON lines)"
        )
    return str(Path(path).expanduser())
