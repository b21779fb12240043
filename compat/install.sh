#!/usr/bin/env bash
# Installs what weft's tests run against: the official Fabric packages at the pinned
# versions in requirements.txt and package-lock.json, and Debian's prometheus,
# prometheus-alertmanager, docker.io, containerd, docker-compose (which brings the
# compose-spec schema and python3-jsonschema the compose tests validate with) and
# postgresql. Idempotent: a second run with
# everything in place only checks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

say() { printf 'compat: %s\n' "$*"; }

# Python: Fabric's published descriptors, in a venv beside this script.
if ! .venv/bin/python -c 'import fabric_protos, fabric_chaincode_python, openapi_spec_validator, kubernetes_validate, helm_python' >/dev/null 2>&1; then
  say "installing Python packages into compat/.venv"
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    # Debian ships venv separately.
    say "python3 -m venv failed; installing python3-venv"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    rm -rf .venv
    python3 -m venv .venv
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --pre -r requirements.txt
fi

# Node: @hyperledger/fabric-gateway and the curve library its signer uses.
if ! node -e 'require.resolve("@hyperledger/fabric-gateway")' >/dev/null 2>&1 \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages into compat/node_modules"
  npm ci --no-audit --no-fund --loglevel=error
fi
# Debian packages, installed without starting their services (weft's tests
# start their own Prometheus, Alertmanager and dockerd).
apt_install() {
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    echo 'exit 101' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if [ -n "$made_policy" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
}

# Prometheus and Alertmanager (`weft monitor`, its tests, promtool/amtool checks of the rules).
if ! command -v promtool >/dev/null 2>&1 || ! command -v amtool >/dev/null 2>&1 \
   || ! { command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1; }; then
  say "installing prometheus and prometheus-alertmanager (Debian packages)"
  apt_install prometheus prometheus-alertmanager
fi
# A Docker engine and client (`weft image`, the containers tests).
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  say "installing docker.io and containerd (Debian packages)"
  apt_install docker.io containerd
fi
if ! command -v docker-compose >/dev/null 2>&1; then
  say "installing docker-compose (Debian package)"
  apt_install docker-compose
fi

# podman (`podman kube play` runs the objects of `weft deploy k8s --podman`;
# its tests run their own podman with a private storage root).
if ! command -v podman >/dev/null 2>&1 || ! command -v catatonit >/dev/null 2>&1 \
   || ! command -v runc >/dev/null 2>&1 || [ ! -x /usr/lib/podman/netavark ]; then
  say "installing podman, runc, catatonit, netavark and aardvark-dns (Debian packages)"
  apt_install podman runc catatonit netavark aardvark-dns
fi

# PostgreSQL (`weft events sink` and its tests, which run their own server
# with initdb and pg_ctl in a temporary directory).
if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 && ! command -v pg_ctl >/dev/null 2>&1; then
  say "installing postgresql (Debian package)"
  apt_install postgresql
fi

say "ready (python: $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("hyperledger-fabric-protos"))'), fabric-gateway: $(node -p 'require("@hyperledger/fabric-gateway/package.json").version'), $(promtool --version 2>&1 | head -1))"
