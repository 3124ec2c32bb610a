"""OpenLineage run events for runtrack runs (extra ``runtrack[openlineage]``).

Configured by ``RUNTRACK_OPENLINEAGE_URL`` / ``_FILE`` / ``_CONSOLE`` (and
``_NAMESPACE``), ``Ledger.from_settings`` attaches an
:class:`~runtrack.lineage.listener.OpenLineageListener`; or pass one yourself::

    from runtrack.lineage.listener import OpenLineageListener
    ledger = Ledger(url, listeners=[OpenLineageListener.from_settings(settings)])

This module imports nothing from openlineage-python, so runtrack works
without the extra; asking for lineage without it is a ConfigurationError.
The client's own configuration still applies on top of runtrack's transports:
``OPENLINEAGE_DISABLED=true`` silences it, and ``openlineage.yml`` /
``OPENLINEAGE__*`` variables add tags, filters and environment facets.
"""

from __future__ import annotations

from runtrack.config import Settings
from runtrack.errors import ConfigurationError
from runtrack.events import RunListener

__all__ = ["configured", "listeners_from_settings"]


def configured(settings: Settings) -> bool:
    """Whether the settings ask for OpenLineage events."""
    return bool(
        settings.openlineage_url or settings.openlineage_file or settings.openlineage_console
    )


def listeners_from_settings(settings: Settings) -> list[RunListener]:
    """The lineage listeners the settings ask for (none if not configured)."""
    if not configured(settings):
        return []
    try:
        from runtrack.lineage.listener import OpenLineageListener
    except ImportError as exc:
        if not (exc.name or "").startswith("openlineage"):
            raise
        raise ConfigurationError(
            "RUNTRACK_OPENLINEAGE_* is set but openlineage-python is not installed; "
            "install it with: pip install 'runtrack[openlineage]'"
        ) from exc
    return [OpenLineageListener.from_settings(settings)]
