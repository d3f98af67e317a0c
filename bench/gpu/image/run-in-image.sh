#!/usr/bin/env bash
# Runs bench/gpu/check.sh inside an image made by make-image.sh, the way the device tool runs it
# on the GPU machine: a copy of the working tree (tracked files and untracked ones git does not
# ignore) plus the ignored folders the tool is told to carry (bench/gpu/debs), the CUDA toolkit
# at /usr/local/cuda, python3 = the venv with the CUDA torch wheel, no network needed.
#   run-in-image.sh SUITE [A|B|all]
# Environment (all optional):
#   MS_IMAGE_DIR   where make-image.sh put the images (default /var/tmp/mergesweep-image)
#   MS_CUDA_HOME   the CUDA toolkit to bind-mount (default: /usr/local/cuda, resolved)
#   MS_JOBS        parallel jobs inside (default 2: a rehearsal on a small machine)
#   MS_IMAGE_REV   copy the sources of this git revision instead of the working tree, with the
#                  paths in MS_IMAGE_OVERLAY (default bench/gpu) from the working tree (to
#                  rehearse while others edit src/)
#   MS_IMAGE_FRESH=1  also delete the build folder kept from the last run (the device machine
#                  keeps ignored build outputs between calls only while it stays warm)
set -euo pipefail
SUITE="${1:?usage: run-in-image.sh SUITE [A|B|all]}"
PART="${2:-all}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
ROOTFS="${MS_IMAGE_DIR:-/var/tmp/mergesweep-image}/$SUITE"
CUDA_HOME="$(readlink -f "${MS_CUDA_HOME:-/usr/local/cuda}")"
TREE=/work/tree  # inside the image
CARRY=(bench/gpu/debs)
[ -x "$ROOTFS/opt/venv/bin/python3" ] || { echo "run-in-image: no image at $ROOTFS (run make-image.sh $SUITE)" >&2; exit 1; }
[ -x "$CUDA_HOME/bin/nvcc" ] || { echo "run-in-image: no CUDA toolkit at $CUDA_HOME (set MS_CUDA_HOME)" >&2; exit 1; }

mounts=()
cleanup() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"; done
}
trap cleanup EXIT
bind() {  # bind SRC DST [ro]
  mkdir -p "$2"
  mountpoint -q "$2" && return 0
  mount --bind "$1" "$2"; mounts+=("$2")
  [ "${3:-}" = ro ] && mount -o remount,bind,ro "$2"
  return 0
}
mountpoint -q "$ROOTFS/proc" || { mount -t proc proc "$ROOTFS/proc"; mounts+=("$ROOTFS/proc"); }
bind /sys "$ROOTFS/sys" ro
bind /dev "$ROOTFS/dev"
bind "$CUDA_HOME" "$ROOTFS/usr/local/$(basename "$CUDA_HOME")" ro
ln -sfn "$(basename "$CUDA_HOME")" "$ROOTFS/usr/local/cuda"

# A fresh copy each run, as the device tool makes; the build folder and the unpacked prefix
# (ignored outputs) stay, as they do on a warm device machine.
echo "run-in-image: copying the tree into $ROOTFS$TREE"
[ "${MS_IMAGE_FRESH:-0}" = 1 ] && rm -rf "$ROOTFS$TREE"
mkdir -p "$ROOTFS$TREE"
find "$ROOTFS$TREE" -mindepth 1 -maxdepth 1 ! -name build-gpu ! -name bench -exec rm -rf {} +
find "$ROOTFS$TREE/bench" -mindepth 1 -maxdepth 1 ! -name gpu -exec rm -rf {} + 2>/dev/null || true
find "$ROOTFS$TREE/bench/gpu" -mindepth 1 -maxdepth 1 ! -name prefix -exec rm -rf {} + 2>/dev/null || true
cd "$ROOT"
if [ -n "${MS_IMAGE_REV:-}" ]; then
  git archive "$MS_IMAGE_REV" | tar -x -C "$ROOTFS$TREE"
  # shellcheck disable=SC2086  # a list of paths
  git ls-files -co --exclude-standard -z ${MS_IMAGE_OVERLAY:-bench/gpu} | tar -c --null -T - | tar -x -C "$ROOTFS$TREE"
else
  git ls-files -co --exclude-standard -z | tar -c --null -T - --ignore-failed-read | tar -x -C "$ROOTFS$TREE"
fi
tar -c "${CARRY[@]}" | tar -x -C "$ROOTFS$TREE"
echo "run-in-image: $(du -sm --exclude=build-gpu --exclude=prefix "$ROOTFS$TREE" | cut -f1) MB copied (the device tool carries 64 MiB at most)"

# A clean environment, like a fresh login on the GPU machine: no host PATH or library paths.
nice -n 19 ionice -c3 chroot "$ROOTFS" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
  PATH="/opt/venv/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  MS_JOBS="${MS_JOBS:-2}" \
  /bin/bash -c "cd $TREE && bash bench/gpu/check.sh $PART"
