#!/bin/sh
# Install the Debian packages named after the first two arguments, when
# they are missing.  As root it runs apt-get; otherwise it says what to
# install and exits with STATUS (0: go on without them, 1: fail).
#
#   sh scripts/apt-install.sh LABEL STATUS PACKAGE...
set -eu
label=$1
status=$2
shift 2
missing=""
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$label: no apt-get here; install the equivalents of:$missing" >&2
    exit "$status"
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$label: missing Debian packages:$missing" >&2
    echo "$label: run: sudo apt-get install -y --no-install-recommends$missing" >&2
    exit "$status"
fi
echo "$label: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
