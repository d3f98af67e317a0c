#!/usr/bin/env bash
# Installs every system package mergesweep needs to build, test and run (Debian 12).
# Idempotent and fast when everything is present: apt is only touched when a package is missing.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build ccache pkg-config git
  clang libclang-rt-14-dev
  libtorch-dev libopenblas0-pthread
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libboost-program-options-dev
  libgtest-dev
  nlohmann-json3-dev libyaml-cpp-dev libssl-dev
  python3 python3-venv python3-pip
  python3-h5py python3-numpy python3-pandas python3-scipy python3-statsmodels python3-matplotlib python3-pytest python3-yaml
  slurm-wlm munge
  iproute2 procps  # ip netns, veth and ss for the two-node fault tests; ps, pgrep
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all system packages present" >&2
fi
