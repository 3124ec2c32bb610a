"""The keyword options of a start and of a run listing: each is written once
as a typed dict and once as the value it is checked into; these tests keep
the two the same, and an unknown option is refused with the known ones."""

from __future__ import annotations

import pytest

from runtrack import InvalidInput, RunStatus
from runtrack.filters import RunFilters, run_filter
from runtrack.start import StartOptions, StartRequest
from runtrack.store.values import RunFilter


def test_every_start_option_is_a_field_of_the_request() -> None:
    assert set(StartOptions.__optional_keys__) == set(StartRequest._fields) - {"job"}
    assert not StartOptions.__required_keys__


def test_an_unknown_start_option_names_itself_and_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        StartRequest.of("shop:sync", {"provider": "shop", "lables": {"a": "b"}})  # type: ignore[typeddict-unknown-key]
    assert caught.value.field == "lables"
    assert "labels" in caught.value.allowed and "provider" in caught.value.allowed


def test_a_bad_known_option_is_reported_before_an_unknown_one() -> None:
    with pytest.raises(InvalidInput) as caught:
        StartRequest.of("shop:sync", {"concurrency": 0, "nope": 1})  # type: ignore[typeddict-unknown-key]
    assert caught.value.field == "concurrency"


def test_every_filter_is_checked_into_the_store_value() -> None:
    # Each filter name is a field of RunFilter, but for the status (given as
    # one or several, kept as ``statuses``).
    fields = set(RunFilter.__dataclass_fields__)
    assert set(RunFilters.__optional_keys__) - {"status"} <= fields
    assert run_filter(status="failed", labels={"team": "growth"}) == RunFilter(
        statuses=(RunStatus.FAILED,), labels=(("team", "growth"),)
    )


def test_an_unknown_filter_is_refused_with_every_known_keyword() -> None:
    with pytest.raises(InvalidInput) as caught:
        run_filter(("limit", "cursor"), state="failed")  # type: ignore[call-arg]
    assert caught.value.field == "state"
    assert {"status", "labels", "limit", "cursor"} <= set(caught.value.allowed.split(", "))
