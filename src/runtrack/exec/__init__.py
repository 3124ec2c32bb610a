"""``runtrack exec``: one run around any command, in any language.

:mod:`runtrack.exec.protocol` parses the ``::runtrack ...`` lines a command
prints to report counters, items, progress, errors, notes and checkpoints;
:mod:`runtrack.exec.child` spawns the command and reads its output;
:mod:`runtrack.exec.supervisor` holds the run around it.
"""

from runtrack.exec.supervisor import ExecRequest, child_environment, execute

__all__ = ["ExecRequest", "child_environment", "execute"]
