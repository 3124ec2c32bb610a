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
- ``RUNTRACK_OPENLINEAGE_URL`` / ``_FILE`` / ``_CONSOLE``: OpenLineage transport
  (unset: no events); ``RUNTRACK_OPENLINEAGE_NAMESPACE`` (``runtrack``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runtrack.errors import ConfigurationError

__all__ = ["Settings"]

_PREFIX = "RUNTRACK_"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, in one validated record."""

    database_url: str = "sqlite:///runtrack.db"
    api_token: str | None = field(default=None, repr=False)
    read_token: str | None = field(default=None, repr=False)
    heartbeat_interval: float = 15.0
    stale_after: float | None = None
    cancel_grace: float = 30.0
    openlineage_url: str | None = None
    openlineage_file: str | None = None
    openlineage_console: bool = False
    openlineage_namespace: str = "runtrack"

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
        if self.heartbeat_interval < 0.05:
            raise ConfigurationError(
                f"RUNTRACK_HEARTBEAT_INTERVAL is {self.heartbeat_interval}; it must be >= 0.05 s"
            )
        if self.stale_after is not None and self.stale_after <= self.heartbeat_interval:
            raise ConfigurationError(
                "RUNTRACK_STALE_AFTER must be longer than the heartbeat interval "
                f"({self.stale_after} <= {self.heartbeat_interval})"
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
