"""Drop-in compatibility: what a script written for upstream DoJobber 0.6.3
sees, checked on a graph of our own that exercises each behaviour upstream's
own test suite relies on (float tries, RunonlyJob in and out of no_act,
Cleanup on and off, success on sub-graphs, per-job retry counting, a broken
constructor) plus the first-contact points of issue 18.

Upstream's 0.6.3 sdist ships no tests; its repository's suite runs against
this package with ``make test-upstream`` (fetches it from GitHub).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import dojobber
from dojobber import DoJobber, DummyJob, Job, RunonlyJob
from tests.helpers import converge

# ----------------------------------------------------------------------
# A small release pipeline, in upstream's style: *args/**kwargs everywhere,
# state in storage / global_storage, a RunonlyJob, DummyJobs grouping.


class FetchSources(Job):
    """Fails its first Check until its Run notes (in storage) that it ran."""

    def Check(self, *_: Any, **__: Any) -> None:
        if not self.storage or not self.storage.get("fetched"):
            raise ValueError("sources not fetched yet")

    def Run(self, *_: Any, **kwargs: Any) -> None:
        assert self.storage is not None and self.global_storage is not None
        self.storage["fetched"] = True
        self.global_storage["journal"] = kwargs.get("journal", {})

    def Cleanup(self) -> None:
        assert self.global_storage is not None
        self.global_storage["journal"]["scratch_removed"] = True


class Announce(RunonlyJob):
    def Run(self, *_: Any, **__: Any) -> None:
        pass


class PickVersion(Job):
    """A KeyError until Run stores the version for later jobs."""

    def Check(self, *_: Any, **__: Any) -> None:
        assert self.global_storage is not None
        assert self.global_storage["version"]

    def Run(self, *_: Any, **__: Any) -> None:
        assert self.global_storage is not None
        self.global_storage["version"] = "1.2.3"


class Workspace(DummyJob):
    DEPS = (FetchSources, Announce)


class Compile(Job):
    DEPS = (Workspace, PickVersion)

    def Check(self, *_: Any, **kwargs: Any) -> str:
        if kwargs.get("compiler") != "ok":
            raise RuntimeError("the compiler is broken")
        return "built"

    def Run(self, *_: Any, **__: Any) -> None:
        pass


class SignKey(DummyJob):
    """Passes only on the try named by kwargs (default: its last try)."""

    TRIES = 6
    RETRY_DELAY = 0.001

    def Check(self, *_: Any, **kwargs: Any) -> None:
        assert self.global_storage is not None
        wanted = kwargs.get("key_ready_on") or self.TRIES
        if self.global_storage.get("key_tries", 0) < wanted:
            raise RuntimeError("key not ready")

    def Run(self, *_: Any, **__: Any) -> None:
        assert self.global_storage is not None
        self.global_storage["key_tries"] = self.global_storage.get("key_tries", 0) + 1


class Sign(Job):
    """Fewer tries than SignKey: counting must be per job, not per round."""

    DEPS = (SignKey,)
    TRIES = SignKey.TRIES - 2

    def Check(self, *_: Any, **kwargs: Any) -> None:
        assert self.global_storage is not None
        wanted = kwargs.get("sign_ready_on") or self.TRIES
        if self.global_storage.get("sign_tries", 0) < wanted:
            raise RuntimeError("still signing")

    def Run(self, *_: Any, **__: Any) -> None:
        assert self.global_storage is not None
        self.global_storage["sign_tries"] = self.global_storage.get("sign_tries", 0) + 1


class Upload(Job):
    DEPS = (Compile, Sign)

    def Check(self, *_: Any, **__: Any) -> None:
        pass

    def Run(self, *_: Any, **__: Any) -> None:
        pass


class Release(Job):
    DEPS = (Upload,)

    def Check(self, *_: Any, **__: Any) -> None:
        pass

    def Run(self, *_: Any, **__: Any) -> None:
        pass


class RunFails(RunonlyJob):
    def Run(self, *_: Any, **__: Any) -> None:
        raise RuntimeError("the release train left without us")


class RunPasses(RunonlyJob):
    def Run(self, *_: Any, **__: Any) -> str:
        return "all aboard"


class Reachable(DummyJob):
    pass


class BadInit(RunonlyJob):
    DEPS = [Reachable]

    def __init__(self) -> None:
        raise RuntimeError("constructor exploded")

    def Check(self, *_: Any, **__: Any) -> bool:
        return True


class AboveBadInit(DummyJob):
    DEPS = [BadInit]


EVERYTHING_OK = {
    "FetchSources": True, "Announce": True, "PickVersion": True, "Workspace": True,
    "Compile": True, "SignKey": True, "Sign": True, "Upload": True, "Release": True,
}


# ----------------------------------------------------------------------
def test_a_run_with_failures_gives_upstream_dicts() -> None:
    dojob = converge(Release, "arg1", kwargs={"compiler": "broken"})
    assert dojob.nodestatus == {
        **EVERYTHING_OK, "Compile": False, "Upload": None, "Release": None,
    }
    assert not dojob.success() and dojob.partial_success()
    assert str(dojob.nodeexceptions["Compile"]) == "the compiler is broken"
    assert set(dojob.nodeexceptions) == {"Compile"}
    assert dojob.noderesults["Sign"] is None and "Compile" not in dojob.noderesults


def test_a_run_that_converges() -> None:
    dojob = converge(Release, "arg1", kwargs={"compiler": "ok"})
    assert dojob.nodestatus == EVERYTHING_OK
    assert dojob.success() and dojob.noderesults["Compile"] == "built"


def test_runonly_job_passes_with_runs_return_value() -> None:
    dojob = converge(RunPasses)
    assert dojob.success() and dojob.nodestatus == {"RunPasses": True}
    assert dojob.noderesults == {"RunPasses": "all aboard"}


def test_runonly_job_fails_with_runs_exception_under_float_tries() -> None:
    dojob = converge(RunFails, default_tries=1.1)
    assert not dojob.success() and dojob.nodestatus == {"RunFails": False}
    assert str(dojob.nodeexceptions["RunFails"]) == "the release train left without us"
    assert dojob.result is not None and dojob.result["RunFails"].tries == 2


@pytest.mark.parametrize("root", [RunFails, RunPasses])
def test_runonly_job_in_no_act_fails_with_upstreams_error(root: type[Job]) -> None:
    dojob = DoJobber()
    dojob.configure(root, no_act=True)
    dojob.checknrun()
    assert dojob.nodestatus == {root.__name__: False}
    err = dojob.nodeexceptions[root.__name__]
    assert type(err) is not RuntimeError and isinstance(err, RuntimeError)
    assert str(err) == "Runonly node check intentionally fails first time."


def test_cleanup_runs_after_the_run_unless_turned_off() -> None:
    journal: dict[str, bool] = {}
    converge(Release, "arg1", kwargs={"journal": journal})
    assert journal["scratch_removed"]

    journal = {}
    dojob = converge(Release, "arg1", cleanup=False, kwargs={"journal": journal})
    assert "scratch_removed" not in journal
    dojob.cleanup()
    assert journal["scratch_removed"]


def test_success_and_partial_success_on_sub_graphs() -> None:
    dojob = converge(Release)
    assert not dojob.success() and dojob.partial_success()

    dojob = DoJobber()
    dojob.configure(Workspace, default_retry_delay=0)
    assert not dojob.success()  # before any run
    dojob.checknrun()
    assert dojob.success() and dojob.partial_success()

    dojob = converge(Compile)
    assert not dojob.success() and dojob.partial_success()


@pytest.mark.parametrize(
    ("key_on", "sign_on", "key", "sign"),
    [
        (SignKey.TRIES, Sign.TRIES, True, True),  # each passes on its last try
        (SignKey.TRIES + 1, Sign.TRIES, False, None),  # SignKey out of tries
        (SignKey.TRIES, Sign.TRIES + 1, True, False),  # Sign out of its own tries
    ],
)
def test_tries_are_counted_per_job(key_on: int, sign_on: int, key: bool, sign: bool) -> None:
    kwargs = {"compiler": "ok", "key_ready_on": key_on, "sign_ready_on": sign_on}
    dojob = converge(Release, kwargs=kwargs)
    assert dojob.nodestatus["SignKey"] is key and dojob.nodestatus["Sign"] is sign
    expected_release = True if (key and sign) else None
    assert dojob.nodestatus["Release"] is expected_release


def test_a_broken_constructor_fails_its_job_not_the_run() -> None:
    dojob = DoJobber(dojobber_loglevel=logging.NOTSET)
    dojob.configure(AboveBadInit, default_retry_delay=0, default_tries=1)
    dojob.checknrun()
    assert dojob.nodestatus == {"Reachable": True, "BadInit": False, "AboveBadInit": None}


# ----------------------------------------------------------------------
# Float tries, counted as upstream counts them down.
@pytest.mark.parametrize(
    ("tries", "attempts"), [(1, 1), (1.0, 1), (1.1, 2), (1.9, 2), (2.0, 2), (2.5, 3)]
)
def test_float_tries_give_upstreams_count(tries: float, attempts: int) -> None:
    class AlwaysFails(Job):
        def Check(self, *_: Any, **__: Any) -> None:
            raise RuntimeError("never")

        def Run(self, *_: Any, **__: Any) -> None:
            pass

    class OwnTries(AlwaysFails):
        TRIES = tries  # type: ignore[assignment]

    for root, options in ((AlwaysFails, {"default_tries": tries}), (OwnTries, {})):
        dojob = converge(root, **options)
        assert dojob.result is not None
        assert dojob.result[root.__name__].tries == attempts, (root, tries)


@pytest.mark.parametrize("tries", [0, 0.0, 0.5, -1, -1.5, True, False, "2", float("nan")])
def test_invalid_default_tries_are_still_refused(tries: object) -> None:
    dojob = DoJobber()
    with pytest.raises(dojobber.ConfigurationError, match="default_tries"):
        dojob.configure(Reachable, default_tries=tries)  # type: ignore[arg-type]


# ----------------------------------------------------------------------
def test_repr_of_a_run_result_is_short() -> None:
    """``>>> dojob.checknrun()`` in a REPL prints one short line (upstream
    printed nothing), not every job of the run."""
    many = [type(f"Leaf{i}", (DummyJob,), {}) for i in range(200)]
    root = type("Top", (DummyJob,), {"DEPS": many})
    dojob = DoJobber()
    dojob.configure(root)
    result = dojob.checknrun()
    text = repr(result)
    assert len(text) < 120 and "\n" not in text
    assert text.startswith("<RunResult Top: converged; 201 jobs: ok=201;")
    failing = converge(Release, kwargs={"compiler": "broken"})
    assert failing.result is not None
    assert "not converged" in repr(failing.result) and "failed=1" in repr(failing.result)
    assert "blocked=2" in repr(failing.result)
