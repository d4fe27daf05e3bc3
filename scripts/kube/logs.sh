#!/bin/sh
# Follows logs:  scripts/kube/logs.sh [worker|tasker|drain-worker] [kubectl logs flags...]
# Workers' lines are prefixed with their pod name. Default: worker.
set -eu
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

component="${1:-worker}"
[ $# -eq 0 ] || shift
case "$component" in
  worker|tasker|drain-worker) ;;
  *) die "unknown component \`$component\`: worker, tasker or drain-worker" ;;
esac
kube logs --follow --prefix --max-log-requests 50 --tail 100 \
  -l "app.kubernetes.io/part-of=warren,app.kubernetes.io/component=$component" "$@"
