#!/usr/bin/env bash
# Creates .venv (Python 3.10) and installs the locked dependencies and this
# project into it. Idempotent: does nothing when .venv already matches
# requirements.lock. Finds Python 3.10 as pyenv's (selected by
# .python-version), a python3.10 on PATH, or one uv manages; where there is
# none and uv is on PATH, installs one with `uv python install 3.10`.
# Otherwise it stops and says how to get one (a stock Debian 12 has 3.11).
set -euo pipefail
cd "$(dirname "$0")"

lock=requirements.lock
stamp=.venv/.requirements.lock.sha256
want=$(sha256sum "$lock" pyproject.toml bootstrap.sh | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi

is_python310() {
  [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null
}

find_python() {
  local candidate
  for candidate in "$(command -v pyenv >/dev/null 2>&1 && pyenv which python3.10 2>/dev/null)" \
                   "$(command -v python3.10 2>/dev/null)"; do
    if is_python310 "$candidate"; then
      echo "$candidate"; return 0
    fi
  done
  return 1
}

# uv's Python 3.10, if uv is on PATH and has one. `--system` keeps uv from
# answering with a virtual environment's interpreter (it would otherwise
# report this very .venv), and the check below refuses one all the same.
find_uv_python() {
  local candidate
  command -v uv >/dev/null 2>&1 || return 1
  candidate=$(uv python find --system 3.10 2>/dev/null) || return 1
  if is_python310 "$candidate" &&
     "$candidate" -c 'import sys; assert sys.prefix == sys.base_prefix' 2>/dev/null; then
    echo "$candidate"; return 0
  fi
  return 1
}

how_to_get_python() {
  cat >&2 <<'EOF'
bootstrap: TFX 1.16 supports Python 3.9-3.10, and this project's lock is for 3.10;
bootstrap: a stock Debian 12 has only Python 3.11. Get 3.10 in one of these ways, then run ./bootstrap.sh again:
bootstrap:   uv:    install uv (https://docs.astral.sh/uv/; e.g. 'apt-get install pipx && pipx install uv',
bootstrap:          which puts it in ~/.local/bin); with uv on PATH, ./bootstrap.sh runs
bootstrap:          'uv python install 3.10' itself
bootstrap:   pyenv: 'pyenv install 3.10' (its build needs: apt-get install build-essential libssl-dev
bootstrap:          zlib1g-dev libbz2-dev libreadline-dev libsqlite3-dev libffi-dev liblzma-dev tk-dev);
bootstrap:          .python-version selects it
bootstrap:   any other Python 3.10 as 'python3.10' on PATH
EOF
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
  if ! python=$(find_python) && ! python=$(find_uv_python); then
    if command -v uv >/dev/null 2>&1; then
      echo "bootstrap: Python 3.10 not found (tried pyenv and python3.10 on PATH); installing it with 'uv python install 3.10'"
      if uv python install 3.10 && python=$(find_uv_python); then
        echo "bootstrap: uv installed $python"
      else
        echo "bootstrap: 'uv python install 3.10' did not give a Python 3.10 (it downloads one: is the network reachable?)." >&2
        how_to_get_python
        exit 1
      fi
    else
      echo "bootstrap: Python 3.10 not found (tried pyenv, python3.10 on PATH; uv is not on PATH)." >&2
      how_to_get_python
      exit 1
    fi
  fi
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
