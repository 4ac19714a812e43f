#!/usr/bin/env bash
# Makes sure Dawn (the `webgpu` npm package) can find a Vulkan adapter.
# On a machine with a GPU driver this does nothing. On a CPU-only Debian/Ubuntu machine it
# installs Mesa's lavapipe (software Vulkan). Debian bookworm ships Mesa 22.3, which Dawn
# refuses, so on bookworm the driver comes from bookworm-backports (Mesa 25).
# Idempotent: a second run finds the adapter and returns at once.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

probe() { node "$here/scripts/probe-adapter.mjs" >/dev/null 2>&1; }

if probe; then echo "setup-vulkan: a WebGPU adapter is available"; exit 0; fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-vulkan: no WebGPU adapter found and this is not a Debian/Ubuntu machine." >&2
  echo "  Install a Vulkan driver (a GPU driver, or Mesa >= 23 with lavapipe) and libvulkan1." >&2
  exit 1
fi
sudo_cmd=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup-vulkan: need root (or sudo) to apt-get install the Vulkan driver" >&2; exit 1; }
  sudo_cmd="sudo"
fi
. /etc/os-release
if [ "${VERSION_CODENAME:-}" = bookworm ]; then
  list=/etc/apt/sources.list.d/bookworm-backports.list
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" | $sudo_cmd tee "$list" >/dev/null
  fi
  echo "setup-vulkan: installing libvulkan1 and mesa-vulkan-drivers (bookworm-backports)"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq -t bookworm-backports \
    libvulkan1 mesa-vulkan-drivers >/dev/null
else
  echo "setup-vulkan: installing libvulkan1 and mesa-vulkan-drivers"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libvulkan1 mesa-vulkan-drivers >/dev/null
fi
if probe; then echo "setup-vulkan: lavapipe installed; a WebGPU adapter is available"; exit 0; fi
echo "setup-vulkan: installed the drivers but Dawn still finds no adapter." >&2
node "$here/scripts/probe-adapter.mjs" >&2 || true
exit 1
