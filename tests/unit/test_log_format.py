"""The JSON log line and the log format choice (pure, no run)."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from runtrack.logs import JsonFormatter, configure_logging


def test_json_formatter_keeps_extras_and_the_exception() -> None:
    record = logging.LogRecord("runtrack.x", logging.ERROR, __file__, 1, "failed %s", ("x",), None)
    try:
        raise KeyError("missing")
    except KeyError:
        record.exc_info = sys.exc_info()
    record.__dict__.update(run_id=7, job="j", provider=None, status="failed", attempt=2)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "failed x"
    assert (line["run_id"], line["job"], line["provider"], line["status"]) == (
        7,
        "j",
        None,
        "failed",
    )
    assert line["attempt"] == 2
    assert "KeyError: 'missing'" in line["exception"]


def test_configure_logging_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="allowed: json, rich"):
        configure_logging("xml", logging.INFO)  # type: ignore[arg-type]


def test_rich_lines_to_a_file_are_one_plain_line_each_with_its_time() -> None:
    stream = io.StringIO()  # not a terminal: a service's log
    undo = configure_logging("rich", logging.INFO, stream=stream)
    try:
        log = logging.getLogger("runtrack.x")
        long = "x" * 200
        log.info("run %s of %s ended %s %s", 1, "j", "success", long, extra={"run_id": 1})
        log.info("run 2 of j ended success\x1b[2J")  # the same second: its time again
        log.warning("first\nsecond")
    finally:
        undo()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4, lines
    times = [line[: line.index("]") + 1] for line in lines[:3]]
    assert all(t.startswith("[") and len(t) > 10 for t in times)  # each line has its time
    assert lines[0].endswith(f"INFO     run 1 of j ended success {long} [run_id=1]")
    assert lines[1].endswith("INFO     run 2 of j ended success\\x1b[2J")  # shown, not sent
    assert lines[2].endswith("WARNING  first")
    assert lines[3] == " " * (len(times[2]) + 10) + "second"  # under the message
