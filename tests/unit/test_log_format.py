"""The JSON log line and the log format choice (pure, no run)."""

from __future__ import annotations

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
