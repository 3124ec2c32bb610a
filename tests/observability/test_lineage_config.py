"""OpenLineage from settings: ``Ledger.from_settings`` attaches the listener
when ``RUNTRACK_OPENLINEAGE_*`` asks for it, refuses bad values before
touching the database, and runtrack works without the extra installed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from lineage_support import read_events

from runtrack import ConfigurationError, Ledger
from runtrack.config import Settings
from runtrack.lineage import listeners_from_settings
from runtrack.lineage.listener import OpenLineageListener, transport_config


def test_from_settings_emits_to_the_configured_file(db_url: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    env = {
        "RUNTRACK_DATABASE_URL": db_url,
        "RUNTRACK_HEARTBEAT_INTERVAL": "0.05",
        "RUNTRACK_OPENLINEAGE_FILE": str(events),
        "RUNTRACK_OPENLINEAGE_NAMESPACE": "ingest",
    }
    with Ledger.from_settings(Settings.from_env(env)) as ledger:
        with ledger.run("nightly:export"):
            pass
        with ledger.run("acme:search", provider="acme"):
            pass
    # closing the ledger flushed the listener: nothing is left in flight
    assert [
        (e["job"]["namespace"], e["job"]["name"], e["eventType"]) for e in read_events(events)
    ] == [
        ("ingest", "nightly:export", "START"),
        ("ingest", "nightly:export", "COMPLETE"),
        ("acme", "acme:search", "START"),
        ("acme", "acme:search", "COMPLETE"),
    ]


def test_without_lineage_settings_there_is_no_listener(db_url: str) -> None:
    with Ledger.from_settings(Settings(database_url=db_url, heartbeat_interval=0.05)) as ledger:
        assert not ledger.events
    assert listeners_from_settings(Settings()) == []


def test_several_transports_are_all_used(tmp_path: Path) -> None:
    settings = Settings(
        openlineage_url="http://127.0.0.1:9", openlineage_file=str(tmp_path / "x.jsonl")
    )
    config = transport_config(settings)
    assert config["type"] == "composite"
    assert [t["type"] for t in config["transports"]] == ["http", "file"]
    assert config["continue_on_failure"] is True
    assert config["transports"][0]["timeout"] > 0  # a hung endpoint cannot hold a send forever
    OpenLineageListener.from_settings(settings).close()


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("openlineage_url", "marquez:5000", "RUNTRACK_OPENLINEAGE_URL"),
        ("openlineage_url", "ftp://marquez", "RUNTRACK_OPENLINEAGE_URL"),
        ("openlineage_file", "/no/such/folder/events.jsonl", "RUNTRACK_OPENLINEAGE_FILE"),
    ],
)
def test_bad_settings_are_refused_before_the_database_is_opened(
    setting: str, value: str, named: str, tmp_path: Path
) -> None:
    missing_db = tmp_path / "never-created.db"
    settings = Settings(database_url=f"sqlite:///{missing_db}", **{setting: value})
    with pytest.raises(ConfigurationError, match=named):
        Ledger.from_settings(settings)
    assert not missing_db.exists()


def test_runtrack_works_without_the_extra_and_says_what_to_install(db_url: str) -> None:
    """openlineage-python hidden from a fresh interpreter, as if not installed."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["openlineage"] = None  # any import of it now fails
        from runtrack import ConfigurationError, Ledger
        from runtrack.config import Settings

        settings = Settings(database_url={db_url!r}, heartbeat_interval=0.05)
        with Ledger.from_settings(settings) as ledger:
            with ledger.run("plain:job"):
                pass
            print("run", ledger.list_runs(job="plain:job").items[0].status)
        try:
            Ledger.from_settings(settings.with_(openlineage_console=True))
        except ConfigurationError as exc:
            print("refused:", exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "run success"
    assert lines[1].startswith("refused: RUNTRACK_OPENLINEAGE_* is set but openlineage-python")
    assert "pip install 'runtrack[openlineage]'" in lines[1]


def test_a_script_that_never_closes_its_ledger_still_sends_its_events(
    db_url: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    script = textwrap.dedent(
        f"""
        from runtrack import Ledger
        from runtrack.config import Settings

        settings = Settings(
            database_url={db_url!r}, heartbeat_interval=0.05, openlineage_file={str(events)!r}
        )
        ledger = Ledger.from_settings(settings)
        with ledger.run("cron:script", provider="acme"):
            pass
        # exits without ledger.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert [e["eventType"] for e in read_events(events)] == ["START", "COMPLETE"]
