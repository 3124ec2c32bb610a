"""Helpers for the lineage tests: an offline OpenLineage schema check and
listeners that append events to a file through the client's file transport.

No package on this machine ships the OpenLineage spec files, so ``schemas/``
holds a hand transcription of what spec 2-0-2 requires of a RunEvent (and of
the two standard facets runtrack sends whose fields matter: errorMessage and
nominalTime). Facets are checked against the schema their ``_schemaURL``
names when it is one of those, or runtrack's own facet schema (shipped in
the package).
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema_rs

from runtrack.config import Settings
from runtrack.lineage.events import FACET_SCHEMA_URL
from runtrack.lineage.listener import OpenLineageListener

SCHEMAS = Path(__file__).parent / "schemas"


class EventSchema:
    """Validates OpenLineage run events and their facets, offline."""

    def __init__(self) -> None:
        docs = [json.loads(path.read_text()) for path in sorted(SCHEMAS.glob("*.json"))]
        self.documents = {doc["$id"]: doc for doc in docs}
        self.registry = jsonschema_rs.Registry(list(self.documents.items()))
        core = self.documents["https://openlineage.io/spec/2-0-2/OpenLineage.json"]
        self.event = self._validator(core)
        shipped = files("runtrack.lineage").joinpath("RuntrackRunFacet.json").read_text()
        self.runtrack_facet = self._validator(json.loads(shipped))

    def _validator(self, schema: dict[str, Any]) -> Any:
        return jsonschema_rs.Draft202012Validator(
            schema, registry=self.registry, validate_formats=True, offline=True
        )

    def errors(self, event: dict[str, Any]) -> list[str]:
        """Every violation in ``event`` (empty if it is a valid RunEvent)."""
        found = [f"event: {error.message}" for error in self.event.iter_errors(event)]
        facets = {
            **(event.get("run", {}).get("facets") or {}),
            **(event.get("job", {}).get("facets") or {}),
        }
        for name, facet in facets.items():
            validator = self._facet_validator(facet.get("_schemaURL", ""))
            if validator is not None:
                found += [f"{name}: {error.message}" for error in validator.iter_errors(facet)]
        return found

    def _facet_validator(self, url: str) -> Any:
        if url == FACET_SCHEMA_URL:
            return self.runtrack_facet
        if url.partition("#")[0] in self.documents:
            return self._validator({"$ref": url})
        return None


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events a file transport appended to ``path`` (one JSON per line)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def file_listener_at(path: Path, **options: Any) -> OpenLineageListener:
    settings = Settings(openlineage_file=str(path)).validated()
    return OpenLineageListener.from_settings(settings, **options)
