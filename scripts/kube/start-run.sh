#!/bin/sh
# Starts a run: deletes the last run's tasker Job (not its outputs) and applies the new one.
#   scripts/kube/start-run.sh [--script TASKER_SH] [TASKER_YML | -k KUSTOMIZATION]
# TASKER_YML defaults to manifests/50-tasker.yml; -k applies a run kustomization instead
# (manifests/overlays/minikube/run, say). --script TASKER_SH first replaces the ConfigMap
# warren-tasker-script with your tasker.sh. The new Job's UID is the new run's id. Do not use
# this to resume a run (docs/kubernetes.md, "Resuming a failed Job").
set -eu
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

USAGE="usage: $SCRIPT [--script TASKER_SH] [TASKER_YML | -k KUSTOMIZATION]"
script=""
mode=""
target=""
while [ $# -gt 0 ]; do
  case "$1" in
    --script) [ $# -ge 2 ] || die "--script needs a file"; script="$2"; shift 2 ;;
    -k) [ $# -ge 2 ] || die "-k needs a directory"; [ -z "$mode" ] || die "$USAGE"
      [ -d "$2" ] || die "no kustomization directory $2"; mode=-k; target="$2"; shift 2 ;;
    -*) die "unknown option \`$1\`: $USAGE" ;;
    *) [ -z "$mode" ] || die "$USAGE"; [ -r "$1" ] || die "cannot read $1"; mode=-f; target="$1"; shift ;;
  esac
done
if [ -z "$mode" ]; then
  mode=-f
  target="$(dirname "$0")/../../manifests/50-tasker.yml"
  [ -r "$target" ] || die "cannot read $target"
fi
if [ -n "$script" ]; then
  [ -r "$script" ] || die "cannot read $script"
  sh -n "$script" 2>/dev/null || die "$script is not a valid sh script (sh -n $script says why)"
fi

active="$(kube get job warren-tasker --ignore-not-found -o jsonpath='{.status.active}')"
[ -z "$active" ] || [ "$active" = 0 ] \
  || die "the tasker Job is still running; wait for it, or \`tasker cancel\` it first" 4
if [ -n "$script" ]; then
  configmap="$(kube create configmap warren-tasker-script --from-file=tasker.sh="$script" \
    --dry-run=client -o yaml)"
  printf '%s\n' "$configmap" | kube apply -f -
fi
kube delete job warren-tasker --ignore-not-found --wait
kube apply "$mode" "$target"
