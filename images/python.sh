#!/bin/sh
# Python 3.11 and the `valley` user for an image whose base may have no Python: a python:3.11 base
# brings it, a plain Debian bookworm base gets Debian's from apt. `--venv DIR` also makes a virtual
# environment there (the images install into it, whatever Python the base has). Every valley pod
# runs as uid/gid 10001. Run by the Dockerfiles as root, during the build.
set -eu
venv=""
if [ "${1:-}" = --venv ]; then venv="$2"; fi
if ! command -v python3 >/dev/null || { [ -n "$venv" ] && ! python3 -c 'import ensurepip' 2>/dev/null; }; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 ${venv:+python3-venv} >/dev/null
  rm -rf /var/lib/apt/lists/*
fi
python3 -c 'import sys; v = sys.version_info[:2]; assert v == (3, 11), f"valley images need Python 3.11 (the locked wheels are cp311); the base has {v}"'
command -v python >/dev/null || ln -s "$(command -v python3)" /usr/local/bin/python
if [ -n "$venv" ]; then python3 -m venv "$venv"; fi
useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin valley
