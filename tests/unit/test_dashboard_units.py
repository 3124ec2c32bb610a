"""Pure pieces of the dashboard: formatting, chart geometry, lateness, the
signed session cookie. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.responses import Response
from starlette.requests import Request

from runtrack.config import Settings
from runtrack.health import HealthState
from runtrack.models import JobRecord, JobState, RunBrief, RunOutcome, RunStatus
from runtrack.web.pages import charts, formatting, session
from runtrack.web.pages.overview import cadence, job_row
from runtrack.web.pages.signin import safe_next

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOKEN = "unit-token-0123456789abcdef"


def brief(run_id: int, status: str, created: datetime, seconds: float | None = 60) -> RunBrief:
    finished = created + timedelta(seconds=seconds) if seconds is not None else None
    return RunBrief(run_id, "job", RunStatus(status), created, created, finished)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (0.25, "250 ms"),
        (4.5, "4.5 s"),
        (42, "42 s"),
        (60, "1 min"),
        (65, "1 min 05 s"),
        (3600, "1 h"),
        (3600 + 180, "1 h 03 min"),
        (86400 * 3 + 3600 * 4, "3 d 4 h"),
        (-5, "0 ms"),
    ],
)
def test_span(value: float | None, text: str) -> None:
    assert formatting.span(value) == text


def test_ago_and_clock() -> None:
    assert formatting.ago(NOW - timedelta(minutes=5), NOW) == "5 min ago"
    assert formatting.ago(NOW + timedelta(seconds=30), NOW) == "in 30 s"
    assert formatting.ago(None, NOW) == "never"
    assert formatting.clock(NOW) == "2026-03-01 12:00:00 UTC"
    assert formatting.number(1234567) == "1,234,567"
    assert formatting.number(2.5) == "2.5"
    assert formatting.quoted("a/b?c#d <e>") == "a%2Fb%3Fc%23d%20%3Ce%3E"


@pytest.mark.parametrize(("extent", "step"), [(7, 2), (100, 20), (0.3, 0.1), (4200, 1000)])
def test_nice_step(extent: float, step: float) -> None:
    assert charts.nice_step(extent) == pytest.approx(step)


def test_duration_chart_fits_its_frame_and_picks_a_unit() -> None:
    runs = [
        brief(i, "failed" if i == 3 else "success", NOW - timedelta(hours=10 - i), 30 + 60 * i)
        for i in range(1, 9)
    ]
    runs.append(brief(9, "running", NOW, None))  # unfinished: not drawn
    chart = charts.duration_chart(runs)
    assert chart is not None
    frame = chart.frame
    assert frame.y_label == "Duration (min)"
    assert len(chart.dots) == 8
    for dot in chart.dots:
        assert frame.left <= dot.x <= frame.right and frame.top <= dot.y <= frame.bottom
    xs = [dot.x for dot in chart.dots]
    assert xs == sorted(xs)  # oldest on the left
    assert [t.pos for t in frame.y_ticks] == sorted((t.pos for t in frame.y_ticks), reverse=True)
    assert frame.y_ticks[0].label == "0" and len(frame.x_ticks) >= 2
    assert dict(chart.legend) == {"success": 7, "failed": 1}
    assert charts.duration_chart([brief(1, "running", NOW, None)]) is None


def test_outcome_chart_counts_every_run_once() -> None:
    runs = [
        brief(i, ("success", "failed", "partial")[i % 3], NOW - timedelta(hours=i * 5))
        for i in range(40)
    ]
    chart = charts.outcome_chart(runs, NOW)
    assert chart is not None
    assert sum(s.count for bar in chart.bars for s in bar.segments) == 40
    frame = chart.frame
    for bar in chart.bars:
        assert frame.left <= bar.x and bar.x + bar.width <= frame.right + 0.5
        assert all(
            frame.top - 0.5 <= s.y and s.y + s.height <= frame.bottom + 0.5 for s in bar.segments
        )
    # A run from a machine whose clock is ahead still lands in the last bar.
    ahead = charts.outcome_chart([brief(1, "success", NOW + timedelta(hours=2))], NOW)
    assert ahead is not None and ahead.bars[0].segments[0].count == 1
    assert charts.outcome_chart([], NOW) is None


def job(**changes: object) -> JobState:
    fields: dict[str, object] = dict(
        key="job",
        provider="p",
        created_at=NOW - timedelta(days=9),
        last_run_id=9,
        last_status=RunStatus.SUCCESS,
        last_finished_at=NOW,
        last_success_at=NOW - timedelta(hours=1),
        last_success_run_id=9,
        consecutive_failures=0,
        watermark=None,
        checkpoint=None,
    )
    fields.update(changes)
    return JobState(JobRecord(**fields), 0, None)  # type: ignore[arg-type]


def outcome(run_id: int, status: str, finished: datetime) -> RunOutcome:
    return RunOutcome(run_id, RunStatus(status), finished, timedelta(minutes=1))


def test_a_job_is_late_when_its_health_says_so_never_by_its_rhythm_alone() -> None:
    hourly = [outcome(10 - i, "success", NOW - timedelta(hours=i)) for i in range(6)]
    assert cadence(hourly) == timedelta(hours=1)
    assert cadence(hourly[:2]) is None
    stale = job(last_success_at=NOW - timedelta(hours=2))
    # Two usual gaps without a success, but no expectation: not late (a
    # trigger or a backfill can shrink the rhythm to seconds).
    assert not job_row(stale, hourly, [], NOW).late
    row = job_row(stale, hourly, [], NOW, success_within=timedelta(hours=1))
    assert row.late and row.health is not None and row.health.state is HealthState.LATE
    assert row.late_reason == row.health.reason and "no success within 1 h:" in row.late_reason
    assert not job_row(stale, hourly, [], NOW, success_within=timedelta(hours=3)).late
    assert not job_row(job(last_status=None, last_success_at=None), [], [], NOW).late
    assert [r.id for r in job_row(job(), hourly, [], NOW).strip] == sorted(r.id for r in hourly)
    labels = [label for _, _, label in job_row(job(), hourly, [], NOW).cells]
    assert labels[-1] == "run 10: success, finished just now, took 1 min"


def request_with(cookie: str | None = None, *, scheme: str = "http", **headers: str) -> Request:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"host", b"dash.example"))
    if cookie is not None:
        raw.append((b"cookie", f"{session.COOKIE}={cookie}".encode()))
    scope = {"type": "http", "method": "POST", "headers": raw, "scheme": scheme, "path": "/"}
    return Request(scope)


def issued(role: session.Role, token: str, now: datetime, settings: Settings) -> str:
    response = Response()
    session.set_cookie(response, request_with(), settings, (role, token), now)
    header = response.headers["set-cookie"]
    assert "httponly" in header.lower() and "samesite=strict" in header.lower()
    assert token not in header
    return header.split(";")[0].split("=", 1)[1]


def role(value: str, settings: Settings, now: datetime = NOW) -> str | None:
    found = session.parse(value, settings, now)
    return found.role if found else None


def test_session_cookie_is_signed_and_expires() -> None:
    settings = Settings(api_token=TOKEN).validated()
    value = issued("write", TOKEN, NOW, settings)
    assert role(value, settings) == "write"
    assert role(value, settings, NOW + timedelta(hours=13)) is None
    rotated = Settings(api_token="another-token-0123456789").validated()
    assert role(value, rotated) is None
    forged = value.replace(".write.", ".read.")
    assert role(forged, settings) is None
    tampered = value[:-1] + ("0" if value[-1] != "0" else "1")
    assert role(tampered, settings) is None
    assert role("garbage", settings) is None
    assert role(value.replace(".", ".9" * 40 + ".", 1), settings) is None
    assert session.token_role(TOKEN, settings) == "write"
    assert session.token_role(TOKEN[:-1], settings) is None
    other = issued("write", TOKEN, NOW, settings)
    assert session.parse(other, settings, NOW).nonce != session.parse(value, settings, NOW).nonce  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("secure_cookies", "scheme", "name", "secure"),
    [
        (False, "http", "runtrack_session", False),
        (False, "https", "__Host-runtrack_session", True),
        (True, "http", "__Host-runtrack_session", True),
    ],
)
def test_cookie_is_secure_and_host_prefixed_over_https_or_when_forced(
    secure_cookies: bool, scheme: str, name: str, secure: bool
) -> None:
    settings = Settings(api_token=TOKEN, secure_cookies=secure_cookies).validated()
    response = Response()
    session.set_cookie(response, request_with(scheme=scheme), settings, ("write", TOKEN), NOW)
    header = response.headers["set-cookie"]
    assert header.startswith(f"{name}=")
    assert ("; secure" in header.lower()) is secure
    assert "path=/" in header.lower() and "domain" not in header.lower()


def test_same_origin_checks() -> None:
    assert session.same_origin(request_with())
    assert session.same_origin(request_with(origin="http://dash.example"))
    assert not session.same_origin(request_with(origin="http://evil.example"))
    assert not session.same_origin(request_with(origin="null"))
    assert not session.same_origin(request_with(sec_fetch_site="cross-site"))
    assert session.same_origin(request_with(sec_fetch_site="same-origin"))


@pytest.mark.parametrize(
    ("target", "safe"),
    [
        ("/runs/4", "/runs/4"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example", "/"),
        ("", "/"),
        ("/\t/evil.example/x", "/"),  # browsers drop the tab: //evil.example/x
        ("/%09/evil.example/x", "/%09/evil.example/x"),  # still encoded: a local path
        ("/\n/evil.example", "/"),
        ("/ /evil.example", "/"),
        ("/runs\\x", "/"),
        ("/\x1b[2J", "/"),
        ("/\x85/evil.example", "/"),
        ("/runs?job=a b", "/"),
        ("/runs?job=a%20b", "/runs?job=a%20b"),
        ("runs/4", "/"),
        ("/" + "x" * 3000, "/"),
    ],
)
def test_safe_next(target: str, safe: str) -> None:
    assert safe_next(target) == safe


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=1), "1h"),
        (timedelta(hours=25), "25h"),
        (timedelta(days=2), "2d"),
        (timedelta(seconds=90), "90s"),
        (timedelta(seconds=0.5), "0.5s"),
    ],
)
def test_a_schedule_interval_reads_as_it_is_written(value: timedelta, text: str) -> None:
    from runtrack.readable import interval
    from runtrack.runner.schedule import Every

    assert interval(value) == text
    assert Every(value).describe() == f"every {text}"
