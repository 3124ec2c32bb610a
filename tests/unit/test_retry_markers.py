"""The retry markers and policy: the message first in every marker, the
retry-after forms, and bad policy values refused where they are written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from runtrack import Fatal, InvalidInput, RateLimited, RetryPolicy, Transient


def test_every_marker_takes_its_message_first() -> None:
    limited = RateLimited("HTTP 429 from maps API", retry_after=20)
    assert str(limited) == "HTTP 429 from maps API"
    assert limited.retry_after == timedelta(seconds=20)
    assert str(Transient("HTTP 502")) == "HTTP 502" and str(Fatal("HTTP 401")) == "HTTP 401"
    plain = RateLimited("quota")
    assert plain.retry_after is None  # the retry policy's rate_limit_pause applies


def test_the_old_retry_after_first_order_still_works() -> None:
    old = RateLimited(timedelta(minutes=15), "daily quota exhausted")
    assert (str(old), old.retry_after) == ("daily quota exhausted", timedelta(minutes=15))
    bare = RateLimited(30)
    assert bare.retry_after == timedelta(seconds=30) and "retry after 0:00:30" in str(bare)
    with pytest.raises(InvalidInput, match="retry_after"):
        RateLimited("quota", retry_after=float("inf"))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 1.5}, "max_attempts"),
        ({"initial": -1}, "initial"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": float("nan")}, "jitter"),
        ({"initial": 10, "max_delay": 5}, "max_delay"),
        ({"rate_limit_pause": -30}, "rate_limit_pause"),
        ({"classifier": "transient"}, "classifier"),
    ],
)
def test_bad_retry_policy(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        RetryPolicy(**options)
    assert caught.value.field == field


def test_negative_retry_after_is_refused_where_it_is_written() -> None:
    with pytest.raises(InvalidInput) as caught:
        RateLimited(retry_after=-5)
    assert caught.value.field == "retry_after"
    with pytest.raises(InvalidInput):
        RateLimited(retry_after=timedelta(seconds=-1))
