#!/usr/bin/env bash
# Pack what a benchmark run on a lent GPU machine needs (that machine has no network): Debian's
# Vulkan loader and GL dispatch library as .debs in .gl/, and Deno's Linux x64 binary, xz-compressed,
# in .device/. Both folders are git-ignored; name them in the device call's `carry` and run
# scripts/device/bench.sh there (see ARCHITECTURE.md, "Benchmarks on a lent GPU"). The benchmarks
# import no npm package, so node_modules stays behind.
set -euo pipefail
cd "$(dirname "$0")/../.."
DENO_VERSION=2.9.6
mkdir -p .gl .device /tmp/owlgpu-apt/partial
apt_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/owlgpu-apt)
apt-get "${apt_opts[@]}" update -qq
rm -f .gl/*.deb
(cd .gl && apt-get "${apt_opts[@]}" download libvulkan1 libglvnd0 >/dev/null)
tmp=$(mktemp -d)
(cd "$tmp" && npm pack -q "@deno/linux-x64-glibc@$DENO_VERSION" >/dev/null && tar xzf ./*.tgz)
bin=$(find "$tmp/package" -type f -name deno | head -1)
[ -n "$bin" ] || { echo "pack: no deno binary in @deno/linux-x64-glibc@$DENO_VERSION" >&2; exit 1; }
xz -T0 -6 -c "$bin" >.device/deno.xz.tmp && mv .device/deno.xz.tmp .device/deno.xz
rm -rf "$tmp"
du -ch .gl .device | tail -1 | sed 's/total/to carry (limit 64 MiB with the working tree)/'
