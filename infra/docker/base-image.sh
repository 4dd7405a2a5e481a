#!/usr/bin/env bash
# Builds the broker image's base from Debian packages when no image registry is reachable:
# debootstrap (minbase + python3) and `docker import`. Usage: base-image.sh [name:tag]
# The machine's CA bundle and pip configuration go into the base, so that `pip install`
# during the image build works through this machine's TLS setup.
# Skips the work when the image already exists (a cache across CI runs on one machine).
set -euo pipefail
IMAGE="${1:-keybroker-base:bookworm}"
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE already present"; exit 0
fi
MIRROR="${DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
ROOTFS="$(mktemp -d)"
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$ROOTFS" "$MIRROR" >/dev/null
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$ROOTFS/etc/pip.conf"; fi
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import - "$IMAGE" >/dev/null
echo "base image $IMAGE built"
