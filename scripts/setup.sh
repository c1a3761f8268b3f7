#!/usr/bin/env bash
# Prepare a fresh Debian 12 machine for pinnace: the real runtime parts from Debian, and a
# virtualenv (.venv) with pinnace installed in editable mode plus its development tools.
# Idempotent: packages already installed are not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(runc crun conmon containernetworking-plugins docker-registry busybox-static
          apache2-utils openssl iproute2 iptables gcc libc6-dev)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev]'
echo "setup: ready (.venv/bin/pinnaced, .venv/bin/pinnace)"
