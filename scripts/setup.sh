#!/usr/bin/env bash
# Installs what owlgpu needs on a Debian/Ubuntu machine that has Node/npm, then the package's
# npm dependencies (deno install). Idempotent: each step is skipped when already satisfied.
#  - Deno 2.9.6 from the npm registry (package `deno`)
#  - a Vulkan driver: Mesa's software driver (lavapipe) when apt-get is available and no
#    Vulkan ICD is installed; a machine with a GPU driver keeps its own
#  - with --with-browser (the test command): Chromium (Debian's `chromium`), which
#    test/browser_test.ts drives headless to test the demo page on WebGPU; skipped when
#    OWLGPU_CHROMIUM names another Chromium binary
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

WITH_BROWSER=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) WITH_BROWSER=1 ;;
    *) echo "setup: unknown option $arg (known: --with-browser)" >&2; exit 2 ;;
  esac
done

CHROMIUM="${OWLGPU_CHROMIUM:-/usr/bin/chromium}"
if [ "$WITH_BROWSER" = 1 ] && [ ! -x "$CHROMIUM" ]; then
  if command -v apt-get >/dev/null; then
    echo "setup: installing Chromium (for test/browser_test.ts, the demo page's test)" >&2
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >&2
  else
    echo "setup: no Chromium at $CHROMIUM and no apt-get: install Chromium and set OWLGPU_CHROMIUM," \
      "or test/browser_test.ts fails" >&2
  fi
fi

# npm dependencies declared in deno.json (the embedded model and corpora come from here).
deno install >&2
