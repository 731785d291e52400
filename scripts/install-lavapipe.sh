#!/usr/bin/env bash
# Installs Mesa's software Vulkan driver (lavapipe) so that Dawn finds a WebGPU adapter on a Linux machine
# without a GPU. Debian 12's own Mesa (22.x) is too old for Dawn ("shaderUniform*ArrayDynamicIndexing
# required"), so the driver comes from bookworm-backports (Mesa 25).
#
# Usage: sudo bash scripts/install-lavapipe.sh      (idempotent; needs root and Debian's package mirror)
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-lavapipe: must run as root (try: sudo bash $0)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-lavapipe: apt-get not found; this script supports Debian 12 (bookworm) only." >&2
  echo "On other systems install a Vulkan driver (Mesa >= 24 lavapipe, or your GPU vendor's) yourself." >&2
  exit 1
fi

sources=/etc/apt/sources.list.d/debian.sources
list=/etc/apt/sources.list
if [ -f "$sources" ]; then
  # Deb822 format: add bookworm-backports to the first Suites: line that names bookworm.
  if ! grep -q 'bookworm-backports' "$sources"; then
    # Append it to the Suites: line of the stanza that lists plain "bookworm" (not bookworm-security).
    sed -i -E '/^Suites:(.* )?bookworm( |$)/ s/$/ bookworm-backports/' "$sources"
  fi
elif [ -f "$list" ]; then
  if ! grep -q 'bookworm-backports' "$list"; then
    echo 'deb http://deb.debian.org/debian bookworm-backports main' >>"$list"
  fi
else
  echo "install-lavapipe: neither $sources nor $list exists; is this Debian 12?" >&2
  exit 1
fi
grep -q 'bookworm-backports' "$sources" "$list" 2>/dev/null || {
  echo "install-lavapipe: could not add bookworm-backports to the apt sources" >&2
  exit 1
}

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
echo "install-lavapipe: installed $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers)"
