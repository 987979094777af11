"""How long to wait before trying again: one policy type for every retry.

A :class:`Backoff` is used in three places:

- between the rounds of :meth:`DoJobber.converge` (``backoff=``, the CLI's
  ``--backoff INITIAL..MAX``);
- between the tries of one job within a run (a job's ``RETRY_DELAY`` or
  ``configure(default_retry_delay=...)`` may be a :class:`Backoff` as well
  as a number of seconds; the n-th retry waits ``delay(n)``);
- between the attempts of a run request on the board
  (``Board.post(retry_delay=...)``, ``dojobber post --retry-delay 1m..1h``).

The n-th wait (1-based) is ``initial * factor ** (n - 1)``, at most
``max``, then spread by ``jitter``: a random fraction of up to ``jitter``
of the wait is added or taken away, so that many agents started at once do
not retry in step.  A plain number ``s`` is the constant policy
``Backoff(s, factor=1, max=s, jitter=0)`` (:meth:`Backoff.of`).

Durations are written ``30s``, ``5m``, ``1h``, ``1h30m`` or as plain
seconds (:func:`parse_duration`); a policy on the command line is
``INITIAL..MAX`` (``5s..10m``) or a single duration (:meth:`Backoff.parse`).
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["Backoff", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?", re.IGNORECASE)


def parse_duration(text: str | float | timedelta, what: str = "duration") -> float:
    """Seconds in ``text``: ``90``, ``1.5``, ``30s``, ``5m``, ``1h``,
    ``1h30m``, ``250ms``, or a number / :class:`~datetime.timedelta`.

    Raises :class:`ValueError` naming ``what`` and the text when it is not a
    duration or is negative.
    """
    if isinstance(text, timedelta):
        seconds = text.total_seconds()
    elif isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    elif isinstance(text, str):
        rest = text.strip()
        seconds = 0.0
        pos = 0
        parts = 0
        while pos < len(rest):
            match = _PART.match(rest, pos)
            if match is None:
                break
            unit = (match.group(2) or "s").lower()
            if match.group(2) is None and (parts or match.end() != len(rest)):
                break  # a bare number only alone ("90", not "90 5m" or "5m2")
            seconds += float(match.group(1)) * _UNITS[unit]
            pos = match.end()
            while pos < len(rest) and rest[pos] == " ":
                pos += 1
            parts += 1
        if not parts or pos != len(rest):
            raise ValueError(
                f"{what}: {text!r} is not a duration; write seconds or e.g. 30s, 5m, 1h, 1h30m"
            )
    else:
        raise ValueError(f"{what}: {text!r} is not a duration; write e.g. 30s, 5m, 1h")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what}: {text!r} must be a finite duration >= 0")
    return seconds


@dataclass(frozen=True)
class Backoff:
    """Waits that grow: ``initial``, then times ``factor`` each time, at
    most ``max`` seconds, spread by up to ``jitter`` (a fraction, 0..1).

    ``Backoff()`` is the policy between converge rounds: 5 s, 10 s, 20 s,
    ... up to 5 minutes, +-10%.  ``delay(n)`` is the n-th wait.
    """

    initial: float = 5.0
    factor: float = 2.0
    max: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        for name in ("initial", "factor", "max", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"Backoff {name}={value!r}: give a finite number >= 0")
        if self.factor < 1:
            raise ValueError(f"Backoff factor={self.factor!r}: give a factor >= 1")
        if self.jitter > 1:
            raise ValueError(f"Backoff jitter={self.jitter!r}: give a fraction from 0 to 1")
        if self.max < self.initial:
            raise ValueError(
                f"Backoff max={self.max!r} is below initial={self.initial!r}; "
                "give max >= initial"
            )

    @classmethod
    def of(cls, value: Backoff | float | timedelta | str) -> Backoff:
        """``value`` as a policy: a :class:`Backoff` as it is, a number (or
        duration) as a constant wait without jitter, a string as
        :meth:`parse` reads it."""
        if isinstance(value, Backoff):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        seconds = parse_duration(value, "backoff")
        return cls(seconds, 1.0, seconds, 0.0)

    @classmethod
    def parse(cls, text: str, jitter: float = 0.1) -> Backoff:
        """``INITIAL..MAX`` (``5s..10m``: doubling from 5 s to 10 minutes)
        or one duration (``30s``: always 30 s); raises :class:`ValueError`
        saying what to write."""
        first, dots, last = text.partition("..")
        initial = parse_duration(first, "backoff INITIAL")
        if not dots:
            return cls(initial, 1.0, initial, 0.0)
        most = parse_duration(last, "backoff MAX")
        if most < initial:
            raise ValueError(
                f"backoff {text!r}: MAX is below INITIAL; write INITIAL..MAX, e.g. 5s..10m"
            )
        return cls(initial, 2.0, most, jitter)

    @property
    def constant(self) -> bool:
        """Every wait is the same (a plain number of seconds)."""
        return (self.factor == 1 or self.initial == self.max) and self.jitter == 0

    def base(self, n: int) -> float:
        """The n-th wait (1-based) before jitter."""
        if n <= 1 or self.factor == 1:
            return min(self.initial, self.max)
        if self.initial == 0:
            return 0.0
        # (compare logarithms first: no overflow for a large n)
        if (n - 1) * math.log(self.factor) >= math.log(self.max / self.initial):
            return self.max
        return min(self.max, self.initial * self.factor ** (n - 1))

    def delay(self, n: int, rng: random.Random | None = None) -> float:
        """The n-th wait (1-based) in seconds, jitter applied (from ``rng``,
        else the :mod:`random` module), never above ``max`` nor below 0."""
        wait = self.base(n)
        if self.jitter and wait:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            wait = min(self.max, max(0.0, wait * (1 + spread)))
        return wait

    def __str__(self) -> str:
        if self.constant:
            return f"{self.initial:g}s"
        jitter = f" +-{self.jitter:.0%}" if self.jitter else ""
        return f"{self.initial:g}s..{self.max:g}s (x{self.factor:g}{jitter})"
