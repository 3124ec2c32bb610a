"""Notifications of incident transitions (issue 18).

``RUNTRACK_NOTIFY`` lists sink URLs (comma or whitespace separated):
``http(s)://`` URLs get runtrack's JSON webhook (:mod:`.webhook`), every
other scheme goes through Apprise (Slack, Teams, Discord, Telegram, e-mail
``mailto://`` ...; ``pip install 'runtrack[notify]'``). Each transition is a
row of ``deliveries`` written with it, sent afterwards by any process and
retried with backoff for a bounded time (:mod:`.delivery`).
"""

from runtrack.notify.config import NotifySettings
from runtrack.notify.delivery import Deliverer

__all__ = ["Deliverer", "NotifySettings"]
