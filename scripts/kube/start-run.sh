#!/bin/sh
# Starts a run: deletes the finished tasker Job (not its outputs) and applies manifests/tasker.yml.
#   scripts/kube/start-run.sh [TASKER_YML]
# The new Job's UID is the new run's id. Do not use this to resume a run: a Job that failed can
# be resumed by giving it more pods (docs/kubernetes.md, "Resuming a run").
set -eu
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

manifest="${1:-$(dirname "$0")/../../manifests/tasker.yml}"
[ $# -le 1 ] || die "usage: $SCRIPT [TASKER_YML]"
[ -r "$manifest" ] || die "cannot read $manifest"
active="$(kube get job warren-tasker --ignore-not-found -o jsonpath='{.status.active}')"
[ -z "$active" ] || [ "$active" = 0 ] \
  || die "the tasker Job is still running; wait for it, or \`tasker cancel\` it first" 4
kube delete job warren-tasker --ignore-not-found --wait
kube apply -f "$manifest"
