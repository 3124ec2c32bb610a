"""Run labels on the web (issue 16): in the API's run JSON, filtered by
``GET /api/runs?label=name:value`` (repeatable), and on the dashboard's run page."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from runtrack import Ledger

LABELS = {"team": "growth", "tier": "gold", "url": "https://x.test/a?b=c"}


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [run["id"] for run in response.json()["data"]]


def test_the_api_shows_and_filters_labels(client: TestClient, ledger: Ledger) -> None:
    with ledger.run("web:labels", labels=LABELS) as both:
        pass
    with ledger.run("web:labels", labels={"team": "growth"}) as team:
        pass
    with ledger.run("web:labels") as plain:
        pass
    runs = client.get("/api/runs").json()["data"]
    assert {r["id"]: r["labels"] for r in runs} == {
        both.id: LABELS,
        team.id: {"team": "growth"},
        plain.id: {},
    }
    assert client.get(f"/api/runs/{both.id}").json()["labels"] == LABELS
    assert ids(client.get("/api/runs", params={"label": "team:growth"})) == [team.id, both.id]
    both_labels = {"label": ["team:growth", "tier:gold"]}
    assert ids(client.get("/api/runs", params=both_labels)) == [both.id]
    # Split at the first ':' (a value may hold more).
    url = {"label": "url:https://x.test/a?b=c"}
    assert ids(client.get("/api/runs", params=url)) == [both.id]
    assert ids(client.get("/api/runs", params={"label": "team:core"})) == []
    numbered = client.get("/api/runs", params={"label": "tier:gold", "page": 1}).json()
    assert [r["id"] for r in numbered["data"]] == [both.id]
    assert numbered["pagination"]["total"] == 1


def test_a_malformed_label_filter_is_a_422_saying_why(client: TestClient, ledger: Ledger) -> None:
    for bad in ("team", "team:", ":growth", "te=am:x", "-team:x", "team:a\x01b"):
        response = client.get("/api/runs", params={"label": bad})
        assert response.status_code == 422, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["errors"][0]["field"].startswith("label"), problem
        if problem["errors"][0]["field"] == "label":
            assert problem["errors"][0]["location"] == "query", problem
        assert "allowed" in response.text or "name:value" in response.text, problem
    many = {"label": [f"k{i}:v" for i in range(21)]}
    assert client.get("/api/runs", params=many).status_code == 422


def test_the_run_page_shows_its_labels(client: TestClient, ledger: Ledger) -> None:
    hostile = {"team": "<script>alert(1)</script>"}
    with ledger.run("web:labels", labels={**LABELS, **hostile}) as labelled:
        pass
    with ledger.run("web:labels") as plain:
        pass
    html = client.get(f"/runs/{labelled.id}").text
    assert "<dt>Labels</dt>" in html
    # Each label links to the runs that have it.
    assert 'href="/runs?label=tier%3Agold" title="Runs with this label">tier=gold</a>' in html
    assert "team=&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "<dt>Labels</dt>" not in client.get(f"/runs/{plain.id}").text
    # The runs list shows them too, under the job, escaped the same way.
    listing = client.get("/runs", params={"job": "web:labels"}).text
    assert 'href="/runs?label=tier%3Agold" title="Runs with this label">tier=gold</a>' in listing
    assert "team=&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "<script>alert" not in listing


def test_the_run_list_filters_by_label(client: TestClient, ledger: Ledger) -> None:
    with ledger.run("web:labels", labels={"team": "growth", "tier": "gold"}) as both:
        pass
    with ledger.run("web:labels", labels={"team": "growth"}) as team:
        pass
    with ledger.run("web:labels", labels={"team": "core"}) as core:
        pass

    def listed(params: Any) -> set[int]:
        response = client.get("/runs", params=params)
        assert response.status_code == 200, response.text
        return {
            run_id
            for run_id in (both.id, team.id, core.id)
            if f'href="/runs/{run_id}"' in response.text
        }

    assert listed({"label": "team:growth"}) == {both.id, team.id}
    two = client.get("/runs", params={"label": ["team:growth", "tier:gold"]})
    assert listed({"label": ["team:growth", "tier:gold"]}) == {both.id}
    # The form keeps both: the first in its field, the second hidden.
    assert 'name="label" value="team:growth"' in two.text
    assert '<input type="hidden" name="label" value="tier:gold">' in two.text
    refused = client.get("/runs", params={"label": "team"})
    assert refused.status_code == 400 and "Filter not applied" in refused.text
