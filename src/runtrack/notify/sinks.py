"""Sending one notification: runtrack's JSON webhook for ``http(s)://``,
Apprise for every other scheme. Each returns ``None`` on success or the
error's text (a delivery records it)."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any

from runtrack.failures import capped, message

__all__ = ["SIGNATURE_HEADER", "send", "sign"]

SIGNATURE_HEADER = "X-Runtrack-Signature"
IDEMPOTENCY_HEADER = "X-Runtrack-Idempotency-Key"


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the raw body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(sink: str, payload: dict[str, Any], secret: str | None, timeout: float) -> str | None:
    try:
        if sink.startswith(("http://", "https://")):
            return _webhook(sink, payload, secret, timeout)
        return _apprise(sink, payload)
    except Exception as exc:  # a sink's failure is recorded, never raised into a check
        return capped(f"{type(exc).__name__}: {message(exc)}", 2000)


def _webhook(url: str, payload: dict[str, Any], secret: str | None, timeout: float) -> str | None:
    body = json.dumps(payload, sort_keys=True, default=str).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "runtrack",
        IDEMPOTENCY_HEADER: str(payload["idempotency_key"]),
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from the webhook"
    return None if 200 <= status < 300 else f"HTTP {status} from the webhook"


def _apprise(url: str, payload: dict[str, Any]) -> str | None:
    try:
        import apprise  # the notify extra
    except ImportError:
        return "apprise is not installed: pip install 'runtrack[notify]'"
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return "Apprise does not accept this URL"
    ok = notifier.notify(title=str(payload["title"]), body=str(payload["text"]))
    return None if ok else "Apprise could not deliver (see its log)"
