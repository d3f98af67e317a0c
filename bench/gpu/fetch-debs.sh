#!/usr/bin/env bash
# Downloads the Debian 12 packages (.deb files, about 28 MB) the build needs besides torch and the
# CUDA toolkit: OpenMPI, HDF5, yaml-cpp, Boost.Program_options, nlohmann-json, GoogleTest, OpenSSL
# headers, with the runtime libraries they load that a minimal image lacks. Run it on Debian 12
# (bookworm) where its mirror is reachable; carry bench/gpu/debs/ (ignored by git) with the tree to
# the GPU machine, where bench/gpu/check.sh unpacks them into a prefix with dpkg-deb -x (no root,
# no dependency solving). The list is hand-made, not a dependency closure: the closure drags in
# compilers, perl and python. check.sh's deps step runs ldd over everything it unpacked and
# names any library still missing; bench/gpu/image/ rehearses that in a minimal Debian.
#   fetch-debs.sh [OUT]   (default bench/gpu/debs; an existing folder is emptied of .deb files first)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/debs}"
PACKAGES=(
  # OpenMPI 4.1 and what libmpi and its transport components link (not libhwloc-plugins: optional
  # GPU/PCI topology plugins that need X11 and OpenCL, looked up at their /usr path anyway)
  openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libevent-core-2.1-7
  libevent-pthreads-2.1-7 libevent-2.1-7 libhwloc15 libfabric1 libucx0 libibverbs1
  ibverbs-providers librdmacm1 libnl-3-200 libnl-route-3-200 libpsm2-2 libpsm-infinipath1 libmunge2
  libnuma1 libatomic1 libudev1
  # HDF5 1.10 (serial); it links libcurl (the ROS3 driver), whose own libraries follow
  libhdf5-103-1 libhdf5-dev libsz2 libaec0
  libcurl4 libbrotli1 libnghttp2-14 libpsl5 librtmp1 libssh2-1 libldap-2.5-0 libsasl2-2
  libsasl2-modules-db libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1
  libgnutls30 libhogweed6 libnettle8 libgmp10 libp11-kit0 libtasn1-6 libidn2-0 libunistring2
  libffi8 libdb5.3 libcom-err2
  # headers, CMake configs and the libraries linked directly
  libyaml-cpp-dev libyaml-cpp0.7
  libboost-program-options1.74-dev libboost-program-options1.74.0 libboost1.74-dev
  nlohmann-json3-dev libgtest-dev libssl-dev libssl3
)
command -v apt-get >/dev/null || { echo "fetch-debs: apt-get not found (run on Debian 12)" >&2; exit 1; }
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] || echo "fetch-debs: warning: this is $PRETTY_NAME; the list names Debian 12's packages" >&2
mkdir -p "$OUT"
cd "$OUT"
rm -f ./*.deb  # a stale package (an older version) would be unpacked too
apt-get download "${PACKAGES[@]}"
total=$(du -cb ./*.deb | tail -1 | cut -f1)
echo "fetch-debs: $(ls ./*.deb | wc -l) packages, $((total / 1000000)) MB in $OUT"
# The device tool carries at most 64 MiB with the tree (about 12 MB of sources).
if [ "$total" -gt 45000000 ]; then
  echo "fetch-debs: more than 45 MB" >&2
  exit 1
fi
