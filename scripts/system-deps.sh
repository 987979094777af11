#!/bin/sh
# Install the Debian packages the test suite needs, when they are missing.
# As root it runs apt-get; otherwise it says what to install and goes on
# (tests that need a missing program then fail with a message naming it).
set -eu
exec sh "$(dirname "$0")/apt-install.sh" system-deps 0 \
    graphviz libvirt-dev pkg-config openssh-server openssh-client xz-utils curl \
    postgresql chromium qemu-utils
