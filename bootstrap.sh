#!/usr/bin/env bash
# Creates .venv (Python 3.10) and installs the locked dependencies and this
# project into it. Idempotent: does nothing when .venv already matches
# requirements.lock. Needs only the OS image: pyenv's Python 3.10 (selected
# by .python-version) or a python3.10 on PATH.
set -euo pipefail
cd "$(dirname "$0")"

lock=requirements.lock
stamp=.venv/.requirements.lock.sha256
want=$(sha256sum "$lock" pyproject.toml bootstrap.sh | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi

find_python() {
  local candidate
  for candidate in "$(command -v pyenv >/dev/null 2>&1 && pyenv which python3.10 2>/dev/null)" \
                   "$(command -v python3.10 2>/dev/null)"; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
  python=$(find_python) || {
    echo "bootstrap: Python 3.10 not found (tried pyenv and python3.10 on PATH)." >&2
    echo "bootstrap: TFX 1.16 supports Python 3.9-3.10; install 3.10 (e.g. 'pyenv install 3.10')." >&2
    exit 1
  }
  echo "bootstrap: creating .venv with $python"
  rm -rf .venv
  "$python" -m venv .venv
fi

echo "bootstrap: installing $lock into .venv (a few minutes on a fresh machine)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r "$lock"
# compat mode puts the repo root on the path, so packages added later
# (components/*, models/ ...) are importable without reinstalling.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  --config-settings editable_mode=compat -e .
.venv/bin/python -m pip check
echo "$want" > "$stamp"
echo "bootstrap: .venv ready"
