"""ObsImage against a fake OBS API and download area on loopback."""

from __future__ import annotations

import base64
import bz2
import logging
import pickle
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from dojobber import DummyJob, MissingOptionError
from dojobber.contrib.download import Download
from dojobber.contrib.errors import (
    AmbiguousImageError,
    BuildFailedError,
    BuildNotReadyError,
    ImageNotFoundError,
    ObsAuthError,
    RepositoryNotFoundError,
    RepositoryNotReadyError,
    ServerError,
    UnknownResourceError,
)
from dojobber.contrib.obs import Credentials, ObsImage, download_url_for, parse_sha256
from tests.fakes.obs import IMAGE, PACKAGE, PROJECT, FakeObs, capture, obs, sha
from tests.helpers import converge_once

__all__ = ["obs"]

IMAGE_BYTES = b"qcow2 image bytes " * 1000
OTHER_FILES = {
    IMAGE.replace(".qcow2", ".raw.xz"): b"raw xz",
    IMAGE.replace(".qcow2", ".packages"): b"kernel-default|6.4|...\n",
    IMAGE.replace(".qcow2", ".verified"): b"ok\n",
    "_statistics": b"<buildstatistics/>",
}


def find(fake: FakeObs, name: str = "Find image", **options: object) -> type[ObsImage]:
    options.setdefault("project", PROJECT)
    options.setdefault("package", PACKAGE)
    options.setdefault("oscrc", False)
    return ObsImage.variant(name, api_url=fake.api_url, download_url=fake.download_url,
                            **options)


def test_lookup_picks_the_preferred_image_and_records_it(obs: FakeObs) -> None:
    obs.add_build(PROJECT, PACKAGE, files={IMAGE: IMAGE_BYTES, **OTHER_FILES})
    Find = find(obs)
    Capture, seen = capture("Capture", Find)
    dj = converge_once(Capture)
    assert dj.success(), dj.nodeexceptions
    result = dj.noderesults["Find image"]
    url = f"{obs.base_url}/repositories/devel:/kanku:/images/images/{IMAGE}"
    assert result["url"] == url
    assert result["filename"] == IMAGE
    assert result["size"] == len(IMAGE_BYTES)
    assert result["mtime"] > 0
    assert result["sha256"] == sha(IMAGE_BYTES)
    assert (result["project"], result["package"], result["repository"], result["arch"]) == (
        PROJECT, PACKAGE, "images", "x86_64")
    assert seen["vm_image_url"] == url
    assert seen["vm_image_name"] == IMAGE
    assert seen["vm_image_sha256"] == sha(IMAGE_BYTES)
    assert seen["obs_project"] == PROJECT
    assert seen["jobs"]["Find image"] == result
    # The URL really serves the image.
    assert obs.requests_for(f"/public/build/{PROJECT}/_result")[0].query == {
        "package": [PACKAGE]}  # every repository: a missing one's error lists them


@pytest.mark.parametrize(("preferred", "expected"), [
    ("raw.xz", IMAGE.replace(".qcow2", ".raw.xz")),
    (("vmdk", "raw.xz", "qcow2"), IMAGE.replace(".qcow2", ".raw.xz")),
    (("vmdk", "qcow2"), IMAGE),
])
def test_preferred_extension(obs: FakeObs, preferred: object, expected: str) -> None:
    obs.add_build(PROJECT, PACKAGE, files={IMAGE: IMAGE_BYTES, **OTHER_FILES})
    dj = converge_once(find(obs, preferred_extension=preferred))
    assert dj.success(), dj.nodeexceptions
    assert dj.noderesults["Find image"]["filename"] == expected


