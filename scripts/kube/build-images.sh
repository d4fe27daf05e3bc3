#!/bin/sh
# Builds both images, and pushes them or loads them into minikube:
#   scripts/kube/build-images.sh [--tag TAG] [--push REGISTRY | --minikube]
# Tags: warren-tasker:TAG and warren-worker:TAG (default TAG: the package version), or
# REGISTRY/warren-tasker:TAG with --push. Your study's images build FROM these
# (examples/worker-image). manifests/base and the plain manifests name the default tag (a test
# holds them to package.json); the minikube overlay names `dev`.
set -eu
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

cd "$(dirname "$0")/../.."
# The default tag is the one the plain manifests and the base name: the package version.
tag="$(node -p "require('./package.json').version" 2>/dev/null)" \
  || die "cannot read the version in package.json (is node on PATH?); give one with --tag" 3
registry=""
minikube=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; tag="$2"; shift 2 ;;
    --push) [ $# -ge 2 ] || die "--push needs a registry"; registry="$2/"; shift 2 ;;
    --minikube) minikube=1; shift ;;
    *) die "unknown argument \`$1\`: --tag TAG, --push REGISTRY or --minikube" ;;
  esac
done
[ -z "$registry" ] || [ -z "$minikube" ] || die "--push and --minikube do not go together"
# Docker where its daemon answers, else podman (which builds the same Dockerfiles);
# WARREN_BUILDER=docker or podman picks one.
builder="${WARREN_BUILDER:-}"
if [ -z "$builder" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then builder=docker
  elif command -v podman >/dev/null 2>&1; then builder=podman
  else builder=docker
  fi
fi
need "$builder" "https://docs.docker.com/get-docker/ (or podman)"

for image in tasker worker; do
  name="${registry}warren-$image:$tag"
  "$builder" build -f "Dockerfile.$image" -t "$name" . || die "building $name failed" 3
  if [ -n "$registry" ]; then
    "$builder" push "$name" || die "pushing $name failed (docker login ${registry%/}?)" 3
  elif [ -n "$minikube" ]; then
    need minikube "https://minikube.sigs.k8s.io/docs/start/"
    minikube image load "$name" || die "loading $name into minikube failed" 3
  fi
  echo "built $name"
done
