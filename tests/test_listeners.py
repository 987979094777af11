"""Listeners: failure isolation, dispatch, and per-job log capture."""

from __future__ import annotations

import io
import logging
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dojobber import DoJobber, Job, Listener
from dojobber._context import current
from dojobber.events import EventBus
from dojobber.records import RecordsListener, RecordStore
from dojobber.results import JobResult, RunResult

log = logging.getLogger("tests.listeners")


class Leaf(Job):
    def Check(self) -> None:
        pass


class Root(Job):
    DEPS = [Leaf]

    def Check(self) -> None:
        pass


class Collector(Listener):
    def __init__(self) -> None:
        self.events: list[tuple[object, ...]] = []
        self.logs: list[tuple[str, str, str, str]] = []

    def job_finished(self, result: JobResult) -> None:
        self.events.append(("job_finished", result.name))

    def run_finished(self, result: RunResult) -> None:
        self.events.append(("run_finished", result.target))

    def log(self, job: str, phase: str, record: logging.LogRecord) -> None:
        self.logs.append((job, phase, threading.current_thread().name, record.getMessage()))


class Exploding(Listener):
    def __init__(self) -> None:
        self.calls = 0

    def job_finished(self, result: JobResult) -> None:
        self.calls += 1
        raise RuntimeError("listener bug")


