"""Download against the fake OBS download area on loopback: idempotence,
conditional requests, resume, verification, redirects and xz."""

from __future__ import annotations

import fcntl
import gzip
import json
import lzma
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dojobber import DoJobber, JobStatus, Listener, MissingOptionError, RunOutcome
from dojobber._describe import message
from dojobber.contrib._transfer import size_text
from dojobber.contrib.download import Download
from dojobber.contrib.errors import (
    ChecksumMismatchError,
    DownloadError,
    DownloadInterruptedError,
    NoUrlError,
    UnknownResourceError,
)
from dojobber.contrib.obs import ObsImage
from tests.fakes.obs import IMAGE, PACKAGE, PROJECT, FakeObs, obs, published_dir, sha
from tests.helpers import converge, converge_once, run_once

__all__ = ["obs"]

DATA = os.urandom(3 << 20) + b"tail"
WHERE = published_dir(PROJECT, "images")
PATH = f"{WHERE}/{IMAGE}"


def get(fake: FakeObs, dest: Path, name: str = "Get image", **options: object) -> type[Download]:
    options.setdefault("url", fake.url(PATH))
    return Download.variant(name, dest_dir=str(dest), **options)


def publish(fake: FakeObs, data: bytes, path: str = PATH, checksum: bool = True) -> None:
    fake.put_file(path, data)
    if checksum:
        fake.put_file(path + ".sha256", f"{sha(data)}  {path.rsplit('/', 1)[1]}\n".encode())


def image_gets(fake: FakeObs, path: str = PATH) -> list[int]:
    """Body bytes sent for each GET of the image."""
    return [r.body_bytes for r in fake.requests_for(path, "GET")]


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if ".part" in p.name or p.name.endswith(".tmp"))


def test_lookup_then_download_converges_and_rerun_transfers_nothing(
        obs: FakeObs, tmp_path: Path) -> None:
    obs.add_build(PROJECT, PACKAGE, files={IMAGE: DATA})
    Find = ObsImage.variant("Find", project=PROJECT, package=PACKAGE, oscrc=False,
                            api_url=obs.api_url, download_url=obs.download_url)
    Get = Download.variant("Get", source=Find, dest_dir=str(tmp_path / "cache"))
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    target = tmp_path / "cache" / IMAGE
    assert target.read_bytes() == DATA
    result = dj.noderesults["Get"]
    assert result["path"] == str(target) and result["sha256"] == sha(DATA)
    assert result["size"] == len(DATA) and result["etag"] == obs.etag(PATH)
    assert image_gets(obs) == [len(DATA)]
    assert leftovers(target.parent) == []
    obs.clear_log()
    again = converge_once(Get)
    assert again.success()
    assert again.result is not None and again.result.jobs["Get"].tries == 1
    assert image_gets(obs) == []
    heads = obs.requests_for(PATH, "HEAD")
    assert [h.status for h in heads] == [304]
    assert heads[0].headers["If-None-Match"] == obs.etag(PATH)


def test_check_trusts_the_cached_hash_until_the_file_changes(obs: FakeObs,
                                                              tmp_path: Path) -> None:
    publish(obs, DATA)
    Get = get(obs, tmp_path)
    assert converge_once(Get).success()
    target = tmp_path / IMAGE
    st = target.stat()
    # Same size and mtime: Check does not rehash, so it does not notice.
    with open(target, "r+b") as f:
        f.write(b"X")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert converge_once(Get).success()
    assert image_gets(obs) == [len(DATA)]
    # A newer mtime: Check rehashes, finds the damage, and Run downloads again.
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    assert target.read_bytes() == DATA
    assert image_gets(obs) == [len(DATA), len(DATA)]