def test_multibuild_flavour_and_other_repository(obs: FakeObs) -> None:
    obs.add_build(PROJECT, PACKAGE, files={"plain.qcow2": b"plain"})
    obs.add_build(PROJECT, "leap:kvm", repository="images_15.6", arch="aarch64",
                  files={"kvm.qcow2": b"kvm"})
    dj = converge_once(find(obs, package="leap:kvm", repository="images_15.6", arch="aarch64"))
    assert dj.success(), dj.nodeexceptions
    result = dj.noderesults["Find image"]
    assert result["filename"] == "kvm.qcow2"
    assert result["url"].endswith("/devel:/kanku:/images/images_15.6/kvm.qcow2")
    assert obs.requests_for(f"/public/build/{PROJECT}/images_15.6/aarch64/leap:kvm")


def test_no_published_checksum_gives_none(obs: FakeObs) -> None:
    obs.add_build(PROJECT, PACKAGE, files={IMAGE: IMAGE_BYTES}, sha256=False)
    dj = converge_once(find(obs))
    assert dj.success(), dj.nodeexceptions
    assert dj.noderesults["Find image"]["sha256"] is None


def test_several_candidates_are_an_error_listing_them(obs: FakeObs) -> None:
    kvm = IMAGE.replace("x86_64", "x86_64-kvm")
    obs.add_build(PROJECT, PACKAGE, files={IMAGE: b"a", kvm: b"b"})
    dj = converge_once(find(obs))
    err = dj.nodeexceptions["Find image"]
    assert isinstance(err, AmbiguousImageError)
    assert err.candidates == sorted([IMAGE, kvm])
    assert IMAGE in str(err) and kvm in str(err) and "filename" in str(err)
    dj = converge_once(find(obs, filename="*-kvm-*"))
    assert dj.success(), dj.nodeexceptions
    assert dj.noderesults["Find image"]["filename"] == kvm


def test_no_image_is_an_error(obs: FakeObs) -> None:
    obs.add_build(PROJECT, PACKAGE, files={"x.packages": b"p", "x.tar": b"t"})
    err = converge_once(find(obs)).nodeexceptions["Find image"]
    assert isinstance(err, ImageNotFoundError)
    assert "x.tar" in str(err) and ".qcow2" in str(err) and "preferred_extension" in str(err)


@pytest.mark.parametrize(("state", "dirty", "hint"), [
    ("building", False, "rerun later"),
    ("published", True, "dirty"),
    ("unpublished", False, "enable publishing"),
])
def test_repository_not_ready_then_converges(obs: FakeObs, state: str, dirty: bool,
                                              hint: str) -> None:
    build = obs.add_build(PROJECT, PACKAGE, files={IMAGE: IMAGE_BYTES}, state=state,
                          dirty=dirty)
    Find = find(obs)
    err = converge_once(Find).nodeexceptions["Find image"]
    assert isinstance(err, RepositoryNotReadyError)
    assert (err.state, err.dirty) == (state, dirty)
    assert hint in str(err) and "Find image" in str(err)
    build.state, build.dirty = "published", False
    assert converge_once(Find).success()


def test_unknown_repository(obs: FakeObs) -> None:
    obs.add_build(PROJECT, PACKAGE, files={IMAGE: IMAGE_BYTES})
    obs.add_build(PROJECT, PACKAGE, repository="images_leap_16", files={IMAGE: IMAGE_BYTES})
    err = converge_once(find(obs, repository="nope")).nodeexceptions["Find image"]
    assert isinstance(err, RepositoryNotFoundError)
    assert "'nope'" in str(err) and "repository and arch options" in str(err)
    # The hint lists the repositories the project really has.
    assert "(it has: images/x86_64, images_leap_16/x86_64)" in str(err)


def test_failed_and_unfinished_builds(obs: FakeObs) -> None:
    build = obs.add_build(PROJECT, PACKAGE, files={IMAGE: IMAGE_BYTES}, code="failed",
                          details="kiwi: disk too small")
    Find = find(obs)
    err = converge_once(Find).nodeexceptions["Find image"]
    assert isinstance(err, BuildFailedError)
    assert err.code == "failed" and "kiwi: disk too small" in str(err)
    assert "fix the build" in str(err)
    build.code, build.details = "unresolvable", "nothing provides kernel"
    err = converge_once(Find).nodeexceptions["Find image"]
    assert isinstance(err, BuildFailedError) and "nothing provides kernel" in str(err)
    build.code, build.details = "building", ""
    err = converge_once(Find).nodeexceptions["Find image"]
    assert isinstance(err, BuildNotReadyError) and "rerun later" in str(err)
    build.code = "succeeded"
    assert converge_once(Find).success()


