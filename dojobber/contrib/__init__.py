"""Bundled jobs for common workflows (the Kanku flow: OBS image -> download -> VM).

Each module imports its optional dependencies at its top, so import it only
with the matching extra installed: :mod:`dojobber.contrib.obs` and
:mod:`dojobber.contrib.download` need ``pip install dojobber[obs]``
(requests).  ``import dojobber`` never imports this package's modules.
"""
