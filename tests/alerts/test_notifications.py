"""Notifications (issue 18): one per transition, to a real local webhook
(signed JSON), to a real SMTP server through Apprise, and to a sink that
refuses: retried with backoff, then recorded failed, never on a run's path."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta

import pytest
from receivers import Mailbox, Webhook, free_port

from runtrack import Ledger, ManualClock, Runner
from runtrack.alerts import DeliveryState

S = timedelta(seconds=1)


def _ledger(db_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, **env: str) -> Ledger:
    monkeypatch.setenv("RUNTRACK_PUBLIC_URL", "https://runtrack.example/")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Ledger(db_url, clock=clock)


def test_the_webhook_gets_one_signed_notification_per_transition(
    db_url: str, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    secret = "s3cret"
    env = {"RUNTRACK_NOTIFY": webhook.url, "RUNTRACK_NOTIFY_SECRET": secret}
    with _ledger(db_url, clock, monkeypatch, **env) as ledger:
        ledger.expect("shop:offers", success_within="2s")
        clock.advance(3 * S)
        ledger.check()
        ledger.check()  # nothing new: nothing sent
        assert ledger.deliver() == 1
        assert ledger.deliver() == 0
        with pytest.raises(ValueError, match="feed down"), ledger.run("shop:offers"):
            raise ValueError("feed down")
        with ledger.run("shop:offers") as run:
            run.count("offers", 10)
        ledger.check()
        assert ledger.deliver() == 1

    opened, resolved = webhook.events("opened"), webhook.events("resolved")
    assert len(opened) == 1 and len(resolved) == 1 and len(webhook.received) == 2
    body = opened[0]
    assert body["version"] == 1
    assert body["incident"]["kind"] == "late" and body["incident"]["job"] == "shop:offers"
    assert body["job"]["key"] == "shop:offers" and body["job"]["last_success_at"] is None
    assert body["link"] == "https://runtrack.example/jobs/shop:offers"
    assert body["idempotency_key"] != resolved[0]["idempotency_key"]
    assert resolved[0]["run"]["status"] == "success"
    assert resolved[0]["job"]["failure_streak"] == 0
    for request in webhook.received:
        expected = "sha256=" + hmac.new(secret.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["X-Runtrack-Signature"] == expected
        assert request.headers["X-Runtrack-Idempotency-Key"] == request.json["idempotency_key"]


def test_an_email_reaches_a_real_smtp_server_through_apprise(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox = Mailbox()
    mailbox.controller.start()
    try:
        clock = ManualClock()
        sink = f"mailto://127.0.0.1:{mailbox.port}?from=runtrack@example.com&to=ops@example.com"
        with _ledger(db_url, clock, monkeypatch, RUNTRACK_NOTIFY=sink) as ledger:
            ledger.expect("shop:mail", max_failures=1)
            with pytest.raises(ValueError, match="no offers"), ledger.run("shop:mail"):
                raise ValueError("no offers")
            ledger.check()
            assert ledger.deliver() == 1, ledger.alerting.alerts.list_deliveries()[0].last_error
    finally:
        mailbox.controller.stop()
    (message,) = mailbox.messages
    assert message.rcpt_tos == ["ops@example.com"]
    text = message.content.decode()
    assert "failing" in text and "shop:mail" in text


def test_a_refusing_sink_is_retried_then_recorded_failed_and_never_slows_a_run(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    env = {
        "RUNTRACK_NOTIFY": f"http://127.0.0.1:{free_port()}/hook",
        "RUNTRACK_NOTIFY_GIVE_UP_AFTER": "10s",
    }
    with _ledger(db_url, clock, monkeypatch, **env) as ledger:
        ledger.expect("shop:down", success_within="1s")
        clock.advance(2 * S)
        ledger.check()
        for _ in range(6):  # backoff 1, 2, 4, 8 s: the fourth retry is past give-up
            assert ledger.deliver() == 0
            clock.advance(8 * S)
        (delivery,) = ledger.alerting.alerts.list_deliveries()
        assert delivery.state is DeliveryState.FAILED
        assert 2 <= delivery.attempts <= 5
        assert delivery.last_error is not None and "refused" in delivery.last_error.lower()

    # A runner with that dead sink: the run's duration is the job's own.
    with _ledger(db_url, ManualClock(), monkeypatch, **env) as ledger:
        runner = Runner(ledger, check_every="1s")
        runner.job("board:fast", provider="board", every="1h")(lambda run: None)
        started = time.monotonic()
        runner.run_once()
        assert time.monotonic() - started < 2.0
        (run,) = ledger.list_runs(job="board:fast").items
        assert run.duration is not None and run.duration < 0.5 * S


def test_reminders_repeat_an_open_incident_every_remind_every(
    db_url: str, webhook: Webhook, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    with _ledger(db_url, clock, monkeypatch, RUNTRACK_NOTIFY=webhook.url) as ledger:
        ledger.expect("shop:quiet", success_within="1m", remind_every="1h")
        clock.advance(2 * 60 * S)
        ledger.check()
        for _ in range(3):
            clock.advance(30 * 60 * S)
            assert ledger.check().reminded == 0
            clock.advance(30 * 60 * S)
            assert ledger.check().reminded == 1
        ledger.deliver()
    assert [e["event"] for e in webhook.events()] == ["opened"] + ["reminder"] * 3
    assert len({e["idempotency_key"] for e in webhook.events()}) == 4
