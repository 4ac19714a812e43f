#!/usr/bin/env bash
# Makes sure Dawn (the `webgpu` npm package) can find a Vulkan adapter.
# On a machine with a GPU driver this does nothing. On a CPU-only Debian/Ubuntu machine it
# installs Mesa's lavapipe (software Vulkan). Debian bookworm ships Mesa 22.3, which Dawn
# refuses, so on bookworm the driver comes from bookworm-backports (Mesa 25).
# Idempotent: a second run finds the adapter and returns at once.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

# 0: an adapter; 1: none; 2: Dawn itself did not load (node_modules missing: `npm ci` first).
# `timeout`: native Vulkan enumeration can block the probe's own timer.
probe() { timeout -k 5 60 node "$here/scripts/probe-adapter.mjs" "$@"; }

rc=0; probe >/dev/null 2>&1 || rc=$?
if [ "$rc" = 0 ]; then echo "setup-vulkan: a WebGPU adapter is available"; exit 0; fi
if [ "$rc" = 2 ]; then
  echo "setup-vulkan: the webgpu package (Dawn) did not load; run \`npm ci\` first:" >&2
  probe >&2 || true
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-vulkan: no WebGPU adapter found and this is not a Debian/Ubuntu machine." >&2
  echo "  Install a Vulkan driver (a GPU driver, or Mesa >= 23 with lavapipe) and libvulkan1." >&2
  exit 1
fi
as_root=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-vulkan: need root (or sudo) to apt-get install the Vulkan driver" >&2; exit 1; }
  # -n: fail rather than wait for a password no one will type (CI); env: sudo drops the caller's environment.
  sudo -n true 2>/dev/null || { echo "setup-vulkan: need root or passwordless sudo to apt-get install libvulkan1 and mesa-vulkan-drivers (or install them yourself)" >&2; exit 1; }
  as_root=(sudo -n)
fi
trap 'echo "setup-vulkan: apt-get failed (above). Install libvulkan1 and mesa-vulkan-drivers (on Debian bookworm from bookworm-backports: Mesa >= 23) by hand, then run npm test again." >&2' ERR
# A lock held by apt at boot (unattended-upgrades on a fresh VM) is waited for, not failed on.
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300)
. /etc/os-release
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  echo "setup-vulkan: installing libvulkan1 and mesa-vulkan-drivers (bookworm-backports)"
  "${apt[@]}" update -qq
  # The suite as apt sees it (a commented-out or disabled source does not count): added if missing.
  if ! apt-cache policy | grep -q 'a=bookworm-backports'; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" | "${as_root[@]}" tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    "${apt[@]}" update -qq
  fi
  "${apt[@]}" install -y -qq -t bookworm-backports libvulkan1 mesa-vulkan-drivers >/dev/null
else
  echo "setup-vulkan: installing libvulkan1 and mesa-vulkan-drivers"
  "${apt[@]}" update -qq
  "${apt[@]}" install -y -qq libvulkan1 mesa-vulkan-drivers >/dev/null
fi
trap - ERR
if probe >/dev/null 2>&1; then echo "setup-vulkan: lavapipe installed; a WebGPU adapter is available"; exit 0; fi
echo "setup-vulkan: installed the drivers but Dawn still finds no adapter:" >&2
probe >&2 || true
exit 1
