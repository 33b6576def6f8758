#!/usr/bin/env bash
# Debian packages the mini benchmark (m2d-eval mini build) renders its audio with. Idempotent; needs root.
#
#   sudo bash scripts/install_system_deps.sh        # then: pip install -e .[mini]
#
# What each package gives (all from Debian main):
#   fluidsynth, timgm6mb-soundfont, musescore-general-soundfont-small  -> mini_genre, mini_tagging, pool music
#   hydrogen-drumkits, lmms-common, sonic-pi-samples                   -> mini_sounds, mini_tagging, pool samples
#   flite                                                              -> four more recorded-voice speakers
# eSpeak NG itself comes from PyPI (espeakng-loader, in the `mini` extra), so speech needs no root.
#
# Without root: `pip install -e .[mini]` alone builds mini_kws, mini_speaker and the pool's speech; the builder
# reports every other task as SKIPPED with the package it needs. Ask an administrator to run this script, or
# build the cache on a machine where you are root and copy the folder (~/.cache/m2d-hear/mini) over.
set -euo pipefail

PACKAGES=(
  fluidsynth
  timgm6mb-soundfont
  musescore-general-soundfont-small
  hydrogen-drumkits
  lmms-common
  sonic-pi-samples
  flite
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_system_deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install_system_deps: missing ${missing[*]}; run this script as root (sudo)." >&2
  echo "Without them, 'm2d-eval mini build' still builds the speech tasks from pip's espeakng-loader" >&2
  echo "and reports the other tasks as skipped." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y --no-install-recommends "${missing[@]}"
echo "install_system_deps: installed ${missing[*]}"
