"""Page numbers reach a bounded window of the newest runs: the OFFSET and the
count behind them stop at its end, so a page costs the same at any history
size; the cursor goes further."""

from __future__ import annotations

import pytest

from runtrack import InvalidInput, Ledger, queries


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(queries, "PAGE_WINDOW", 5)
    return 5


def test_totals_are_exact_within_the_window(ledger: Ledger) -> None:
    ids = [ledger.finish_run(ledger.start_run("pages:a"), "success").id for _ in range(4)]
    first = ledger.list_runs_by_page(1, limit=3, job="pages:a")
    assert [r.id for r in first.items] == ids[::-1][:3]
    assert (first.total, first.total_pages, first.total_exact) == (4, 2, True)
    assert [r.id for r in ledger.list_runs_by_page(2, limit=3, job="pages:a").items] == ids[:1]


def test_past_the_window_the_total_says_so_and_pages_stop(
    ledger: Ledger, small_window: int
) -> None:
    ids = [ledger.finish_run(ledger.start_run("pages:b"), "success").id for _ in range(8)]
    page = ledger.list_runs_by_page(3, limit=2, job="pages:b")
    assert [r.id for r in page.items] == ids[::-1][4:6]  # starts inside the window
    assert (page.total, page.total_pages, page.total_exact) == (5, 3, False)
    with pytest.raises(InvalidInput, match="next_cursor") as refused:
        ledger.list_runs_by_page(4, limit=2, job="pages:b")
    assert "starts at run 7" in str(refused.value)
    assert "page <= 3" in str(refused.value)
    deeper = ledger.list_runs(job="pages:b", limit=6)
    assert [r.id for r in ledger.list_runs(job="pages:b", cursor=deeper.next_cursor).items] == (
        ids[::-1][6:]
    )
