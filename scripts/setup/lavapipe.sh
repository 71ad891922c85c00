#!/usr/bin/env bash
# Provide a Mesa >= 25 lavapipe Vulkan driver in a project-owned folder, without touching the system.
# SAPIEN (ManiSkill3's simulator) needs a Vulkan device even for state observations; Debian 12's own
# lavapipe (Mesa 22) is rejected, bookworm-backports carries Mesa 25, and Debian 13 ships Mesa 25.
# Usage: scripts/setup/lavapipe.sh <dest-dir>   (writes <dest-dir>/lvp_icd.json)
set -euo pipefail
dest=${1:?usage: lavapipe.sh <dest-dir>}
icd="$dest/lvp_icd.json"
if [[ -f "$icd" ]] && [[ -f "$(sed -n 's/.*"library_path": *"\([^"]*\)".*/\1/p' "$icd")" ]]; then
  echo "[setup] lavapipe: up to date ($icd)"
  exit 0
fi

case "$(cut -d. -f1 /etc/debian_version 2>/dev/null || echo unknown)" in
  12) suite="bookworm-backports" ;;
  13) suite="trixie" ;;
  *) echo "[setup] lavapipe: unsupported system (need Debian 12 or 13, /etc/debian_version says '$(cat /etc/debian_version 2>/dev/null)')" >&2; exit 1 ;;
esac
arch=$(dpkg --print-architecture)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"
echo "deb http://deb.debian.org/debian $suite main" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root")
echo "[setup] lavapipe: fetching mesa-vulkan-drivers from Debian $suite"
apt-get "${apt_opts[@]}" -qq update
version=$(apt-cache "${apt_opts[@]}" policy mesa-vulkan-drivers | sed -n 's/^ *Candidate: *//p')
major=${version%%.*}; major=${major#*:}
if [[ -z "$version" || "$version" == "(none)" || "$major" -lt 25 ]]; then
  echo "[setup] lavapipe: Debian $suite offers mesa-vulkan-drivers '$version'; need >= 25" >&2
  exit 1
fi
(cd "$work/deb" && apt-get "${apt_opts[@]}" -qq download "mesa-vulkan-drivers=$version")

rm -rf "$dest.tmp" && mkdir -p "$dest.tmp"
dpkg -x "$work"/deb/mesa-vulkan-drivers_*.deb "$dest.tmp/root"
lib=$(find "$dest.tmp/root" -name libvulkan_lvp.so | head -n1)
[[ -n "$lib" ]] || { echo "[setup] lavapipe: libvulkan_lvp.so not found in the package" >&2; exit 1; }
missing=$(ldd "$lib" | grep "not found" || true)
[[ -z "$missing" ]] || { echo "[setup] lavapipe: $lib lacks system libraries:"$'\n'"$missing" >&2; exit 1; }
# Keep only the driver and its manifest, pointed at the unpacked library by absolute path.
mkdir -p "$dest.tmp/lib" && mv "$lib" "$dest.tmp/lib/"
manifest=$(find "$dest.tmp/root" -name lvp_icd*.json | head -n1)
[[ -n "$manifest" ]] || { echo "[setup] lavapipe: lvp_icd.json not found in the package" >&2; exit 1; }
rm -rf "$dest" && mkdir -p "$(dirname "$dest")"
sed "s|\"library_path\": *\"[^\"]*\"|\"library_path\": \"$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")/lib/libvulkan_lvp.so\"|" \
  "$manifest" > "$dest.tmp/lvp_icd.json"
rm -rf "$dest.tmp/root" && mv "$dest.tmp" "$dest"
echo "[setup] lavapipe: Mesa $version installed in $dest"