def test_unknown_project_and_package_are_404_errors(obs: FakeObs) -> None:
    obs.add_build(PROJECT, PACKAGE, files={IMAGE: IMAGE_BYTES})
    err = converge_once(find(obs, project="home:nobody")).nodeexceptions["Find image"]
    assert isinstance(err, UnknownResourceError)
    assert err.status == 404 and "Project not found: home:nobody" in str(err)
    assert "check the project, package" in str(err)
    err = converge_once(find(obs, package="nope")).nodeexceptions["Find image"]
    assert isinstance(err, UnknownResourceError) and "nope" in str(err)


def test_server_error(obs: FakeObs) -> None:
    obs.add_build(PROJECT, PACKAGE, files={IMAGE: IMAGE_BYTES})
    obs.fail["public/build"] = (503, "service_unavailable", "backend down")
    err = converge_once(find(obs)).nodeexceptions["Find image"]
    assert isinstance(err, ServerError)
    assert err.status == 503 and "backend down" in str(err) and "rerun later" in str(err)
    del obs.fail["public/build"]
    assert converge_once(find(obs)).success()


def test_unreachable_server_is_a_named_error(obs: FakeObs) -> None:
    Find = ObsImage.variant("Find image", project=PROJECT, package=PACKAGE, oscrc=False,
                            api_url="http://127.0.0.1:9/public", timeout=5)
    err = converge_once(Find).nodeexceptions["Find image"]
    assert "cannot reach http://127.0.0.1:9/public" in str(err)


def test_project_and_package_are_required() -> None:
    from dojobber import DoJobber

    with pytest.raises(MissingOptionError, match="'project'"):
        DoJobber().configure(ObsImage.variant("No project", package="x"))


# -- credentials ----------------------------------------------------------------
SECRET = "s3cr3t-P4ss"


@pytest.fixture
def private_obs() -> Iterator[FakeObs]:
    with FakeObs(require_auth=("kanku", SECRET)) as fake:
        fake.add_build(PROJECT, PACKAGE, files={IMAGE: IMAGE_BYTES})
        yield fake


def _leaks(text: str) -> bool:
    basic = base64.b64encode(f"kanku:{SECRET}".encode()).decode()
    return SECRET in text or basic in text


def test_401_without_credentials_says_what_to_do(private_obs: FakeObs) -> None:
    err = converge_once(find(private_obs)).nodeexceptions["Find image"]
    assert isinstance(err, ObsAuthError)
    assert err.status == 401 and "oscrc" in str(err) and "credentials=" in str(err)


def test_converge_gives_up_at_once_on_refused_credentials(private_obs: FakeObs) -> None:
    from dojobber import DoJobber, GiveUp, Verdict

    dj = DoJobber()
    dj.configure(find(private_obs), default_retry_delay=0)
    session = dj.converge(backoff=3600, max_rounds=5)
    assert session.verdict is Verdict.GAVE_UP and len(session.rounds) == 1
    err = session.last.jobs["Find image"].exception if session.last else None
    assert isinstance(err, ObsAuthError) and isinstance(err, GiveUp)


def test_transient_and_configuration_errors_are_told_apart() -> None:
    from dojobber import GiveUp
    from dojobber.contrib import errors

    for cls in (errors.ObsAuthError, errors.UnknownResourceError, errors.AmbiguousImageError,
                errors.RepositoryNotFoundError, errors.CredentialsError):
        assert issubclass(cls, GiveUp), cls
    for cls in (errors.ServerError, errors.TransportError, errors.BuildNotReadyError,
                errors.RepositoryNotReadyError, errors.DownloadInterruptedError,
                errors.NotDownloadedError):
        assert not issubclass(cls, GiveUp), cls


