#!/bin/sh
# Installs sysgate's build and test dependencies from Debian 12 packages,
# only those that are missing. Needs root for apt-get.
set -eu
PKGS="build-essential cmake pkg-config libseccomp-dev libjansson-dev libcmocka-dev
      libnng-dev libprotobuf-c-dev protobuf-c-compiler python3 python3-pytest util-linux strace
      python3-cloudpickle python3-setuptools clang libclang-rt-14-dev golang-go"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing (run as root)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
