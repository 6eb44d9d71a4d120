#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages Entra Companion needs, if any are missing.
#   scripts/deps.sh          what the app needs to build and run (cgo, X11/GL headers)
#   scripts/deps.sh --test   plus what the tests need (Xvfb, D-Bus, gnome-keyring, a tray
#                            host, Chromium, wrk, nginx)
set -euo pipefail

pkgs=(gcc pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev libxinerama-dev
      libxi-dev libxxf86vm-dev ca-certificates)
if [[ "${1:-}" == "--test" ]]; then
  pkgs+=(xvfb xauth x11-utils xdotool imagemagick dbus dbus-x11 gnome-keyring libsecret-tools
         haskell-gtk-sni-tray-utils chromium wrk nginx-light procps psmisc)
else
  # to run the app: a Secret Service to keep tokens in (most desktops already have one)
  pkgs+=(gnome-keyring libsecret-1-0 dbus-x11 xdg-utils)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "deps: these packages are missing and this is not a Debian/Ubuntu system: ${missing[*]}" >&2
  echo "deps: install the equivalents with your package manager, then run this again." >&2
  exit 1
fi
sudo=()
[[ $(id -u) -ne 0 ]] && sudo=(sudo)
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
