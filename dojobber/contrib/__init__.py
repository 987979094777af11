"""Bundled jobs for the Kanku workflow: OBS image -> download -> VM -> SSH.

Each module imports its optional dependency at its top, so import it only
with the matching extra installed:

* :mod:`dojobber.contrib.obs` and :mod:`dojobber.contrib.download` —
  ``pip install 'dojobber[obs]'`` (requests)
* :mod:`dojobber.contrib.libvirt` — ``pip install 'dojobber[libvirt]'``
  (libvirt-python)
* :mod:`dojobber.contrib.ssh` — ``pip install 'dojobber[ssh]'`` (paramiko)

``import dojobber`` never imports this package's modules.  The jobs pass
what they learn to later jobs through ``global_storage["kanku"]`` (see
docs/obs.rst, docs/libvirt.rst and docs/ssh.rst).
"""
