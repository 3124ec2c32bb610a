"""Notification settings from ``RUNTRACK_NOTIFY*`` (validated once)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from runtrack import inputs
from runtrack.errors import InvalidInput

__all__ = ["NotifySettings", "redact"]


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """``sinks``: the URLs notified of each transition; ``secret``: the HMAC
    key of the webhook's ``X-Runtrack-Signature``; ``public_url``: the
    dashboard's address for links; ``give_up_after``: how long a delivery is
    retried; ``timeout``: seconds per attempt."""

    sinks: tuple[str, ...] = ()
    secret: str | None = None
    public_url: str | None = None
    give_up_after: timedelta = timedelta(hours=1)
    timeout: float = 10.0
    #: How long one attempt owns a delivery: a sender killed while sending is
    #: replaced after this (``RUNTRACK_NOTIFY_CLAIM``; above ``timeout``).
    claim: timedelta = timedelta(seconds=60)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        e = os.environ if env is None else env
        sinks = tuple(s for s in re.split(r"[\s,]+", e.get("RUNTRACK_NOTIFY", "")) if s)
        for sink in sinks:
            if "://" not in sink:
                raise InvalidInput("RUNTRACK_NOTIFY", f"{redact(sink)!r} is not a URL", "URLs")
        give_up = e.get("RUNTRACK_NOTIFY_GIVE_UP_AFTER")
        claim = e.get("RUNTRACK_NOTIFY_CLAIM")
        return cls(
            sinks=sinks,
            secret=e.get("RUNTRACK_NOTIFY_SECRET") or None,
            public_url=(e.get("RUNTRACK_PUBLIC_URL") or "").rstrip("/") or None,
            give_up_after=inputs.duration("RUNTRACK_NOTIFY_GIVE_UP_AFTER", give_up)
            if give_up
            else timedelta(hours=1),
            claim=inputs.duration("RUNTRACK_NOTIFY_CLAIM", claim)
            if claim
            else timedelta(seconds=60),
        )


def redact(sink: str) -> str:
    """A sink URL as shown to operators: scheme and host, no tokens."""
    parts = urlsplit(sink)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + ("/..." if parts.path not in ("", "/") else "")
