"""Settings from arguments and ``RUNTRACK_*`` environment variables, validated once.

- ``RUNTRACK_DATABASE_URL``: the ledger's database (``sqlite:///runtrack.db``).
- ``RUNTRACK_API_TOKEN``: bearer token for mutating API routes and the
  dashboard's buttons; unset, mutations answer 403.
- ``RUNTRACK_READ_TOKEN``: bearer token required for reads; unset, reads are open.
- ``RUNTRACK_HEARTBEAT_INTERVAL``: seconds between heartbeats (15).
- ``RUNTRACK_STALE_AFTER``: seconds without a heartbeat before a run is reaped
  (max(4 x interval, 60)).
- ``RUNTRACK_CANCEL_GRACE``: seconds a cancel request waits before the reaper
  cancels the run itself (30).
- ``RUNTRACK_SECURE_COOKIES``: mark the dashboard's cookie ``Secure`` (and
  name it ``__Host-...``) even when the request does not look like HTTPS
  (``false``: only for HTTPS requests).
- ``RUNTRACK_FORWARDED_ALLOW_IPS``: addresses of the proxies whose
  ``X-Forwarded-Proto``/``-For`` ``runtrack serve`` trusts (``127.0.0.1``).
- ``RUNTRACK_PUBLIC_ERRORS``: ``true`` shows runs' stack traces and error
  details to everyone who can read; by default only to signed-in users (a
  bearer token on the API, a session on the dashboard), since they can hold
  secrets.
- ``RUNTRACK_CHECK_EVERY``: seconds between two checks of the jobs'
  expectations by ``runtrack serve`` (30; 0: the server does not check).
- ``RUNTRACK_OPENLINEAGE_URL`` / ``_FILE`` / ``_CONSOLE``: OpenLineage transport
  (unset: no events); ``RUNTRACK_OPENLINEAGE_NAMESPACE`` (``runtrack``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from runtrack import inputs
from runtrack.errors import ConfigurationError, InvalidInput, describe
from runtrack.events import RunListener

__all__ = ["Settings", "Timing", "check_options", "timing"]

_PREFIX = "RUNTRACK_"

#: The heartbeat interval's bounds, in seconds.
MIN_INTERVAL = 0.05
MAX_INTERVAL = 86400.0


@dataclass(frozen=True, slots=True)
class Timing:
    """The liveness settings of a ledger, validated together (see :func:`timing`)."""

    heartbeat_interval: float
    stale_after: timedelta
    cancel_grace: timedelta


def timing(
    heartbeat_interval: object, stale_after: object = None, cancel_grace: object = 30.0
) -> Timing:
    """The one set of rules for the heartbeat interval, the stale threshold
    and the cancel grace, shared by :class:`Settings` and ``Ledger(...)``.

    ``heartbeat_interval``: seconds from 0.05 to 86400. ``stale_after``:
    ``None`` for the default, max(4 x interval, 60 s); else a duration longer
    than the interval (a run that heartbeats on time must never look stale),
    at most 1000 years. ``cancel_grace``: a positive duration. Raises
    :class:`InvalidInput` naming the argument and what is allowed.
    """
    interval = float(inputs.number("heartbeat_interval", heartbeat_interval))
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise InvalidInput(
            "heartbeat_interval",
            f"got {interval:g}",
            f"seconds from {MIN_INTERVAL:g} to {MAX_INTERVAL:g}",
        )
    if stale_after is None:
        stale = timedelta(seconds=max(4 * interval, 60.0))
    else:
        stale = inputs.duration("stale_after", stale_after, limit=inputs.MAX_DURATION)
        if stale.total_seconds() <= interval:
            raise InvalidInput(
                "stale_after",
                f"got {stale.total_seconds():g} s, not longer than the heartbeat interval "
                f"({interval:g} s): healthy runs would be reaped",
                f"a duration longer than heartbeat_interval, or None for max(4 x {interval:g}"
                " s, 60 s)",
            )
    grace = inputs.duration("cancel_grace", cancel_grace, limit=inputs.MAX_DURATION)
    return Timing(interval, stale, grace)


def check_options(
    url: object,
    finalize_timeout: object,
    worker_id: object,
    listeners: object,
) -> None:
    """Refuse bad options when the ledger is made, not when a run trips over them."""
    if url is not None and not isinstance(url, str):
        raise InvalidInput("url", f"got {type(url).__name__}", "a database URL string")
    timeout = inputs.number("finalize_timeout", finalize_timeout)
    if not 0 <= timeout <= 86400:
        raise InvalidInput("finalize_timeout", f"got {timeout}", "seconds from 0 to 86400")
    inputs.key("worker_id", worker_id, optional=True)
    if not isinstance(listeners, list | tuple) or not all(
        isinstance(listener, RunListener) for listener in listeners
    ):
        raise InvalidInput(
            "listeners", f"got {describe(listeners)}", "a list of RunListener objects"
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, in one validated record."""

    database_url: str = "sqlite:///runtrack.db"
    api_token: str | None = field(default=None, repr=False)
    read_token: str | None = field(default=None, repr=False)
    heartbeat_interval: float = 15.0
    stale_after: float | None = None
    cancel_grace: float = 30.0
    secure_cookies: bool = False
    forwarded_allow_ips: str | None = None
    public_errors: bool = False
    openlineage_url: str | None = None
    openlineage_file: str | None = None
    openlineage_console: bool = False
    openlineage_namespace: str = "runtrack"
    check_every: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``RUNTRACK_*`` variables, then explicit overrides
        (``None`` overrides are ignored)."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.__dataclass_fields__:
            raw = source.get(_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = _parse(name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values).validated()

    def validated(self) -> Settings:
        try:
            timing(self.heartbeat_interval, self.stale_after, self.cancel_grace)
        except InvalidInput as bad:
            # The same rules as Ledger(...); named as the environment names them.
            raise ConfigurationError(
                f"{_PREFIX}{bad.field.upper()} ({bad.field}): {bad.problem}"
                + (f" (allowed: {bad.allowed})" if bad.allowed else "")
            ) from None
        if not (0 <= self.check_every <= MAX_INTERVAL):
            raise ConfigurationError(
                f"{_PREFIX}CHECK_EVERY={self.check_every:g}: seconds from 0 (no checks) "
                f"to {MAX_INTERVAL:g}"
            )
        for name in ("api_token", "read_token"):
            token = getattr(self, name)
            if token is not None and len(token) < 16:
                raise ConfigurationError(
                    f"RUNTRACK_{name.upper()} is too short; use at least 16 random characters"
                )
        return self

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes).validated()


def _parse(name: str, raw: str) -> Any:
    kind = Settings.__dataclass_fields__[name].type
    try:
        if "float" in str(kind):
            return float(raw)
        if "bool" in str(kind):
            return raw.strip().lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise ConfigurationError(
            f"{_PREFIX}{name.upper()}={raw!r} is not a number of seconds"
        ) from None
    return raw