def test_raising_listener_is_reported_once_and_detached(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad, good = Exploding(), Collector()
    dj = DoJobber()
    dj.configure(Root, listeners=[bad, good])
    with caplog.at_level(logging.WARNING, logger="dojobber"):
        result = dj.checknrun()
    assert result.success()
    assert bad.calls == 1
    assert good.events == [
        ("job_finished", "Leaf"), ("job_finished", "Root"), ("run_finished", "Root")
    ]
    reports = [r for r in caplog.records if "detached" in r.getMessage()]
    assert len(reports) == 1
    assert "job_finished" in reports[0].getMessage()
    assert reports[0].exc_info is not None and "listener bug" in str(reports[0].exc_info[1])


def test_bus_calls_only_overridden_methods() -> None:
    collector = Collector()
    bus = EventBus([Listener(), collector])
    assert bus.wants("job_finished") and bus.wants("log")
    assert not bus.wants("phase_started")

    class Late(Listener):
        def phase_started(self, job: str, phase: str, attempt: int) -> None:
            raise AssertionError("not called")

    bus.emit("phase_started", "x", "check", 1)  # nobody wants it yet: no call
    bus.add(Late())
    assert bus.wants("phase_started")


class Chatty(Job):
    """Logs and prints lines naming itself, from worker threads, interleaved."""

    TRIES = 1

    def Check(self) -> None:
        name = type(self).__name__
        if not self.storage:
            self.storage["n"] = 0
        for i in range(15):
            log.info("%s line %d", name, i)
            print(f"{name} printed {i}")
            time.sleep(random.random() * 0.002)
        if name.endswith("7"):
            raise ValueError(f"{name} fails on purpose")

    def Run(self) -> None:
        log.debug("%s run", type(self).__name__)


def _chatty_graph(count: int) -> type[Job]:
    leaves = [type(f"Chatty{i}", (Chatty,), {}) for i in range(count)]
    return type("ChattyRoot", (Job,), {"DEPS": leaves, "Check": lambda self: None})


def test_logs_land_on_their_job_with_workers(tmp_path: Path) -> None:
    collector = Collector()
    records = RecordsListener(tmp_path / "r.db", capture_output=True, log_level=logging.DEBUG)
    dj = DoJobber()
    dj.configure(_chatty_graph(24), workers=4, listeners=[collector, records])
    dj.checknrun()
    records.close()
    threads = {t for _, _, t, _ in collector.logs}
    assert len(threads) > 1, "the jobs did not run on several threads"
    assert len(collector.logs) >= 24 * 15 * 2
    for job, _, _, message in collector.logs:
        assert message.split()[0] == job, (job, message)
    with RecordStore(tmp_path / "r.db") as store:
        lines = store.logs("last")
    assert {ln.logger for ln in lines} >= {"tests.listeners", "stdout"}
    # 24 jobs x 15 lines x (log + print) on checks; Chatty7 also ran and rechecked.
    assert len(lines) >= 24 * 15 * 2 + 15 * 2
    for line in lines:
        assert line.message.split()[0] == line.job, line
    assert any(ln.phase == "run" and ln.level == logging.DEBUG for ln in lines)


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """A handler on the root logger as a user would set up (root at WARNING)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.WARNING)
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old)


class Noisy(Job):
    def Check(self) -> None:
        log.info("info for the records only")
        log.warning("warning for everyone")
        logging.getLogger("tests.loud").info("loud info")


def test_capture_level_leaves_console_output_alone(
    tmp_path: Path, console: io.StringIO
) -> None:
    logging.getLogger("tests.loud").setLevel(logging.INFO)
    try:
        dj = DoJobber()
        dj.configure(Noisy, records=tmp_path / "r.db")
        dj.checknrun()
        assert logging.getLogger().level == logging.WARNING  # restored
    finally:
        logging.getLogger("tests.loud").setLevel(logging.NOTSET)
    assert console.getvalue().splitlines() == ["warning for everyone", "loud info"]
    with RecordStore(tmp_path / "r.db") as store:
        messages = [ln.message for ln in store.logs("last")]
    assert messages == ["info for the records only", "warning for everyone", "loud info"]
    # Outside a run the old behaviour is back: INFO is dropped again.
    log.info("after the run")
    assert "after the run" not in console.getvalue()


def test_warnings_still_reach_stderr_without_handlers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        dj = DoJobber()
        dj.configure(Noisy, records=tmp_path / "r.db")
        dj.checknrun()
    finally:
        for handler in saved:
            root.addHandler(handler)
    err = capsys.readouterr().err
    assert "warning for everyone" in err
    assert "info for the records only" not in err


def test_bus_passes_arguments_through_unchanged() -> None:
    class Weird:
        """Compares equal to everything (like mock.ANY)."""

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    got: list[tuple[object, ...]] = []

    class Keep(Listener):
        def progress(self, job: str, done: float, total: float | None, unit: str) -> None:
            got.append((job, done, total, unit))

        def phase_finished(self, *args: object) -> None:
            got.append(args)

    weird = Weird()
    bus = EventBus([Keep()])
    bus.emit("progress", "J", weird, None, "B")
    bus.emit("phase_finished", "J", "check", 1, False, 0.5, None)
    assert got[0][0] == "J" and got[0][1] is weird and got[0][2:] == (None, "B")
    assert got[1] == ("J", "check", 1, False, 0.5, None)


def test_rich_progress_shows_a_bar_per_job_reporting_progress() -> None:
    from rich.console import Console

    from dojobber import DoJobber, Job, report_progress
    from dojobber.console import RichProgress

    seen: list[str] = []
    console = Console(record=True, width=100, force_terminal=False)
    display = RichProgress(console)

    class Fetch(Job):
        def Check(self) -> None:
            report_progress(3 * 1024 * 1024, 12 * 1024 * 1024, "B")
            console.print(display.render())
            seen.append(console.export_text())

    dojob = DoJobber()
    dojob.configure(Fetch, listeners=[display])
    dojob.checknrun()
    assert "Fetch" in seen[0] and "3.0 MiB / 12.0 MiB" in seen[0]
    console.print(display.render())
    assert "MiB" not in console.export_text()  # gone once the job finished


def test_log_attribution_ends_with_the_phase_even_after_ctrl_c() -> None:
    """Attempts note the running job per phase and clear it on return; a
    KeyboardInterrupt out of a phase leaves the run, which clears it too, so
    records logged afterwards are not attributed to that job."""
    class Interrupted(Job):
        def Check(self) -> None:
            logging.getLogger("t").warning("inside")
            raise KeyboardInterrupt

    collector = Collector()
    dj = DoJobber()
    dj.configure(Interrupted, listeners=[collector])
    with pytest.raises(KeyboardInterrupt):
        dj.checknrun()
    assert current() is None
    dj = DoJobber()
    dj.configure(Root, listeners=[collector])
    assert dj.checknrun().success()
    assert current() is None
    logging.getLogger("t").warning("after the run")
    assert [m for *_, m in collector.logs] == ["inside"]


class Batched(Listener):
    """Takes finished jobs in batches, and notes what else happened when."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.order: list[tuple[str, ...]] = []

    def job_started(self, job: str, attempt: int) -> None:
        self.order.append(("started", job, str(attempt)))

    def jobs_finished(self, results: list[JobResult]) -> None:
        names = [r.name for r in results]
        self.batches.append(names)
        self.order.append(("finished", *names))

    def run_finished(self, result: RunResult) -> None:
        self.order.append(("run_finished",))


def wide(n: int) -> type[Job]:
    leaves = [type(f"W{i}", (Job,), {"Check": lambda self: None}) for i in range(n)]
    return type("WideRoot", (Job,), {"DEPS": leaves, "Check": lambda self: None})


@pytest.mark.parametrize("workers", [1, 4])
def test_jobs_finished_gets_every_job_once_in_batches_before_run_finished(
        workers: int) -> None:
    from dojobber.events import BATCH_SIZE

    listener = Batched()
    dj = DoJobber()
    dj.configure(wide(BATCH_SIZE * 2 + 10), listeners=[listener], workers=workers)
    result = dj.checknrun()
    assert result.success()
    sent = [name for batch in listener.batches for name in batch]
    assert sorted(sent) == sorted(result.jobs) and len(sent) == len(set(sent))
    assert sent[-1] == "WideRoot"
    assert all(len(batch) <= BATCH_SIZE for batch in listener.batches)
    assert len(listener.batches) >= 3
    assert listener.order[-1] == ("run_finished",)
    # the batches come in the order the jobs finished
    finished_order = [o[1] for o in listener.order if o[0] == "started"]
    if workers == 1:
        assert sent == finished_order


def test_jobs_finished_are_sent_before_waiting_out_a_retry_delay() -> None:
    runs: list[int] = []

    class Early(Job):
        def Check(self) -> None:
            pass

    class Flaky(Job):
        RETRY_DELAY = 0.3

        def Check(self) -> None:
            if len(runs) < 2:
                raise RuntimeError("not yet")

        def Run(self) -> None:
            runs.append(1)

    class Top(Job):
        DEPS = [Early, Flaky]

        def Check(self) -> None:
            pass

    listener = Batched()
    dj = DoJobber()
    dj.configure(Top, listeners=[listener], default_retry_delay=0.3)
    assert dj.checknrun().success()
    early = listener.order.index(("finished", "Early"))
    assert early < listener.order.index(("started", "Flaky", "2"))


def test_a_job_finishing_late_sends_what_is_held() -> None:
    from dojobber.events import BATCH_SECONDS

    class Quick(Job):
        def Check(self) -> None:
            pass

    class Slow(Job):
        def Check(self) -> None:
            time.sleep(BATCH_SECONDS + 0.1)

    class Last(Job):
        DEPS = [Quick, Slow]

        def Check(self) -> None:
            pass

    listener = Batched()
    dj = DoJobber()
    dj.configure(Last, listeners=[listener])
    assert dj.checknrun().success()
    # Quick, held while Slow ran, went by the batch's timer while Slow still
    # ran: not only when Slow ended, nor at the end of the run.
    assert listener.batches[0] == ["Quick"]
    assert [n for batch in listener.batches for n in batch] == ["Quick", "Slow", "Last"]
    assert listener.order.index(("started", "Slow", "1")) < \
        listener.order.index(("finished", "Quick")) < \
        listener.order.index(("started", "Last", "1"))


def test_blocked_jobs_reach_jobs_finished() -> None:
    class Broken(Job):
        def Check(self) -> None:
            raise RuntimeError("no")

        def Run(self) -> None:
            pass

    class Above(Job):
        DEPS = [Broken]

        def Check(self) -> None:
            pass

    listener = Batched()
    dj = DoJobber()
    dj.configure(Above, listeners=[listener], default_tries=1)
    result = dj.checknrun()
    assert not result.success()
    statuses = {name: result.jobs[name].status.value
                for batch in listener.batches for name in batch}
    assert statuses == {"Broken": "failed", "Above": "blocked"}


def test_a_batch_is_sent_by_size_and_by_age() -> None:
    from dojobber.events import Batch

    got: list[list[int]] = []
    by_size = Batch(got.append, size=3, seconds=3600)
    for i in range(7):
        by_size.add(i, 0.0)
    assert got == [[0, 1, 2], [3, 4, 5]]
    by_size.send()
    assert got[-1] == [6]
    by_size.send()  # nothing held: nothing sent
    assert len(got) == 3
    got.clear()
    by_age = Batch(got.append, size=100, seconds=0.05)
    by_age.add("a", time.perf_counter())
    by_age.add("b", time.perf_counter())
    assert got == []
    time.sleep(0.06)
    by_age.add("c", time.perf_counter())
    assert got == [["a", "b", "c"]]


def test_rich_progress_bar_is_coloured_by_state_with_elapsed_and_eta() -> None:
    """Green while all goes well (issue 18: it was bright red on a fully
    successful run), red once a job failed; elapsed time and time left."""
    from rich.console import Console

    from dojobber import DoJobber, DummyJob, Job
    from dojobber.console import RichProgress

    console = Console(record=True, width=120, force_terminal=False)
    display = RichProgress(console)
    seen: list[tuple[str, str]] = []

    class First(DummyJob):
        pass

    class Second(Job):
        DEPS = [First]

        def Check(self) -> None:
            seen.append((display.bar_style(), display.timing(now=display.started + 10)))

    class Broken(Job):
        DEPS = [Second]  # after Second, so Second sees a run going well

        def Check(self) -> None:
            raise RuntimeError("no")

        def Run(self) -> None:
            pass

    class Top(DummyJob):
        DEPS = [Second, Broken]

    dojob = DoJobber()
    dojob.configure(Top, listeners=[display], default_tries=1)
    dojob.checknrun()
    # While Second runs, only First is done: 10 s for 1 job of 4 -> 30 s left.
    assert seen == [("green", "0:10 elapsed, ~0:30 left")]
    assert display.total == 4 and display.done == 4
    assert display.bar_style() == "red"  # Broken failed, Top blocked
    console.print(display.render())
    assert "elapsed" in console.export_text()

    ok = RichProgress(Console(record=True, width=120, force_terminal=False))
    dojob.configure(First, listeners=[ok])
    dojob.checknrun()
    assert ok.bar_style() == "green"
