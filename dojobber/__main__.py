"""``python -m dojobber``: the ``dojobber`` command line."""

from ._main import main

raise SystemExit(main())
