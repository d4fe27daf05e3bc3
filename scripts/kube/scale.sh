#!/bin/sh
# Sets the number of worker pods:  scripts/kube/scale.sh N
# (the same as `replicas` in manifests/30-workers.yml; with the keda component, KEDA sets it instead).
set -eu
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

[ $# -eq 1 ] || die "usage: $SCRIPT N (the number of worker pods)"
case "$1" in
  ''|*[!0-9]*) die "the number of workers must be a whole number, not \`$1\`" ;;
esac
kube scale deployment warren-worker --replicas "$1"
