#!/usr/bin/env bash
# Install the system packages the test suite needs (Debian/Ubuntu): Xvfb and the X/GL
# libraries Qt 6 asks for (napari GUI tests), and tcmalloc (faster torch on CPU).
# Idempotent; does nothing when everything is there; warns when it cannot install.
set -euo pipefail
pkgs=(xvfb xauth libtcmalloc-minimal4 libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3
      libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0
      libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0
      libxcb-xinerama0 libxcb-xkb1 libx11-xcb1)
command -v dpkg-query >/dev/null || { echo "system-deps: not a Debian system; install Xvfb and tcmalloc yourself"; exit 0; }
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
