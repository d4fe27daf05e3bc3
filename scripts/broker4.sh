#!/usr/bin/env bash
# Makes sure podman has a RabbitMQ 4.x image for the tests that run against 4.x
# (WARREN_TEST_BROKER=4, see scripts/rabbitmqNode.ts), the way ../shared/DESIGN.md ("RabbitMQ
# 4.x on these machines") describes:
#   scripts/broker4.sh            # prints the image it made or found
# The image is Debian trixie (minbase, from the machine's own apt mirror, read from its apt
# sources when this runs; nothing of it is written into the repository) with Debian's
# rabbitmq-server 4.0.x. Needs root (debootstrap, chroot), podman and debootstrap; takes a few
# minutes, once: an image that exists is kept.
set -euo pipefail
# shellcheck source=scripts/lib/debian.sh
. "$(dirname "$0")/lib/debian.sh"

IMAGE="${WARREN_BROKER4_IMAGE:-localhost/warren-rabbitmq:4.0}"
SUITE="${WARREN_BROKER4_SUITE:-trixie}"

if podman image exists "$IMAGE"; then
  echo "$IMAGE"
  exit 0
fi

for tool in debootstrap chroot tar; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "broker4.sh: $tool is missing to make $IMAGE" >&2
    exit 2
  }
done

mirror="$(debian_mirror broker4.sh)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
echo "broker4.sh: making $IMAGE from $SUITE ($mirror) and its rabbitmq-server" >&2
debootstrap_minbase broker4.sh "$SUITE" "$root" "$mirror"
# No service starts inside the chroot while the package installs.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
chroot "$root" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server' >"$work/apt.log" 2>&1 || {
  tail -n 20 "$work/apt.log" >&2
  echo "broker4.sh: installing rabbitmq-server failed" >&2
  exit 1
}
rm -f "$root/usr/sbin/policy-rc.d"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# The mirror is the machine's, not the image's: leave no address behind.
: >"$root/etc/apt/sources.list"

tar -C "$root" -c . | podman import --change 'CMD ["rabbitmq-server"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$IMAGE" >/dev/null
echo "$IMAGE"
