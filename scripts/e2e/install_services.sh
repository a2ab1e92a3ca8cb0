#!/usr/bin/env bash
# Installs Debian's PostgreSQL and Redis for the production-shaped end-to-end stack (tests/e2e/test_production_stack.py).
# The stack starts its own throw-away PostgreSQL cluster and Redis server on free ports and stops them afterwards:
# nothing here starts or enables a system service. Idempotent and quiet when both are there; needs root (CI runs
# as root).
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install_services.sh: ${missing[*]} missing and installing needs root: apt-get install ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d 101: the packages' post-install scripts must not start system-wide servers on the default ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    created_policy=1
fi
trap '[ "$created_policy" -eq 0 ] || rm -f "$policy"' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
redis-server --version
