#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian/Ubuntu machine with Python 3.11:
# system packages (real Fashion-MNIST, Chromium for browser tests), a virtual environment, the package.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$(command -v python3.11 || command -v python3)"

apt_needed=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || apt_needed+=(dataset-fashion-mnist)
if [ "${WITH_BROWSER:-0}" = 1 ] && [ ! -x /usr/bin/chromium ]; then apt_needed+=(chromium); fi
if [ ${#apt_needed[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${apt_needed[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_needed[@]}" >/dev/null
fi

# Rebuild the environment only when the requirements change. requirements-lock.txt pins every transitive version
# (uv pip compile output, `make lock`), so a rebuild installs the same set as the last one.
want="$(cat requirements.txt requirements-dev.txt requirements-cluster.txt requirements-lock.txt pyproject.toml \
        | sha256sum | cut -c1-16)"
if [ "$(cat "$VENV/.cnnviz-stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: creating $VENV (torch is large: this takes a few minutes the first time)"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q -r requirements.txt -r requirements-dev.txt -c requirements-lock.txt
  "$VENV/bin/pip" check >/dev/null || { "$VENV/bin/pip" check; exit 1; }
  echo "$want" > "$VENV/.cnnviz-stamp"
fi
# The optional Ray extra (`--ray`), added on top when asked for (make test, CI): the plain set-up stays without it.
if [ "${WITH_CLUSTER:-0}" = 1 ] && [ "$(cat "$VENV/.cnnviz-cluster-stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: adding Ray (requirements-cluster.txt)"
  "$VENV/bin/pip" install -q -r requirements-cluster.txt -c requirements-lock.txt
  "$VENV/bin/pip" check >/dev/null || { "$VENV/bin/pip" check; exit 1; }
  echo "$want" > "$VENV/.cnnviz-cluster-stamp"
fi
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e . >/dev/null
