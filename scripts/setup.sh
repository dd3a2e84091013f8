#!/usr/bin/env bash
# Installs what owlgpu needs on a Debian/Ubuntu machine that has Node/npm, then the package's
# npm dependencies (deno install). Idempotent: each step is skipped when already satisfied.
#  - Deno 2.9.6 from the npm registry (package `deno`)
#  - a Vulkan driver: Mesa's software driver (lavapipe) when apt-get is available and no
#    Vulkan ICD is installed; a machine with a GPU driver keeps its own
set -euo pipefail
cd "$(dirname "$0")/.."
DENO_VERSION=2.9.6
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

if ! command -v deno >/dev/null || [ "$(deno --version | head -n1 | cut -d' ' -f2)" != "$DENO_VERSION" ]; then
  echo "setup: installing deno@$DENO_VERSION from npm" >&2
  $SUDO npm install -g --no-fund --no-audit "deno@$DENO_VERSION" >&2
fi

if ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
  if command -v apt-get >/dev/null; then
    echo "setup: installing Mesa's Vulkan drivers (software rendering when there is no GPU)" >&2
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      mesa-vulkan-drivers libvulkan1 >&2
  else
    echo "setup: no Vulkan driver found and no apt-get: install your GPU's Vulkan driver" >&2
  fi
fi

# npm dependencies declared in deno.json (the embedded model and corpora come from here).
deno install >&2
