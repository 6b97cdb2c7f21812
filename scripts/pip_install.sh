#!/usr/bin/env bash
# pip install into a virtualenv, tolerant of a flaky network: CI once failed on a read that
# broke off mid-download from PyPI (stop 20), which says nothing about the code under test.
# pip retries each connection itself (--retries, --timeout); a download cut mid-stream is not
# retried by pip, so the whole install is tried up to three times, 20 s and 40 s apart. pip
# keeps what it already installed, so a retry only fetches what is missing.
#   usage: scripts/pip_install.sh VENV_DIR PIP_ARGS...
set -uo pipefail
venv="$1"
shift
for attempt in 1 2 3; do
  if "$venv/bin/pip" install -q --disable-pip-version-check --retries 10 --timeout 60 "$@"; then
    exit 0
  fi
  if [ "$attempt" -lt 3 ]; then
    echo "pip install $* failed (attempt $attempt of 3); retrying in $((attempt * 20)) s" >&2
    sleep $((attempt * 20))
  fi
done
echo "pip install $* failed three times" >&2
exit 1
