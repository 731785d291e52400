#!/usr/bin/env bash
# Installs Mesa's software Vulkan driver (lavapipe) so that Dawn finds a WebGPU adapter on a Linux machine
# without a GPU. Debian 12's own Mesa (22.x) is too old for Dawn ("shaderUniform*ArrayDynamicIndexing
# required"), so the driver comes from bookworm-backports (Mesa 25).
#
# Usage: sudo bash scripts/install-lavapipe.sh      (idempotent; needs root and Debian's package mirror)
#        bash scripts/install-lavapipe.sh --sources-only FILE   only add bookworm-backports to FILE (for tests)
set -euo pipefail

# Adds bookworm-backports to a deb822 .sources file (to the Suites: line of the stanza that lists plain
# "bookworm", not bookworm-security) or to a one-line-per-source sources.list. Idempotent.
add_backports() {
  local file="$1"
  if grep -q 'bookworm-backports' "$file"; then return 0; fi
  if grep -qE '^Suites:' "$file"; then
    sed -i -E '/^Suites:(.* )?bookworm( |$)/ s/$/ bookworm-backports/' "$file"
  else
    echo 'deb http://deb.debian.org/debian bookworm-backports main' >>"$file"
  fi
  grep -q 'bookworm-backports' "$file"
}

if [ "${1:-}" = "--sources-only" ]; then
  add_backports "$2"
  exit 0
fi

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
  target="$sources"
elif [ -f "$list" ]; then
  target="$list"
else
  echo "install-lavapipe: neither $sources nor $list exists; is this Debian 12?" >&2
  exit 1
fi
add_backports "$target" || {
  echo "install-lavapipe: could not add bookworm-backports to $target" >&2
  exit 1
}

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
echo "install-lavapipe: installed $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers)"
