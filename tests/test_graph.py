from __future__ import annotations

import sys

import pytest

from dojobber import (
    DefinitionError,
    DependencyCycleError,
    DepsNotIterableError,
    DoJobber,
    DojobberError,
    DummyJob,
    DuplicateJobNameError,
    InvalidRetryDelayError,
    InvalidTriesError,
    Job,
    NotAJobError,
    UnknownJobError,
)
from dojobber.graph import build
from tests.helpers import make_job, root_of


def test_jobs_are_numbered_dependencies_first_in_deps_order() -> None:
    c = make_job("C")
    a = make_job("A", [c])
    b = make_job("B", [c])
    graph = build(root_of(a, b))
    assert graph.names == ["C", "A", "B", "Root"]
    assert graph.deps[graph.index["Root"]] == (graph.index["A"], graph.index["B"])
    assert sorted(graph.dependants[graph.index["C"]]) == [graph.index["A"], graph.index["B"]]


def test_duplicate_deps_entries_are_one_edge() -> None:
    a = make_job("A")
    graph = build(root_of(a, a))
    assert graph.deps[-1] == (0,)


def test_networkx_view_has_edges_job_to_dependency() -> None:
    a = make_job("A")
    graph = build(root_of(a))
    assert list(graph.nx.edges) == [("Root", "A")]
    assert graph.nx.nodes["A"]["job"] is a


def test_deps_not_iterable_names_job() -> None:
    a = make_job("A")
    bad = type("Bad", (Job,), {"DEPS": a})
    with pytest.raises(DepsNotIterableError) as info:
        build(root_of(bad))
    assert "Bad.DEPS" in str(info.value) and "DEPS = [A]" in str(info.value)
    assert isinstance(info.value, DefinitionError) and isinstance(info.value, DojobberError)


@pytest.mark.parametrize("item", ["A", 3, object()])
def test_non_job_in_deps_names_the_listing_job(item: object) -> None:
    bad = type("Lister", (Job,), {"DEPS": [item]})
    with pytest.raises(NotAJobError) as info:
        build(bad)
    assert "Lister.DEPS lists" in str(info.value)


def test_job_instance_in_deps_is_refused() -> None:
    a = make_job("A")
    bad = type("Lister", (Job,), {"DEPS": [a()]})
    with pytest.raises(NotAJobError):
        build(bad)


def test_root_must_be_a_job() -> None:
    with pytest.raises(NotAJobError) as info:
        DoJobber().configure(object)  # type: ignore[arg-type]
    assert "root job" in str(info.value)


def test_two_classes_with_one_name_name_both_modules() -> None:
    first = make_job("Same")
    second = make_job("Same")
    second.__module__ = "other.place"
    with pytest.raises(DuplicateJobNameError) as info:
        build(root_of(first, second))
    msg = str(info.value)
    assert "'Same'" in msg and "tests.helpers.Same" in msg and "other.place.Same" in msg


def test_cycle_is_shown_as_arrows() -> None:
    a = make_job("A")
    b = make_job("B", [a])
    a.DEPS.append(b)  # type: ignore[attr-defined]
    with pytest.raises(DependencyCycleError) as info:
        build(root_of(b))
    assert "B -> A -> B" in str(info.value)
    assert info.value.cycle == ["B", "A"]


def test_self_dependency_is_a_cycle() -> None:
    a = make_job("A")
    a.DEPS.append(a)  # type: ignore[attr-defined]
    with pytest.raises(DependencyCycleError, match="A -> A"):
        build(a)


@pytest.mark.parametrize(
    "tries", [0, -1, 0.5, -2.5, float("nan"), float("inf"), "3", True, False, [2]]
)
def test_bad_tries_is_refused(tries: object) -> None:
    with pytest.raises(InvalidTriesError, match="Bad: TRIES"):
        build(make_job("Bad", TRIES=tries))


def test_bad_defaults_are_refused_naming_the_option() -> None:
    from dojobber import ConfigurationError

    with pytest.raises(ConfigurationError, match="default_tries=0"):
        DoJobber().configure(make_job("A"), default_tries=0)
    with pytest.raises(ConfigurationError, match="default_retry_delay=-1"):
        DoJobber().configure(make_job("A"), default_retry_delay=-1)


@pytest.mark.parametrize("delay", [-0.1, "1", None])
def test_bad_retry_delay_is_refused(delay: object) -> None:
    if delay is None:  # an int delay on the class is fine, a float too
        assert build(make_job("Ok", RETRY_DELAY=2)).delays == [2.0]
        return
    with pytest.raises(InvalidRetryDelayError, match="Bad: RETRY_DELAY"):
        build(make_job("Bad", RETRY_DELAY=delay))


def test_deps_list_appended_after_class_creation_is_seen() -> None:
    a = make_job("A")
    late = make_job("Late")
    root = root_of(a)
    root.DEPS.append(late)  # type: ignore[attr-defined]
    dojob = DoJobber()
    dojob.configure(root)
    dojob.checknrun()
    assert set(dojob.nodestatus) == {"A", "Late", "Root"}


def test_type_made_jobs_with_spaces_in_names() -> None:
    leaf = type("fetch the thing", (DummyJob,), {})
    root = type("the whole thing", (DummyJob,), {"DEPS": (leaf,)})
    dojob = DoJobber()
    dojob.configure(root)
    dojob.checknrun()
    assert dojob.nodestatus == {"fetch the thing": True, "the whole thing": True}


@pytest.mark.slow
def test_long_chain_needs_no_recursion_limit() -> None:
    limit = sys.getrecursionlimit()
    length = 20 * limit  # far deeper than any recursive walk could go
    job: type[Job] = type("J0", (DummyJob,), {})
    for i in range(1, length):
        job = type(f"J{i}", (DummyJob,), {"DEPS": (job,)})
    dojob = DoJobber()
    dojob.configure(job)
    dojob.checknrun()
    assert dojob.success() and len(dojob.nodestatus) == length
    assert sys.getrecursionlimit() == limit


def test_long_cycle_is_found_without_recursion() -> None:
    first = make_job("C0")
    job = first
    for i in range(1, 5000):
        job = make_job(f"C{i}", [job])
    first.DEPS.append(job)  # type: ignore[attr-defined]
    with pytest.raises(DependencyCycleError) as info:
        build(job)
    assert len(info.value.cycle) == 5000


def test_checknrun_unknown_node_is_an_error() -> None:
    dojob = DoJobber()
    dojob.configure(root_of(make_job("A")))
    with pytest.raises(UnknownJobError) as info:
        dojob.checknrun("Nope")
    assert "'Nope'" in str(info.value) and "Root" in str(info.value)
    other = make_job("A")  # same name, different class
    with pytest.raises(UnknownJobError):
        dojob.checknrun(other)
