"""Stored text never drives the operator's terminal: every rendering shows
control characters (but newline and tab) as escapes instead of sending them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cli_helpers import Invoke, invoke_in_process

from runtrack import Ledger
from runtrack.cli.logs import LogFormat, setup_logging
from runtrack.terminal import visible

CLEAR = "\x1b[2J\x1b[H"  # clears the screen
TITLE = "\x1b]0;pwned\x07"  # sets the window title
C1 = "\x9b31m"  # a one-byte CSI on some terminals
BIDI = "\u202e"  # right-to-left override
HOSTILE = f"{CLEAR}wiped{TITLE}{C1}{BIDI}\x08\x7f\r"
SHOWN = "\\x1b[2J\\x1b[Hwiped\\x1b]0;pwned\\x07\\x9b31m\\u202e\\x08\\x7f\\x0d"
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\x08", "\x7f", "\r")


def assert_harmless(text: str) -> None:
    for char in RAW:
        assert char not in text, (char, text[:300])


def test_visible_keeps_newlines_and_tabs() -> None:
    assert visible(HOSTILE) == SHOWN
    assert visible("line one\n\tline two") == "line one\n\tline two"
    assert visible("café ✓") == "café ✓"


@pytest.fixture
def hostile(ledger: Ledger) -> int:
    with (
        pytest.raises(RuntimeError, match="wiped"),
        ledger.run("evil:job", provider="evilp", params={"q": HOSTILE}) as run,
    ):
        run.count("pages", 2)
        run.item("x", "error", group="g", source="s", error=HOSTILE)  # names refuse controls
        run.save_checkpoint({"cursor": HOSTILE})
        raise RuntimeError(HOSTILE)
    ledger.pause("evilp", for_="1h", reason=HOSTILE)
    pending = ledger.create_run("evil:job", provider="evilp")
    ledger.cancel(pending.id, reason=HOSTILE)
    return run.id


def test_every_rendering_of_stored_text_shows_escapes(cli: Invoke, hostile: int) -> None:
    for args in (
        ("providers",),
        ("show", str(hostile)),
        ("show", str(hostile + 1)),  # the cancelled run: its reason
        ("runs",),
        ("jobs",),
    ):
        out = cli(*args, env={"COLUMNS": "400"})
        assert out.code == 0, out.stderr
        assert_harmless(out.stdout + out.stderr)
    assert "\\x1b[2J" in cli("providers", env={"COLUMNS": "400"}).stdout
    shown = cli("show", str(hostile), env={"COLUMNS": "400"}).stdout
    assert "RuntimeError: \\x1b[2J" in shown  # the error panel
    assert shown.count("\\x1b[2J") >= 3  # error message, stack, params, checkpoint


def test_json_output_escapes_them_too(cli: Invoke, hostile: int) -> None:
    for args in (("providers", "--json"), ("show", str(hostile), "--json"), ("runs", "--json")):
        out = cli(*args)
        assert out.code == 0, out.stderr
        assert_harmless(out.stdout)
        json.loads(out.stdout)  # still JSON
    pause = cli("providers", "--json").json()["data"][0]["paused"]
    assert pause["reason"] == HOSTILE  # the same value, escaped in transit


def test_errors_and_tracebacks_show_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "hostile_runner.py").write_text(
        "class R:\n"
        "    def run_forever(self):\n"
        f"        raise ValueError({HOSTILE!r})\n"
        "runner = R()\n"
    )
    url = f"sqlite:///{tmp_path}/x.db"
    for debug in ((), ("--debug",)):
        out = invoke_in_process(url, *debug, "worker", "hostile_runner:runner")
        assert out.code == 1
        assert_harmless(out.stderr)
        assert "\\x1b[2J" in out.stderr


@pytest.mark.parametrize("fmt", [LogFormat.rich, LogFormat.json])
def test_log_lines_show_escapes(fmt: LogFormat, capsys: pytest.CaptureFixture[str]) -> None:
    undo = setup_logging(fmt, logging.INFO)
    try:
        log = logging.getLogger("uvicorn.access")  # request paths are the client's text
        log.info('127.0.0.1 - "GET /jobs/%s HTTP/1.1" 404', HOSTILE)
        try:
            raise RuntimeError(HOSTILE)
        except RuntimeError:
            logging.getLogger("runtrack.web").exception("request failed")
    finally:
        undo()
    err = capsys.readouterr().err
    assert_harmless(err)
    assert "wiped" in err
    assert ("\\x1b[2J" if fmt is LogFormat.rich else "\\u001b[2J") in err