def test_a_newer_version_on_the_server_is_downloaded(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    Get = get(obs, tmp_path)
    assert converge_once(Get).success()
    new = DATA[::-1]
    publish(obs, new)
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    assert (tmp_path / IMAGE).read_bytes() == new
    assert dj.noderesults["Get image"]["sha256"] == sha(new)
    assert image_gets(obs) == [len(DATA), len(new)]


def test_last_modified_is_used_without_etag_support(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    Get = get(obs, tmp_path, check_remote=True)
    assert converge_once(Get).success()
    sidecar = tmp_path / f".{IMAGE}.dojobber.json"
    meta = json.loads(sidecar.read_text())
    assert meta["etag"] == obs.etag(PATH)
    sidecar.write_text(json.dumps({**meta, "etag": None}))
    obs.clear_log()
    assert converge_once(Get).success()
    head = obs.requests_for(PATH, "HEAD")[0]
    assert "If-None-Match" not in head.headers and head.status == 304
    assert head.headers["If-Modified-Since"]


def test_server_without_conditional_requests_same_etag_is_current(obs: FakeObs,
                                                                   tmp_path: Path) -> None:
    publish(obs, DATA)
    Get = get(obs, tmp_path)
    assert converge_once(Get).success()
    obs.ignore_conditionals = True
    obs.clear_log()
    assert converge_once(Get).success()
    assert [(r.method, r.status) for r in obs.requests_for(PATH)] == [("HEAD", 200)]
    publish(obs, DATA[::-1])
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    assert (tmp_path / IMAGE).read_bytes() == DATA[::-1]


def test_server_without_head_gets_a_conditional_get(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    obs.no_head = True
    Get = get(obs, tmp_path)
    assert converge_once(Get).success()
    obs.clear_log()
    assert converge_once(Get).success()
    assert [(r.method, r.status, r.body_bytes) for r in obs.requests_for(PATH)] == [
        ("HEAD", 405, 0), ("GET", 304, 0)]


def test_credentials_in_the_url_are_not_recorded(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    secret_url = obs.url(PATH).replace("http://", "http://me:pa55w0rd@")
    dj = converge_once(get(obs, tmp_path, url=secret_url))
    assert dj.success(), dj.nodeexceptions
    assert dj.noderesults["Get image"]["url"] == obs.url(PATH)
    assert "pa55w0rd" not in (tmp_path / f".{IMAGE}.dojobber.json").read_text()
    assert obs.requests_for(PATH, "GET")[0].headers["Authorization"].startswith("Basic ")
    assert converge_once(get(obs, tmp_path, url=secret_url)).success()


def test_interrupted_transfer_resumes_where_it_broke_off(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    cut = 1_000_000
    obs.cut_after[PATH] = cut
    obs.cut_once.add(PATH)
    Get = get(obs, tmp_path)
    dj = converge_once(Get)
    err = dj.nodeexceptions["Get image"]
    assert isinstance(err, DownloadInterruptedError) and "rerun to resume" in str(err)
    assert not (tmp_path / IMAGE).exists()
    assert (tmp_path / f".{IMAGE}.part").stat().st_size == cut
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    assert (tmp_path / IMAGE).read_bytes() == DATA
    first, second = obs.requests_for(PATH, "GET")
    assert (first.status, first.body_bytes) == (200, cut)
    assert second.status == 206 and second.body_bytes == len(DATA) - cut
    assert second.headers["Range"] == f"bytes={cut}-"
    assert second.headers["If-Range"] == obs.etag(PATH)
    assert leftovers(tmp_path) == []
    assert not [t for t in threading.enumerate() if t.name == "dojobber-download-hash"]


def test_resume_within_one_run_through_retries(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    obs.cut_after[PATH] = 2_000_000
    obs.cut_once.add(PATH)
    dj = converge(get(obs, tmp_path), tries=2)
    assert dj.success(), dj.nodeexceptions
    assert image_gets(obs) == [2_000_000, len(DATA) - 2_000_000]


def test_changed_file_during_resume_is_downloaded_whole(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    obs.cut_after[PATH] = 1_000_000
    obs.cut_once.add(PATH)
    Get = get(obs, tmp_path)
    assert not converge_once(Get).success()
    new = os.urandom(len(DATA))
    publish(obs, new)
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    assert (tmp_path / IMAGE).read_bytes() == new
    resumed = obs.requests_for(PATH, "GET")[-1]
    assert "If-Range" in resumed.headers and resumed.status == 200
    assert resumed.body_bytes == len(new)


def test_corrupt_bytes_leave_nothing_at_the_final_path(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    obs.corrupt.add(PATH)
    dj = converge_once(get(obs, tmp_path))
    err = dj.nodeexceptions["Get image"]
    assert isinstance(err, ChecksumMismatchError)
    assert err.expected == sha(DATA) and err.actual != sha(DATA)
    assert err.expected in str(err) and err.actual in str(err)
    assert not (tmp_path / IMAGE).exists()
    assert leftovers(tmp_path) == []


def test_corrupt_bytes_do_not_replace_a_good_file(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    Get = get(obs, tmp_path)
    assert converge_once(Get).success()
    publish(obs, DATA[::-1])
    obs.corrupt.add(PATH)
    assert isinstance(converge_once(Get).nodeexceptions["Get image"], ChecksumMismatchError)
    assert (tmp_path / IMAGE).read_bytes() == DATA


def test_pinned_sha256_option(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA, checksum=False)
    err = converge_once(get(obs, tmp_path, sha256="0" * 64)).nodeexceptions["Get image"]
    assert isinstance(err, ChecksumMismatchError) and err.expected == "0" * 64
    dj = converge_once(get(obs, tmp_path, sha256=sha(DATA).upper()))
    assert dj.success(), dj.nodeexceptions


def test_without_any_checksum_size_is_checked_and_sha_recorded(obs: FakeObs,
                                                                tmp_path: Path) -> None:
    publish(obs, DATA, checksum=False)
    dj = converge_once(get(obs, tmp_path))
    assert dj.success(), dj.nodeexceptions
    assert dj.noderesults["Get image"]["sha256"] == sha(DATA)
    assert [r.status for r in obs.requests_for(PATH + ".sha256")] == [404]


def test_redirect_to_a_mirror_is_followed(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    mirror = "mirror/" + PATH
    obs.put_file(mirror, DATA)
    obs.redirect[PATH] = mirror
    Get = get(obs, tmp_path)
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    assert (tmp_path / IMAGE).read_bytes() == DATA
    assert [r.status for r in obs.requests_for(PATH, "GET")] == [302]
    assert image_gets(obs, mirror) == [len(DATA)]
    obs.clear_log()
    assert converge_once(Get).success()
    assert [r.status for r in obs.requests_for(mirror, "HEAD")] == [304]


@pytest.mark.slow
def test_xz_is_decompressed_on_the_fly(obs: FakeObs, tmp_path: Path) -> None:
    packed = lzma.compress(DATA)
    xz_path = PATH + ".xz"
    publish(obs, packed, path=xz_path)
    Get = get(obs, tmp_path, url=obs.url(xz_path), decompress=True)
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    assert (tmp_path / IMAGE).read_bytes() == DATA
    assert not (tmp_path / (IMAGE + ".xz")).exists()
    result = dj.noderesults["Get image"]
    assert result["sha256"] == sha(DATA) and result["source_sha256"] == sha(packed)
    assert result["decompressed"] is True and result["size"] == len(DATA)
    obs.clear_log()
    assert converge_once(Get).success()
    assert image_gets(obs, xz_path) == []


@pytest.mark.slow
def test_xz_with_wrong_bytes_fails_cleanly(obs: FakeObs, tmp_path: Path) -> None:
    xz_path = PATH + ".xz"
    publish(obs, lzma.compress(DATA), path=xz_path)
    obs.corrupt.add(xz_path)
    err = converge_once(get(obs, tmp_path, url=obs.url(xz_path), decompress=True)).nodeexceptions[
        "Get image"]
    assert isinstance(err, DownloadError) and "not valid xz data" in str(err)
    assert not (tmp_path / IMAGE).exists() and leftovers(tmp_path) == []


def test_file_already_there_is_adopted_without_download(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    (tmp_path / IMAGE).write_bytes(DATA)
    Get = get(obs, tmp_path)
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    assert image_gets(obs) == []
    obs.clear_log()
    assert converge_once(Get).success()
    assert [r.status for r in obs.requests_for(PATH, "HEAD")] == [304]


def test_progress_reaches_listeners(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    seen: list[tuple[str, float, float | None, str]] = []

    class Progress(Listener):
        def progress(self, job: str, done: float, total: float | None, unit: str) -> None:
            seen.append((job, done, total, unit))

    dj = DoJobber()
    dj.configure(get(obs, tmp_path), default_tries=1, listeners=[Progress()])
    dj.checknrun()
    assert dj.success(), dj.nodeexceptions
    assert seen[0] == ("Get image", 0, len(DATA), "B")
    assert seen[-1] == ("Get image", len(DATA), len(DATA), "B")
    assert [s[1] for s in seen] == sorted(s[1] for s in seen)


def test_missing_file_on_server(obs: FakeObs, tmp_path: Path) -> None:
    err = converge_once(get(obs, tmp_path)).nodeexceptions["Get image"]
    assert isinstance(err, UnknownResourceError) and err.status == 404


def test_url_or_source_is_needed(tmp_path: Path) -> None:
    nothing = Download.variant("Nothing", dest_dir=str(tmp_path))
    err = converge_once(nothing).nodeexceptions["Nothing"]
    assert isinstance(err, NoUrlError) and "url option" in str(err)
    with pytest.raises(MissingOptionError, match="dest_dir"):
        DoJobber().configure(Download.variant("No dir", url="http://127.0.0.1:9/x"))


def test_no_act_only_checks(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    dj = converge_once(get(obs, tmp_path), no_act=True)
    assert not dj.success()
    assert image_gets(obs) == [] and not any(tmp_path.iterdir())


def test_check_mode_plans_the_download(obs: FakeObs, tmp_path: Path) -> None:
    """A dry run says which image would be downloaded, how big (the OBS
    lookup said) and where, resuming a kept part; it fetches nothing."""
    build = obs.add_build(PROJECT, PACKAGE, files={IMAGE: DATA}, state="building")
    Find = ObsImage.variant("Find", project=PROJECT, package=PACKAGE, oscrc=False,
                            api_url=obs.api_url, download_url=obs.download_url)
    Get = Download.variant("Get", source=Find, dest_dir=str(tmp_path / "cache"))
    result = run_once(Get, no_act=True)
    assert (result["Find"].status, result["Get"].status) == (JobStatus.WOULD_RUN,
                                                             JobStatus.NOT_CHECKED)
    assert result["Find"].plan == (
        f"nothing to run: wait for OBS to build and publish {PACKAGE} in {PROJECT} "
        f"(images/x86_64); now: {message(result['Find'].exception)}")
    assert "building" in result["Find"].plan
    build.state = "published"
    result = run_once(Get, no_act=True)
    target = tmp_path / "cache" / IMAGE
    assert result.outcome is RunOutcome.CHANGES_PENDING
    assert result["Get"].plan == (f"download {obs.url(PATH)} ({size_text(len(DATA))}) to "
                                  f"{target}; now: Get: {target} is not downloaded yet")
    assert size_text(len(DATA)) == "3.0 MiB"
    # A part kept from a broken transfer: the plan says it resumes.
    target.parent.mkdir()
    (target.parent / f".{IMAGE}.part").write_bytes(DATA[: 1 << 20])
    result = run_once(Get, no_act=True)
    assert result["Get"].plan is not None
    assert ", resuming after the 1.0 MiB kept; now:" in result["Get"].plan
    assert image_gets(obs) == [] and not target.exists()  # the dry runs fetched nothing
    # A Download with nothing to say where from: the plan says Run would fail.
    nothing = Download.variant("Nothing", dest_dir=str(tmp_path))
    planned = run_once(nothing, no_act=True)["Nothing"]
    assert planned.status is JobStatus.WOULD_RUN and planned.plan is not None
    assert planned.plan.startswith(f"download into {tmp_path}, but Run would fail as the "
                                   "Check did: Nothing: set the url option")


def test_bad_sha256_option_and_failing_checksum_file(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    err = converge_once(get(obs, tmp_path, sha256="abc")).nodeexceptions["Get image"]
    assert "not 64 hex digits" in str(err) and "Get image" in str(err)
    obs.fail[PATH + ".sha256"] = (500, "internal", "disk on fire")
    err = converge_once(get(obs, tmp_path)).nodeexceptions["Get image"]
    assert "HTTP 500" in str(err) and "disk on fire" in str(err)
    assert not (tmp_path / IMAGE).exists()


@pytest.mark.slow
def test_example_runs_against_the_fake(obs: FakeObs, tmp_path: Path) -> None:
    obs.add_build(PROJECT, PACKAGE, repository="images_x", files={IMAGE: DATA})
    example = Path(__file__).resolve().parent.parent / "examples" / "obs_download.py"
    argv = [sys.executable, str(example), "--project", PROJECT, "--package", PACKAGE,
            "--repository", "images_x", "--api-url", obs.api_url,
            "--download-url", obs.download_url, "--dest", str(tmp_path)]
    for _ in range(2):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert str(tmp_path / IMAGE) in done.stdout and sha(DATA) in done.stdout
    assert image_gets(obs, f"{published_dir(PROJECT, 'images_x')}/{IMAGE}") == [len(DATA)]


def test_a_second_concurrent_download_of_the_same_file_is_refused(obs: FakeObs,
                                                                   tmp_path: Path) -> None:
    publish(obs, DATA)
    lock = tmp_path / f".{IMAGE}.lock"
    with open(lock, "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        err = converge_once(get(obs, tmp_path)).nodeexceptions["Get image"]
        assert "another download" in str(err) and str(lock) in str(err)
        assert image_gets(obs) == []
    dj = converge_once(get(obs, tmp_path))
    assert dj.success(), dj.nodeexceptions


def test_chunked_body_is_downloaded_verified_and_resumed(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    obs.chunked.add(PATH)
    cut = 1_000_000
    obs.cut_after[PATH] = cut
    obs.cut_once.add(PATH)
    Get = get(obs, tmp_path)
    err = converge_once(Get).nodeexceptions["Get image"]
    assert isinstance(err, DownloadInterruptedError) and "IncompleteRead" in str(err)
    # every byte that arrived before the break is kept, even mid-buffer
    assert (tmp_path / f".{IMAGE}.part").stat().st_size == cut
    dj = converge_once(Get)
    assert dj.success(), dj.nodeexceptions
    assert (tmp_path / IMAGE).read_bytes() == DATA
    assert image_gets(obs) == [cut, len(DATA) - cut]
    assert obs.requests_for(PATH, "GET")[1].headers["Range"] == f"bytes={cut}-"


def test_content_encoded_body_is_stored_as_sent(obs: FakeObs, tmp_path: Path) -> None:
    packed = gzip.compress(DATA)
    gz_path = PATH + ".gz"
    publish(obs, packed, path=gz_path)
    obs.content_encoding[gz_path] = "gzip"
    dj = converge_once(get(obs, tmp_path, url=obs.url(gz_path)))
    assert dj.success(), dj.nodeexceptions
    assert (tmp_path / (IMAGE + ".gz")).read_bytes() == packed
    assert dj.noderesults["Get image"]["sha256"] == sha(packed)


FULL_DISK = """
import resource, signal, sys
from dojobber import DoJobber
from dojobber.contrib.download import Download
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
url, dest, decompress = sys.argv[1], sys.argv[2], sys.argv[3] == "xz"
dj = DoJobber()
dj.configure(Download.variant("Get image", url=url, dest_dir=dest, decompress=decompress),
             default_tries=1)
dj.checknrun()
print(repr(dj.nodeexceptions["Get image"]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["plain", "xz"])
def test_a_write_error_fails_cleanly_and_leaves_nothing(obs: FakeObs, tmp_path: Path,
                                                        kind: str) -> None:
    """Files may not grow past 1 MiB in the child (RLIMIT_FSIZE): writing the
    3 MiB image fails with EFBIG, on the receiving thread (plain) or on the
    hashing thread (xz)."""
    path = PATH if kind == "plain" else PATH + ".xz"
    publish(obs, DATA if kind == "plain" else lzma.compress(DATA), path=path)
    done = subprocess.run([sys.executable, "-c", FULL_DISK, obs.url(path), str(tmp_path), kind],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "DownloadError" in done.stdout and "cannot write" in done.stdout, done.stdout
    assert "free some space" in done.stdout
    assert not (tmp_path / IMAGE).exists() and leftovers(tmp_path) == []


def test_a_bad_chunk_size_is_named(obs: FakeObs, tmp_path: Path) -> None:
    publish(obs, DATA)
    err = converge_once(get(obs, tmp_path, chunk_size=0)).nodeexceptions["Get image"]
    assert isinstance(err, DownloadError) and "chunk_size option 0" in str(err)
    assert image_gets(obs) == []


def test_example_fake_serves_the_same_bytes_into_its_own_directory(tmp_path: Path) -> None:
    """``obs_download.py --fake``: a rerun finds the file in place (the fake
    image is the same bytes every time) and nothing lands in the real image
    cache."""
    example = Path(__file__).resolve().parent.parent / "examples" / "obs_download.py"
    env = {**os.environ, "HOME": str(tmp_path)}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, str(example), "--fake"], capture_output=True,
                              text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
        runs.append(done.stdout)
    assert runs[0] == runs[1]  # same path, same sha256, same size
    [image] = (tmp_path / ".cache" / "dojobber" / "fake-images").glob("*.qcow2")
    assert str(image) in runs[0]
    assert not (tmp_path / ".cache" / "dojobber" / "images").exists()
    first = image.stat()
    done = subprocess.run([sys.executable, str(example), "--fake", "-v"], capture_output=True,
                          text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    again = image.stat()
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    assert "Download openSUSE-Leap-15.6-JeOS.run" not in done.stderr  # nothing ran
