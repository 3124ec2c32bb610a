"""``runtrack jobs``, ``providers``, ``pause`` and ``resume`` on every database."""

from __future__ import annotations

from datetime import UTC, timedelta, timezone

from cli_helpers import Invoke, Seeded

from runtrack import Ledger


def test_jobs_json_shows_each_jobs_state(cli: Invoke, seeded: Seeded) -> None:
    out = cli("jobs", "--json")
    assert out.code == 0, out.stderr
    jobs = {job["key"]: job for job in out.json()["data"]}
    assert set(jobs) == {"shop:prices", "board:search", "crm:contacts"}
    board = jobs["board:search"]
    assert board["provider"] == "jobboard"
    assert board["last_run"]["status"] == "failed"
    assert board["consecutive_failures"] == 1
    assert board["last_success"] is None
    assert board["paused"] is None
    assert board["active_runs"] == 0
    assert jobs["crm:contacts"]["active_runs"] == 1  # the pending run
    assert jobs["shop:prices"]["last_success"]["run_id"] == seeded.success


def test_jobs_of_one_provider_and_the_table(cli: Invoke, seeded: Seeded) -> None:
    only = cli("jobs", "--provider", "crm", "--json").json()["data"]
    assert [job["key"] for job in only] == ["crm:contacts"]
    table = cli("jobs")
    assert table.code == 0 and "board:search" in table.stdout and "failed" in table.stdout


def test_providers_with_job_counts_and_pauses(cli: Invoke, seeded: Seeded) -> None:
    before = cli("providers", "--json").json()["data"]
    assert before == [
        {"name": "crm", "jobs": 1, "paused": None},
        {"name": "jobboard", "jobs": 1, "paused": None},
        {"name": "pricewatch", "jobs": 1, "paused": None},
    ]
    assert cli("pause", "jobboard", "--for", "15m", "--reason", "HTTP 429").code == 0
    after = {p["name"]: p for p in cli("providers", "--json").json()["data"]}
    assert after["jobboard"]["paused"]["reason"] == "HTTP 429"
    assert "HTTP 429" in cli("providers").stdout


def test_pause_for_a_duration(cli: Invoke, ledger: Ledger) -> None:
    out = cli(
        "pause", "geocoder", "--for", "15m", "--reason", "quota", "--by", "ops", "--json", "--new"
    )
    assert out.code == 0, out.stderr
    data = out.json()
    assert (data["provider"], data["reason"], data["paused_by"]) == ("geocoder", "quota", "ops")
    pause = ledger.paused("geocoder")
    assert pause is not None
    left = pause.until - ledger.now()
    assert timedelta(minutes=14) < left <= timedelta(minutes=15, seconds=5)


def test_pause_until_a_time(cli: Invoke, ledger: Ledger) -> None:
    until = (ledger.now() + timedelta(hours=2)).replace(microsecond=0)
    naive_utc = until.astimezone(UTC).replace(tzinfo=None).isoformat()
    out = cli("pause", "geocoder", "--until", naive_utc, "--reason", "window", "--new")
    assert out.code == 0, out.stderr
    pause = ledger.paused("geocoder")
    assert pause is not None and pause.until == until


def test_pause_needs_exactly_one_end(cli: Invoke, ledger: Ledger) -> None:
    neither = cli("pause", "geocoder", "--reason", "x")
    both = cli("pause", "geocoder", "--reason", "x", "--for", "1m", "--until", "2999-01-01")
    for out in (neither, both):
        assert out.code == 2
        assert len(out.stderr.strip().splitlines()) == 1
        assert "--for" in out.stderr and "--until" in out.stderr
    past = cli("pause", "geocoder", "--reason", "x", "--until", "2000-01-01T00:00:00Z", "--new")
    assert past.code == 2 and "not in the future" in past.stderr
    assert ledger.pauses() == []


def test_resume(cli: Invoke, ledger: Ledger) -> None:
    ledger.pause("geocoder", for_="1h", reason="quota")
    out = cli("resume", "geocoder", "--json")
    assert out.code == 0
    assert out.json() == {"provider": "geocoder", "resumed": True}
    assert ledger.paused("geocoder") is None
    again = cli("resume", "geocoder")
    assert again.code == 0 and "was not paused" in again.stderr


def test_pause_until_accepts_offsets(cli: Invoke, ledger: Ledger) -> None:
    until = ledger.now() + timedelta(hours=3)
    local = until.astimezone(timezone(timedelta(hours=5, minutes=30))).replace(microsecond=0)
    out = cli("pause", "crm", "--until", local.isoformat(), "--reason", "window", "--new")
    assert out.code == 0, out.stderr
    pause = ledger.paused("crm")
    assert pause is not None and pause.until == local.astimezone(UTC)


def test_jobs_show_the_ticks_the_runner_skipped(
    cli: Invoke, ledger: Ledger, seeded: Seeded
) -> None:
    """Issue 21: the count, the last skip's time and its reason."""
    reason = "busy: 1 of 1 slot held by run 3"
    ledger.skip_tick("board:search", reason="provider jobboard at its limit of 1 running run")
    ledger.skip_tick("board:search", reason=reason)
    job = ledger.get_job("board:search")
    assert job is not None and job.last_skipped_at is not None
    jobs = {j["key"]: j for j in cli("jobs", "--json").json()["data"]}
    assert jobs["board:search"]["ticks_skipped"] == 2
    assert jobs["board:search"]["last_skip_reason"] == reason
    assert jobs["board:search"]["last_skipped_at"] is not None
    assert (jobs["shop:prices"]["ticks_skipped"], jobs["shop:prices"]["last_skipped_at"]) == (
        0,
        None,
    )
    table = cli("jobs", "--wide")
    assert table.code == 0, table.stderr
    when = job.last_skipped_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    assert f"2 ticks skipped, last at {when} UTC: {reason}" in table.stdout
