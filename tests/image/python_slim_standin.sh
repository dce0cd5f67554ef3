#!/usr/bin/env bash
# A local stand-in for python:3.11-slim, for building the Dockerfile where no registry can be reached.
#
#   tests/image/python_slim_standin.sh IMAGE_NAME
#
# Debian bookworm (debootstrap --variant=minbase) with Debian's python3.11 + venv + ca-certificates (and
# python3-distutils, which debootstrap cannot pick for venv's virtual python3.11-distutils), and
# /usr/local/bin/python{,3} links, PATH, LANG and CMD like the official image. Debian's python3.11 is 3.11.2
# (the official image tracks the newest 3.11.x): close enough for a build and run check, not the same bytes.
# Runs as root; buildah flags come from BUILDAH (e.g. "buildah --root DIR --storage-driver vfs").
set -euo pipefail

image=${1:?usage: $0 IMAGE_NAME}
read -r -a buildah <<<"${BUILDAH:-buildah --storage-driver vfs}"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

rootfs=$(mktemp -d /var/tmp/python-slim-standin.XXXXXX)
container=
cleanup() {
  if [[ -n "$container" ]]; then "${buildah[@]}" rm "$container" >/dev/null 2>&1 || true; fi
  rm -rf "$rootfs"
}
trap cleanup EXIT

debootstrap --variant=minbase --include=python3.11,python3.11-venv,python3-distutils,ca-certificates \
  bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { cat "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
ln -s /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
ln -s python3 "$rootfs/usr/local/bin/python"
# What Debian's slim images leave out: package lists, downloaded .debs, logs, documentation, locales.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/usr/share/{doc,man,info,locale}/*

container=$("${buildah[@]}" from --pull=never scratch)
mountpoint=$("${buildah[@]}" mount "$container")
tar -C "$rootfs" --numeric-owner -cf - . | tar -C "$mountpoint" --numeric-owner -xpf -
"${buildah[@]}" umount "$container" >/dev/null
"${buildah[@]}" config \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 \
  --env PYTHON_VERSION="$(chroot "$rootfs" python3.11 -c 'import platform; print(platform.python_version())')" \
  --cmd python3 \
  --label org.opencontainers.image.description="local stand-in for python:3.11-slim (Debian bookworm python3.11)" \
  "$container"
"${buildah[@]}" commit --quiet --format docker --rm "$container" "$image" >/dev/null
container=
echo "$image"
