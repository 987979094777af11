from __future__ import annotations

import pytest

from dojobber import (
    REQUIRED,
    DoJobber,
    DummyJob,
    Job,
    MissingOptionError,
    NoActError,
    RunonlyJob,
    UnknownOptionError,
)


class Greet(Job):
    """Greets someone."""

    WHO: str = REQUIRED
    PUNCT = "!"

    def Check(self) -> str:
        return f"hello {self.WHO}{self.PUNCT}"


def test_variant_sets_options_and_name() -> None:
    ann = Greet.variant("Greet ann", WHO="ann")
    assert ann.__name__ == "Greet ann"
    assert issubclass(ann, Greet)
    assert ann.WHO == "ann" and ann.PUNCT == "!"
    assert Greet.WHO is REQUIRED  # the original is untouched
    assert ann.__doc__ == Greet.__doc__


def test_variant_without_name_makes_readable_unique_names() -> None:
    a = Greet.variant(WHO="ann")
    b = Greet.variant(WHO="bob", PUNCT="?")
    assert a.__name__ == "Greet(WHO='ann')"
    assert b.__name__ == "Greet(WHO='bob', PUNCT='?')"


def test_variants_are_distinct_jobs_in_one_graph() -> None:
    people = [Greet.variant(f"Greet {w}", WHO=w) for w in ("ann", "bob")]
    root = type("All", (DummyJob,), {"DEPS": people})
    dojob = DoJobber()
    dojob.configure(root)
    dojob.checknrun()
    assert dojob.noderesults["Greet ann"] == "hello ann!"
    assert dojob.noderesults["Greet bob"] == "hello bob!"
    assert dojob.success()


def test_variant_unknown_option_names_job_and_option() -> None:
    with pytest.raises(UnknownOptionError) as info:
        Greet.variant(WHOM="ann")
    assert "Greet" in str(info.value) and "'WHOM'" in str(info.value)
    assert "WHO" in str(info.value)  # lists what exists
    assert info.value.option == "WHOM"


def test_variant_can_set_deps_and_tries() -> None:
    class Dep(DummyJob):
        pass

    v = Greet.variant("G", WHO="x", DEPS=[Dep], TRIES=5)
    assert list(v.DEPS) == [Dep] and v.TRIES == 5


def test_required_option_left_unset_is_refused_at_configure() -> None:
    root = type("Root", (DummyJob,), {"DEPS": [Greet]})
    with pytest.raises(MissingOptionError) as info:
        DoJobber().configure(root)
    assert "Greet" in str(info.value) and "'WHO'" in str(info.value)


def test_options_lists_public_data_attributes() -> None:
    opts = Greet.options()
    assert opts["WHO"] is REQUIRED and opts["PUNCT"] == "!"
    assert "Check" not in opts and "storage" not in opts


def test_runonly_job_runs_once_and_mirrors_run() -> None:
    calls: list[str] = []

    class Once(RunonlyJob):
        def Run(self) -> str:
            calls.append("run")
            return "done"

    dojob = DoJobber()
    dojob.configure(Once)
    dojob.checknrun()
    assert calls == ["run"]
    assert dojob.nodestatus == {"Once": True}
    assert dojob.noderesults["Once"] == "done"


def test_runonly_job_failure_is_run_exception() -> None:
    class Boom(RunonlyJob):
        TRIES = 1

        def Run(self) -> None:
            raise OSError("disk on fire")

    dojob = DoJobber()
    dojob.configure(Boom)
    dojob.checknrun()
    assert dojob.nodestatus == {"Boom": False}
    assert isinstance(dojob.nodeexceptions["Boom"], OSError)


def test_runonly_job_in_no_act_fails_without_running() -> None:
    calls: list[str] = []

    class Once(RunonlyJob):
        def Run(self) -> None:
            calls.append("run")

    dojob = DoJobber()
    dojob.configure(Once, no_act=True)
    dojob.checknrun()
    assert calls == []
    err = dojob.nodeexceptions["Once"]
    # Upstream's exception: a RuntimeError with upstream's exact message;
    # dojobber's own explanation is kept on the error.
    assert isinstance(err, NoActError) and isinstance(err, RuntimeError)
    assert str(err) == "Runonly node check intentionally fails first time."
    assert err.job == "Once" and "no_act" in err.reason
