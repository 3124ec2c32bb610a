"""The plain ``runtrack exec`` command lines the console script runs without
Typer, and the ones it leaves to the full CLI (pure parsing, no process)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtrack.cli.launch import check_duration, parse_exec, parse_params


def test_a_plain_command_line_is_read() -> None:
    found = parse_exec(
        ["--database-url", "sqlite:///x.db", "exec", "board:search", "--provider", "board",
         "--param", "q=python", "--param=city=madrid", "--timeout=10m", "--concurrency", "2",
         "--", "sh", "-c", "echo --provider"]
    )  # fmt: skip
    assert found is not None
    assert (found.database_url, found.job) == ("sqlite:///x.db", "board:search")
    assert found.options == {
        "--provider": ["board"],
        "--param": ["q=python", "city=madrid"],
        "--timeout": ["10m"],
        "--concurrency": ["2"],
        "--on-partial": [],
    }
    assert found.argv == ["sh", "-c", "echo --provider"]


@pytest.mark.parametrize(
    "args",
    [
        ["runs"],
        ["exec", "--help"],
        ["exec", "job", "--help", "--", "true"],
        ["--debug", "exec", "job", "--", "true"],
        ["--log-format", "json", "exec", "job", "--", "true"],
        ["exec", "job", "true"],  # no --: the full CLI reads it
        ["exec", "job", "--"],  # no command
        ["exec", "--", "true"],  # no job
        ["exec", "job", "other", "--", "true"],
        ["exec", "job", "--timeout"],
        ["--database-url"],
        [],
    ],
)
def test_anything_else_goes_to_the_full_cli(args: list[str]) -> None:
    assert parse_exec(args) is None


def test_durations_need_a_unit() -> None:
    assert check_duration("10m") == timedelta(minutes=10)
    assert check_duration(" 1.5H ") == timedelta(hours=1.5)
    for bad in ("10", ""):
        with pytest.raises(ValueError, match="has no unit"):
            check_duration(bad)
    for bad in ("m", "tenm", "-5m", "0s"):
        with pytest.raises(ValueError, match="is not a duration"):
            check_duration(bad)


def test_params() -> None:
    assert parse_params(["q=python", "empty=", "eq=a=b"]) == {
        "q": "python",
        "empty": "",
        "eq": "a=b",
    }
    for bad in (["novalue"], ["=x"]):
        with pytest.raises(ValueError, match="is not KEY=VALUE"):
            parse_params(bad)
    with pytest.raises(ValueError, match="'a' is given twice"):
        parse_params(["a=1", "a=2"])
