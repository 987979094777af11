"""``dojobber.main``: the command line, without importing click before use.

Export as ``from ._main import main`` in ``dojobber/__init__.py``: the real
work is in :mod:`dojobber.cli`, which needs the ``cli`` extra.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .job import Job

__all__ = ["main"]


def main(
    target: Sequence[str] | type[Job] | None = None,
    argv: Sequence[str] | None = None,
    *,
    prog_name: str | None = None,
) -> int:
    """Run the ``dojobber`` command line and return its exit status.

    ``dojobber.main()`` reads ``sys.argv``; ``dojobber.main(["run", "x.py:Root"])``
    runs those words; ``raise SystemExit(dojobber.main(Root))`` in a script
    gives it the options of ``dojobber run`` for ``Root``.  Exit status: 0
    converged (``-n``: nothing would change), 1 not converged (``-n``: a
    job could not be checked), 7 changes pending (``-n``), 2
    usage/definition/records error, 3 lock held, 4 stopped, 130
    interrupted (see ``dojobber.cli``).
    """
    try:
        from .cli import main as cli_main
    except ImportError as err:
        sys.stderr.write(
            f"Error: the dojobber command line needs the 'cli' extra ({err}); "
            "install it with: pip install 'dojobber[cli]'\n"
        )
        return 2
    return cli_main(target, argv, prog_name=prog_name)


def entry_point() -> None:
    """The ``dojobber`` console script (``[project.scripts]``)."""
    raise SystemExit(main())
