#!/usr/bin/env bash
# Downloads the Debian packages (.deb files, about 25 MB) the build needs besides torch and the
# CUDA toolkit: OpenMPI, HDF5, yaml-cpp, Boost.Program_options, nlohmann-json, GoogleTest, OpenSSL
# headers, with the runtime libraries they link. Run it where Debian's mirror is reachable; carry
# the tree (bench/gpu/debs/ is ignored by git) to a machine without a package registry, where
# bench/gpu/check.sh unpacks them into a prefix with `dpkg -x` (no root, no dependency solving).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/debs}"
PACKAGES=(
  openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libevent-core-2.1-7
  libevent-pthreads-2.1-7 libevent-2.1-7 libhwloc15 libhwloc-plugins libfabric1 libucx0 libibverbs1
  librdmacm1 libnl-3-200 libnl-route-3-200 libpsm2-2 libpsm-infinipath1 libmunge2
  libhdf5-103-1 libhdf5-dev libsz2 libaec0 libcurl3-gnutls
  libyaml-cpp-dev libyaml-cpp0.7
  libboost-program-options1.74-dev libboost-program-options1.74.0 libboost1.74-dev
  nlohmann-json3-dev libgtest-dev googletest libssl-dev
)
mkdir -p "$OUT"
cd "$OUT"
command -v apt-get >/dev/null || { echo "fetch-debs: apt-get not found (run on Debian 12)" >&2; exit 1; }
apt-get download "${PACKAGES[@]}"
total=$(du -cb ./*.deb | tail -1 | cut -f1)
echo "fetch-debs: $(ls ./*.deb | wc -l) packages, $((total / 1000000)) MB in $OUT"
if [ "$total" -gt 60000000 ]; then
  echo "fetch-debs: more than 60 MB" >&2
  exit 1
fi
