"""The runner's job thread: kept from one run to the next, each run in an
empty context, and given up (for a new one) while a job is stuck in it."""

from __future__ import annotations

import contextvars
import threading

from runtrack.runner.threads import IDLE, JobThread

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark")


def test_runs_one_after_another_in_one_thread_each_in_an_empty_context() -> None:
    hands = JobThread()
    seen: list[tuple[int, str | None, str]] = []

    def task() -> None:
        seen.append((threading.get_ident(), MARK.get(None), threading.current_thread().name))
        MARK.set("left by the last run")

    try:
        for n in range(3):
            assert hands.start(task, f"runtrack-job:n{n}").wait(5)
    finally:
        hands.close()
    assert len({ident for ident, _, _ in seen}) == 1
    assert [mark for _, mark, _ in seen] == [None, None, None]
    assert [name for _, _, name in seen] == [f"runtrack-job:n{n}" for n in range(3)]


def test_a_task_that_has_not_returned_keeps_its_thread_and_the_next_gets_a_new_one() -> None:
    hands = JobThread()
    release = threading.Event()
    stuck: list[threading.Thread] = []
    later: list[threading.Thread] = []

    def hang() -> None:
        stuck.append(threading.current_thread())
        release.wait(10)

    first = hands.start(hang, "runtrack-job:stuck")
    try:
        assert not first.wait(0.1)  # abandoned by its supervisor, say
        assert hands.start(lambda: later.append(threading.current_thread()), "job:x").wait(5)
        assert later[0] is not stuck[0]
        assert stuck[0].is_alive() and stuck[0].name == "runtrack-job:stuck"
    finally:
        release.set()
        hands.close()
    stuck[0].join(5)  # it ends once its task returns: it was given up
    assert not stuck[0].is_alive()
    later[0].join(5)  # closed
    assert not later[0].is_alive()


def test_an_idle_job_thread_is_named_so() -> None:
    hands = JobThread()
    threads: list[threading.Thread] = []
    try:
        assert hands.start(lambda: threads.append(threading.current_thread()), "job:a").wait(5)
        assert threads[0].name == IDLE  # named after its run only while it runs
    finally:
        hands.close()
    threads[0].join(5)
    assert not threads[0].is_alive()
