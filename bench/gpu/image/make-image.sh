#!/usr/bin/env bash
# Builds a stand-in for the GPU machine's image, to rehearse bench/gpu/check.sh without a GPU:
# a minimal Debian (debootstrap) with only what that image is known to have that matters to the
# build: python3 with a venv holding PyPI's CUDA torch wheel, cmake and ninja from PyPI, a C++
# compiler, and the CUDA toolkit (bind-mounted from this machine by run-in-image.sh). No OpenMPI,
# HDF5, yaml-cpp, Boost, nlohmann-json, GoogleTest or OpenSSL headers: those must come from
# bench/gpu/debs/ exactly as on the real machine.
#   make-image.sh [SUITE]      SUITE: bookworm (default) or trixie (newer glibc and Python, closer
#                              to the real image's Ubuntu 24.04)
# Environment (all optional):
#   MS_IMAGE_DIR      where images live (default /var/tmp/mergesweep-image); the root is $MS_IMAGE_DIR/SUITE
#   MS_DEBIAN_MIRROR  Debian mirror (default: the first one in this machine's apt sources)
#   MS_TORCH_SPEC     pip requirement for torch (default torch==2.11.0, PyPI's wheel, built for CUDA 13)
# Needs root, debootstrap and network access to the Debian mirror and PyPI. Re-running it on an
# existing image only (re)installs the venv.
set -euo pipefail
SUITE="${1:-bookworm}"
BASE="${MS_IMAGE_DIR:-/var/tmp/mergesweep-image}"
ROOTFS="$BASE/$SUITE"
TORCH_SPEC="${MS_TORCH_SPEC:-torch==2.11.0}"
NICE=(nice -n 19 ionice -c3)  # the rehearsal must not slow down the work on a shared machine

[ "$(id -u)" -eq 0 ] || { echo "make-image: needs root (debootstrap, chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "make-image: apt-get install debootstrap" >&2; exit 1; }

mirror_from_apt() {
  # deb822 (*.sources, "URIs:") and one-line (*.list, "deb URL SUITE") formats; security mirrors
  # carry no full suite, so they are passed over.
  local f
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    { grep -hE '^URIs:' "$f" | awk '{print $2}'; grep -hE '^deb ' "$f" | sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}'; } \
      | grep -v security | grep -i debian | head -1
  done | head -1
}
MIRROR="${MS_DEBIAN_MIRROR:-$(mirror_from_apt)}"
[ -n "$MIRROR" ] || { echo "make-image: no Debian mirror in /etc/apt; set MS_DEBIAN_MIRROR" >&2; exit 1; }

if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
  echo "make-image: debootstrap $SUITE from $MIRROR into $ROOTFS"
  mkdir -p "$ROOTFS"
  # minbase keeps dpkg (check.sh unpacks the .deb files with dpkg -x) and nothing optional.
  # python3-venv: the real image's python has pip; g++/make: a build needs a compiler, which a CUDA
  # toolkit image has (nvcc needs one too).
  "${NICE[@]}" debootstrap --variant=minbase --include=python3,python3-venv,g++,make "$SUITE" "$ROOTFS" "$MIRROR"
fi

# pip inside the chroot resolves names and trusts certificates as the host does (a site's TLS
# proxy may sign with its own CA, which only the host's bundle has).
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
CA="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
PIP_CERT_ARG=""
if [ -f "$CA" ]; then cp -L "$CA" "$ROOTFS/etc/host-ca.crt"; PIP_CERT_ARG="--cert /etc/host-ca.crt"; fi
mkdir -p "$BASE/pip-cache" "$ROOTFS/root/.cache/pip"
mountpoint -q "$ROOTFS/root/.cache/pip" || mount --bind "$BASE/pip-cache" "$ROOTFS/root/.cache/pip"
mountpoint -q "$ROOTFS/proc" || mount -t proc proc "$ROOTFS/proc"
trap 'umount "$ROOTFS/root/.cache/pip" "$ROOTFS/proc" 2>/dev/null || true' EXIT

# The wheels are shared between suites through the pip cache (torch's nvidia-* wheels are several GB).
echo "make-image: venv /opt/venv with $TORCH_SPEC, cmake, ninja"
"${NICE[@]}" chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root /bin/sh -ec "
  [ -x /opt/venv/bin/python3 ] || python3 -m venv /opt/venv
  /opt/venv/bin/pip install -q --disable-pip-version-check $PIP_CERT_ARG '$TORCH_SPEC' cmake ninja
  /opt/venv/bin/python3 -c 'import torch; print(\"make-image: torch\", torch.__version__, \"CUDA\", torch.version.cuda)'
  /opt/venv/bin/cmake --version | head -1"
echo "make-image: $ROOTFS ready; run bench/gpu/image/run-in-image.sh $SUITE A"
