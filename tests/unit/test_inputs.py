"""Input checks: clear errors naming the field and what is allowed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runtrack import InvalidInput, RunStatus
from runtrack.inputs import choice, duration, json_value, key, number
from runtrack.queries import decode_cursor, encode_cursor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("90d", 90 * 86400),
        ("2w", 14 * 86400),
        ("1.5h", 5400),
        (45, 45),
        (timedelta(minutes=2), 120),
    ],
)
def test_duration_forms(text: object, expected: float) -> None:
    assert duration("every", text).total_seconds() == expected


@pytest.mark.parametrize("bad", ["", "soon", "15x", "-5m", 0, -1, float("inf"), None, [], "1e400h"])
def test_duration_rejects(bad: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        duration("every", bad)
    assert caught.value.field == "every"
    assert caught.value.allowed


def test_key_rules() -> None:
    assert key("job", "infojobs:search:python-madrid") == "infojobs:search:python-madrid"
    for bad in ["", " ", "a\x00b", "x" * 256, 5, None]:
        with pytest.raises(InvalidInput, match="job"):
            key("job", bad)
    assert key("provider", None, optional=True) is None


def test_json_and_number_checks() -> None:
    assert json_value("params", {"naics": ["541511"]}, mapping=True) == {"naics": ["541511"]}
    with pytest.raises(InvalidInput, match="JSON"):
        json_value("params", {"x": {1, 2}})
    with pytest.raises(InvalidInput, match="JSON"):
        json_value("params", float("nan"))
    with pytest.raises(InvalidInput, match="object"):
        json_value("params", [1], mapping=True)
    assert number("n", 2.5) == 2.5
    for bad in [True, "1", None, float("inf")]:
        with pytest.raises(InvalidInput):
            number("n", bad)


def test_choice_lists_allowed_values() -> None:
    assert choice("status", "partial", RunStatus) is RunStatus.PARTIAL
    with pytest.raises(InvalidInput) as caught:
        choice("status", "done", RunStatus)
    assert "success" in str(caught.value) and "cancelled" in str(caught.value)


def test_cursor_round_trip_and_garbage() -> None:
    assert decode_cursor(encode_cursor(12345)) == 12345
    assert decode_cursor(None) is None
    for bad in ["", "abc", "djE6LTE", "'; DROP TABLE runs; --", "\u2603", "djI6NQ"]:
        with pytest.raises(InvalidInput, match="cursor"):
            decode_cursor(bad)


def test_a_label_in_the_other_interfaces_form_is_refused_with_this_ones() -> None:
    from runtrack.inputs import label_pairs

    assert label_pairs("label", ["url:https://x.test/?a=b"], ":") == {"url": "https://x.test/?a=b"}
    with pytest.raises(InvalidInput) as cli_form:
        label_pairs("label", ["team=growth"], ":")  # the CLI's form, in the API
    assert cli_form.value.allowed == "name:value here ('team:growth')"
    with pytest.raises(InvalidInput) as api_form:
        label_pairs("--label", ["team:growth"], "=")  # the API's form, in the CLI
    assert api_form.value.allowed == "name=value here ('team=growth')"
