"""Integrations with the tools that ingestion already runs on.

Each module imports its tool at the top, so import the module you need
(``runtrack.integrations.celery``, ``.scrapy``, ``.dlt``) after installing its
extra (``pip install 'runtrack[celery]'``); ``import runtrack`` never needs them.
"""

__all__: list[str] = []
