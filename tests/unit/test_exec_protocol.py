"""The ``::runtrack`` line protocol of ``runtrack exec``: parsing and the
stdout filter, as pure functions (no process, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runtrack.exec.child import Exit, Tail
from runtrack.exec.protocol import Malformed, Piece, Report, StdoutFilter, parse

T030, HALF = datetime(2030, 1, 1, 0, 30, tzinfo=UTC), timedelta(milliseconds=500)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"::runtrack count pages\n", Report("count", ("pages", 1))),
        (b"::runtrack count offers 25\n", Report("count", ("offers", 25))),
        (b"::runtrack count bytes 1.5\r\n", Report("count", ("bytes", 1.5))),
        (b"::runtrack count delta -2", Report("count", ("delta", -2))),
        (b"::runtrack set queue_depth 7\n", Report("set", ("queue_depth", 7))),
        (b"::runtrack item sku-1 success\n", Report("item", ("sku-1", "success", None, None))),
        (
            b"::runtrack item sku-1 not_found sku-1 ebay\n",
            Report("item", ("sku-1", "not_found", "sku-1", "ebay")),
        ),
        (b"::runtrack progress 3\n", Report("progress", (3, None))),
        (b"::runtrack progress 3 10\n", Report("progress", (3, 10))),
        (b"::runtrack error page 2: HTTP 502\n", Report("error", ("page 2: HTTP 502",))),
        (b"::runtrack note  started late \n", Report("note", ("started late",))),
        (
            b'::runtrack checkpoint {"v": 1, "page": "abc"}\n',
            Report("checkpoint", ({"v": 1, "page": "abc"},)),
        ),
        (b"::runtrack checkpoint null\n", Report("checkpoint", (None,))),
        ("::runtrack note café ☕\n".encode(), Report("note", ("café ☕",))),
        (
            b"::runtrack slice 2030-01-01T00:00:00Z 2030-01-01T01:30:00+01:00 HTTP 502\n",
            Report("slice", (datetime(2030, 1, 1, tzinfo=UTC), T030, "HTTP 502")),
        ),
        (
            b"::runtrack slice 2030-01-01T00:00:00 2030-01-01T00:30:00.5Z\n",
            Report("slice", (datetime(2030, 1, 1, tzinfo=UTC), T030 + HALF, None)),
        ),
    ],
)
def test_each_command_parses(line: bytes, expected: Report) -> None:
    assert parse(line) == expected


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"::runtrack\n", "no command"),
        (b"::runtrack cnt pages\n", "unknown command 'cnt'"),
        (b"::runtrack count\n", "takes 1 to 2 word(s), got 0"),
        (b"::runtrack count a b c\n", "takes 1 to 2 word(s), got 3"),
        (b"::runtrack count pages many\n", "is not a number"),
        (b"::runtrack count pages nan\n", "not a finite number"),
        (b"::runtrack count pages inf\n", "not a finite number"),
        (b"::runtrack set pages\n", "takes 2 word(s), got 1"),
        (b"::runtrack item sku-1\n", "takes 2 to 4 word(s)"),
        (b"::runtrack item sku-1 found\n", "item status"),
        (b"::runtrack item a success g s extra\n", "takes 2 to 4 word(s)"),
        (b"::runtrack progress -1\n", "done"),
        (b"::runtrack progress 1.5\n", "not a whole number"),
        (b"::runtrack progress 1 two\n", "not a whole number"),
        (b"::runtrack error\n", "the message is empty"),
        (b"::runtrack note   \n", "the note is empty"),
        (b"::runtrack checkpoint {bad\n", "not JSON"),
        (b"::runtrack checkpoint NaN\n", "checkpoint"),
        (b"::runtrack count \xff\xfe\n", "not UTF-8"),
        (b"::runtrack count " + b"x" * 300 + b"\n", "counter name"),
        (b"::runtrack slice 2030-01-01T00:00:00Z\n", "takes 2 times and a reason"),
        (b"::runtrack slice yesterday 2030-01-01T00:00:00Z\n", "is not an ISO 8601 time"),
        (b"::runtrack slice 2030-01-01T01:00Z 2030-01-01T01:00Z x\n", "is not after start"),
    ],
)
def test_malformed_lines_say_what_was_wrong(line: bytes, problem: str) -> None:
    with pytest.raises(Malformed) as caught:
        parse(line)
    assert problem in str(caught.value)


def test_a_malformed_line_names_the_usage() -> None:
    with pytest.raises(Malformed, match=r"usage: item KEY STATUS \[GROUP\] \[SOURCE\]"):
        parse(b"::runtrack item only-a-key\n")


def _run(split: StdoutFilter, *chunks: bytes) -> list[Piece]:
    pieces = [piece for chunk in chunks for piece in split.feed(chunk)]
    return pieces + split.close()


def test_ordinary_lines_pass_through_and_reports_are_taken_out() -> None:
    pieces = _run(
        StdoutFilter(), b"fetched page 1\n::runtrack count pages\nfetched page 2\n", b"done\n"
    )
    assert pieces == [
        Piece(b"fetched page 1\n"),
        Piece(b"::runtrack count pages\n", report=True),
        Piece(b"fetched page 2\n"),
        Piece(b"done\n"),
    ]


def test_a_line_that_cannot_be_a_report_is_released_before_its_newline() -> None:
    split = StdoutFilter()
    assert split.feed(b"Password: ") == [Piece(b"Password: ")]
    # ... and the rest of that line passes too, even if it looks like a report.
    assert split.feed(b"::runtrack count x\n") == [Piece(b"::runtrack count x\n")]


def test_a_report_split_across_reads_is_held_until_its_end() -> None:
    split = StdoutFilter()
    assert split.feed(b"::run") == []
    assert split.feed(b"track count pa") == []
    assert split.feed(b"ges 2\nnext") == [
        Piece(b"::runtrack count pages 2\n", report=True),
        Piece(b"next"),
    ]


def test_a_prefix_that_turns_out_different_is_released() -> None:
    split = StdoutFilter()
    assert split.feed(b"::run") == []
    assert split.feed(b"ning\n") == [Piece(b"::running\n")]
    assert _run(StdoutFilter(), b"::runtracker count x\n") == [Piece(b"::runtracker count x\n")]


def test_a_last_report_without_a_newline_counts() -> None:
    assert _run(StdoutFilter(), b"::runtrack count pages") == [
        Piece(b"::runtrack count pages", report=True)
    ]
    assert _run(StdoutFilter(), b"::run") == [Piece(b"::run")]


def test_binary_data_passes_byte_for_byte() -> None:
    data = bytes(range(256)) * 64 + b"\n::runtrack\x00 \xff\n" + bytes(range(255, -1, -1))
    pieces = _run(StdoutFilter(), data[:1000], data[1000:5000], data[5000:])
    assert b"".join(p.data for p in pieces if not p.report) == data


def test_a_report_longer_than_the_limit_passes_through() -> None:
    line = b"::runtrack note " + b"x" * 100 + b"\n"
    pieces = _run(StdoutFilter(limit=50), line[:40], line[40:80], line[80:])
    assert not any(p.report for p in pieces)
    assert b"".join(p.data for p in pieces) == line
    assert _run(StdoutFilter(limit=50), line) == [Piece(line)]  # in one read, too


def test_crlf_lines() -> None:
    pieces = _run(StdoutFilter(), b"a\r\n::runtrack count x\r\nb\r\n")
    assert pieces[1] == Piece(b"::runtrack count x\r\n", report=True)
    assert parse(pieces[1].data) == Report("count", ("x", 1))


def test_the_stderr_tail_keeps_the_last_lines() -> None:
    tail = Tail(lines=3)
    tail.feed(b"one\ntwo\nthr")
    tail.feed(b"ee\nfour\nfive \xff\nsix")
    assert tail.lines() == ["four", "five \ufffd", "six"]
    empty = Tail(lines=3)
    assert empty.lines() == []


def test_exit_codes_are_reported_like_a_shell_does() -> None:
    assert Exit.of(0).shell_code == 0
    assert Exit.of(3).shell_code == 3
    killed = Exit.of(-9)
    assert (killed.code, killed.signal, killed.shell_code) == (None, 9, 137)
    assert killed.describe() == "the command was killed by SIGKILL (9)"
    assert Exit.of(3).describe() == "the command exited with code 3"
