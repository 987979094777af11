"""Errors of the bundled OBS lookup and download jobs.

Every message names the job and says what to do; none holds a password or
an ``Authorization`` header (the jobs raise these ``from None`` so no
request object with credentials hangs off them).  This module needs no
optional package.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import GiveUp, RunError

__all__ = [
    "AmbiguousImageError",
    "BuildFailedError",
    "BuildNotReadyError",
    "ChecksumMismatchError",
    "ContribError",
    "CredentialsError",
    "DownloadError",
    "DownloadInterruptedError",
    "HTTPStatusError",
    "ImageNotFoundError",
    "NoUrlError",
    "NotDownloadedError",
    "ObsAuthError",
    "ObsError",
    "RemoteChangedError",
    "RepositoryNotFoundError",
    "RepositoryNotReadyError",
    "ServerError",
    "SizeMismatchError",
    "TransportError",
    "UnknownResourceError",
]


class ContribError(RunError):
    """Base of the bundled jobs' run-time errors; ``job`` names the job."""

    def __init__(self, job: str, message: str) -> None:
        self.job = job
        super().__init__(f"{job}: {message}")


# -- HTTP -------------------------------------------------------------------
class TransportError(ContribError):
    """The server could not be reached or the connection broke."""

    def __init__(self, job: str, url: str, reason: str) -> None:
        self.url = url
        super().__init__(
            job, f"cannot reach {url}: {reason}; check the URL option and the network, "
            "then rerun"
        )


class HTTPStatusError(ContribError):
    """The server answered with an HTTP error status."""

    hint = "check the job's options and rerun"

    def __init__(self, job: str, url: str, status: int, summary: str = "") -> None:
        self.url = url
        self.status = status
        self.summary = summary
        said = f" ({summary})" if summary else ""
        super().__init__(job, f"GET {url} answered HTTP {status}{said}; {self.hint}")


class ObsAuthError(HTTPStatusError, GiveUp):
    """401/403: the server wants (other) credentials."""

    hint = (
        "give credentials=Credentials(user, password) to the job, or put user= and "
        "pass= in the [api URL] section of ~/.config/osc/oscrc (or ~/.oscrc); the "
        "public read-only API needs none"
    )


class UnknownResourceError(HTTPStatusError, GiveUp):
    """404: unknown project, package, repository, architecture or file."""

    hint = "check the project, package, repository and arch options (names are case-sensitive)"


class ServerError(HTTPStatusError):
    """5xx: the server failed; usually temporary."""

    hint = "the server failed; rerun later"


# -- OBS lookup -------------------------------------------------------------
class ObsError(ContribError):
    """Base of the OBS lookup job's state errors."""


class RepositoryNotFoundError(ObsError, GiveUp):
    """``_result`` lists no such repository/arch for the project."""

    def __init__(self, job: str, project: str, repository: str, arch: str,
                 known: Sequence[str]) -> None:
        self.project, self.repository, self.arch = project, repository, arch
        listed = ", ".join(known) or "none"
        super().__init__(
            job, f"project {project!r} has no repository {repository!r} for arch "
            f"{arch!r} (it has: {listed}); set the repository and arch options"
        )


class RepositoryNotReadyError(ObsError):
    """The repository is not published yet, or is dirty."""

    def __init__(self, job: str, project: str, repository: str, arch: str,
                 state: str, dirty: bool) -> None:
        self.state, self.dirty = state, dirty
        what = f"state {state!r}" + (", dirty" if dirty else "")
        hint = ("publishing is disabled for it: enable publishing in the project"
                if state == "unpublished" else "OBS is still working on it; rerun later")
        super().__init__(
            job, f"repository {project}/{repository}/{arch} is not ready ({what}); {hint}"
        )


class BuildNotReadyError(ObsError):
    """The package is still being scheduled, built or signed: rerun later."""

    def __init__(self, job: str, package: str, code: str, details: str = "") -> None:
        self.package, self.code, self.details = package, code, details
        said = f" ({details})" if details else ""
        super().__init__(
            job, f"package {package!r} is {code}{said}, not succeeded yet; rerun later"
        )


class BuildFailedError(ObsError):
    """The package build failed, is unresolvable, broken, disabled or excluded."""

    def __init__(self, job: str, package: str, code: str, details: str = "") -> None:
        self.package, self.code, self.details = package, code, details
        said = f" ({details})" if details else ""
        super().__init__(
            job, f"package {package!r} is {code}{said}; fix the build in OBS "
            "(see its build log), then rerun"
        )


class ImageNotFoundError(ObsError):
    """The binary list holds no image of an accepted kind."""

    def __init__(self, job: str, extensions: Sequence[str], files: Sequence[str]) -> None:
        self.files = list(files)
        super().__init__(
            job, f"no image ending in {', '.join('.' + e for e in extensions)} among the "
            f"built files ({', '.join(files) or 'none'}); set preferred_extension"
        )


class AmbiguousImageError(ObsError, GiveUp):
    """Several images of the preferred kind: the job cannot choose."""

    def __init__(self, job: str, candidates: Sequence[str]) -> None:
        self.candidates = list(candidates)
        super().__init__(
            job, f"several images to choose from: {', '.join(candidates)}; name one with "
            "the filename option (a glob such as '*-kvm*') or set preferred_extension"
        )


class CredentialsError(ObsError, GiveUp):
    """Credentials were asked for but cannot be read."""


# -- download ---------------------------------------------------------------
class DownloadError(ContribError):
    """Base of the download job's errors."""


class NoUrlError(DownloadError):
    """Neither ``url`` nor a ``source`` job result gives a URL."""


class NotDownloadedError(DownloadError):
    """Check: the file is not (completely, correctly) at its final path."""


class RemoteChangedError(DownloadError):
    """Check: the server has a newer version than the local file."""


class DownloadInterruptedError(DownloadError):
    """The transfer broke off; the partial file is kept for a resume."""


class SizeMismatchError(DownloadError):
    """The transfer ended with another size than announced."""

    def __init__(self, job: str, url: str, expected: int, actual: int) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(
            job, f"{url}: expected {expected} bytes, got {actual}; the partial file was "
            "deleted, rerun to download again"
        )


class ChecksumMismatchError(DownloadError):
    """The bytes received do not have the expected sha256."""

    def __init__(self, job: str, url: str, expected: str, actual: str) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(
            job, f"{url}: sha256 mismatch: expected {expected}, got {actual}; the "
            "downloaded file was deleted. Rerun; if it persists, the server or the "
            "sha256 option is wrong"
        )