def test_direct_credentials_work_and_never_leak(private_obs: FakeObs,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = Credentials("kanku", SECRET)
    Find = find(private_obs, credentials=good)
    Capture, seen = capture("Capture", Find)
    dj = converge_once(Capture, verbose=True, debug=True)
    assert dj.success(), dj.nodeexceptions
    assert private_obs.log[0].headers.get("Authorization", "").startswith("Basic ")
    # A wrong password fails with an error that does not show either password.
    bad = ObsImage.variant(None, project=PROJECT, package=PACKAGE, oscrc=False,
                           api_url=private_obs.api_url, credentials=Credentials("kanku",
                                                                               SECRET + "x"))
    dj_bad = converge_once(bad, verbose=True, debug=True)
    err = dj_bad.nodeexceptions[bad.__name__]
    assert isinstance(err, ObsAuthError)
    shown = [repr(good), str(good), bad.__name__, repr(bad), repr(Find.options()),
             str(err), repr(err), "".join(traceback.format_exception(err)),
             repr(dj.noderesults), repr(seen), repr(dj.result), caplog.text]
    assert not [text for text in shown if _leaks(text)]
    assert "password=***" in repr(good)
    assert pickle.loads(pickle.dumps(good)) == good


def _write_oscrc(path: Path, section: str, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"[general]\napiurl = {section}\n\n[{section}]\n{body}\n")


@pytest.mark.parametrize("where", [".config/osc/oscrc", ".oscrc"])
def test_credentials_from_oscrc(private_obs: FakeObs, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("OSC_CONFIG", raising=False)
    # osc names the section by the API root; the job's api_url is below it.
    _write_oscrc(tmp_path / where, private_obs.base_url, f"user = kanku\npass = {SECRET}")
    Find = ObsImage.variant("Find image", project=PROJECT, package=PACKAGE,
                            api_url=private_obs.api_url, download_url=private_obs.download_url)
    dj = converge_once(Find)
    assert dj.success(), dj.nodeexceptions
    assert not _leaks(repr(dj.noderesults))


def test_oscrc_passx_and_longest_section_wins(private_obs: FakeObs, tmp_path: Path) -> None:
    rc = tmp_path / "oscrc"
    passx = base64.b64encode(bz2.compress(SECRET.encode())).decode()
    rc.write_text(f"[{private_obs.base_url}]\nuser = kanku\npass = wrong\n\n"
                  f"[{private_obs.api_url}/]\nuser = kanku\npassx = {passx}\n\n"
                  "[https://api.example.org]\nuser = other\npass = other\n")
    dj = converge_once(find(private_obs, oscrc=str(rc)))
    assert dj.success(), dj.nodeexceptions


def test_oscrc_for_another_server_is_not_used(private_obs: FakeObs, tmp_path: Path) -> None:
    rc = tmp_path / "oscrc"
    _write_oscrc(rc, "https://api.opensuse.org", f"user = kanku\npass = {SECRET}")
    err = converge_once(find(private_obs, oscrc=str(rc))).nodeexceptions["Find image"]
    assert isinstance(err, ObsAuthError)
    assert "Authorization" not in private_obs.log[0].headers


def test_unparsable_oscrc_does_not_show_its_lines(private_obs: FakeObs, tmp_path: Path) -> None:
    rc = tmp_path / "oscrc"
    rc.write_text(f"[{private_obs.base_url}]\nuser = kanku\n{SECRET} no equals sign\n")
    err = converge_once(find(private_obs, oscrc=str(rc))).nodeexceptions["Find image"]
    assert "cannot parse" in str(err) and "line 3" in str(err)
    assert not _leaks(str(err)) and not _leaks("".join(traceback.format_exception(err)))


# -- helpers and composition --------------------------------------------------------
def test_download_url_and_sha256_parsing() -> None:
    assert download_url_for("https://dl.example/repositories", "a:b:c", "images",
                            "x y.qcow2") == "https://dl.example/repositories/a:/b:/c/images/x%20y.qcow2"
    digest = "ab" * 32
    assert parse_sha256(f"{digest.upper()}  img.qcow2\n", "img.qcow2") == digest
    assert parse_sha256(f"{'cd' * 32}  other\n{digest} *img.qcow2\n", "img.qcow2") == digest
    assert parse_sha256("not a checksum\n") is None


def test_two_images_in_one_graph(obs: FakeObs, tmp_path: Path) -> None:
    obs.add_build(PROJECT, "leap", files={"leap.qcow2": b"leap" * 100})
    obs.add_build(PROJECT, "tumbleweed", files={"tw.qcow2": b"tw" * 100})
    FindLeap = find(obs, "Find Leap", package="leap")
    FindTw = find(obs, "Find Tumbleweed", package="tumbleweed")
    GetLeap = Download.variant("Get Leap", source=FindLeap, dest_dir=str(tmp_path))
    GetTw = Download.variant("Get Tumbleweed", source=FindTw, dest_dir=str(tmp_path))
    Both = DummyJob.variant("Both images", DEPS=[GetLeap, GetTw])
    Capture, seen = capture("Capture", Both)
    dj = converge_once(Capture, workers=2)
    assert dj.success(), dj.nodeexceptions
    assert FindLeap in GetLeap.DEPS and FindTw in GetTw.DEPS
    jobs = seen["jobs"]
    assert jobs["Get Leap"]["path"] == str(tmp_path / "leap.qcow2")
    assert jobs["Get Tumbleweed"]["path"] == str(tmp_path / "tw.qcow2")
    assert jobs["Find Tumbleweed"]["sha256"] == sha(b"tw" * 100)
    assert (tmp_path / "tw.qcow2").read_bytes() == b"tw" * 100
    assert seen["vm_image_file"] in (jobs["Get Leap"]["path"], jobs["Get Tumbleweed"]["path"])


def test_import_dojobber_does_not_import_requests() -> None:
    code = ("import sys, dojobber, dojobber.contrib, dojobber.contrib.errors; "
            "assert 'requests' not in sys.modules, 'requests imported'; "
            "import dojobber.contrib.obs, dojobber.contrib.download; "
            "assert 'requests' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_password_in_the_urls_is_used_and_never_shown_or_stored(
        private_obs: FakeObs, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from dojobber.contrib.download import Download
    from dojobber.records import RecordStore

    caplog.set_level(logging.DEBUG)
    def with_auth(url: str) -> str:
        return url.replace("http://", f"http://kanku:{SECRET}@")
    Find = ObsImage.variant(None, project=PROJECT, package=PACKAGE, oscrc=False,
                            api_url=with_auth(private_obs.api_url),
                            download_url=with_auth(private_obs.download_url))
    Fetch = Download.variant("Fetch", source=Find, dest_dir=str(tmp_path / "images"))
    Capture, seen = capture("Capture", Fetch)
    dj = converge_once(Capture, verbose=True, debug=True, records=tmp_path / "r.db")
    assert dj.success(), dj.nodeexceptions
    assert (tmp_path / "images" / IMAGE).read_bytes() == IMAGE_BYTES
    assert all(r.headers.get("Authorization", "").startswith("Basic ")
               for r in private_obs.log)
    result = dj.noderesults[Find.__name__]
    assert result["url"] == f"{private_obs.download_url}{PROJECT.replace(':', ':/')}/" \
        f"{result['repository']}/{IMAGE}"
    assert dj.records is not None
    dj.records.close()
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    with RecordStore(tmp_path / "r.db") as store:
        run_id = store.run("last").id
        texts = [repr(j) for j in store.jobs(run_id)] + [repr(x) for x in store.logs(run_id)]
    shown = [Find.__name__, repr(dj.noderesults), repr(seen), repr(dj.result), caplog.text,
             *texts]
    assert not [text for text in shown if _leaks(text)]
    assert SECRET.encode() not in stored
    assert "kanku:***@" in Find.__name__
