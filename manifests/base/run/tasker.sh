#!/bin/sh
# What the tasker Job runs: prepare the study in the shared working directory, then run its
# phases, with workers taking the parallel ones. Restart-safe: the Job's UID is the run id
# (WARREN_RUN_ID, from the downward API), so a restarted pod resumes the run: steps and tasks
# that succeeded are skipped, and nothing is cleaned twice.
#
# Edit the part marked "your study"; keep the rest. In Kubernetes this file is the ConfigMap
# warren-tasker-script, mounted over the image's copy: change it with
# `scripts/kube/start-run.sh --script tasker.sh` (docs/kubernetes.md), no image build needed.
set -eu

WORKDIR="${WARREN_WORKDIR:-/data}"
STUDY="${STUDY_DIR:-/opt/study}"
: "${WARREN_RUN_ID:?set WARREN_RUN_ID: the manifests take it from the Job UID}"
export WARREN_RUN_ID

# 1. The working directory is the shared volume: it must be there and writable.
if [ ! -d "$WORKDIR" ] || [ ! -w "$WORKDIR" ]; then
  echo "tasker.sh: working directory $WORKDIR is missing or not writable (is the shared volume mounted?)" >&2
  exit 2
fi
cd "$WORKDIR"

# 2. Empty it once per run: a restarted pod must not wipe what its run already made.
#    (`tasker clean` keeps the state dir, .warren, where the runs' ledgers live.) A new run
#    removes the outputs an earlier run left here: it says which run's; with
#    WARREN_KEEP_OUTPUTS=1 it refuses instead (fetch or move them first).
if ! tasker status --run-id "$WARREN_RUN_ID" >/dev/null 2>&1; then
  previous="$( (unset WARREN_RUN_ID; tasker status 2>/dev/null) | sed -n '1s/^run \([^ :]*\):.*/\1/p')"
  if [ -n "$previous" ]; then
    if [ "${WARREN_KEEP_OUTPUTS:-}" = 1 ]; then
      echo "tasker.sh: $WORKDIR holds the outputs of run $previous and WARREN_KEEP_OUTPUTS=1: not removing them (move them away, or unset it)" >&2
      exit 2
    fi
    echo "tasker.sh: new run $WARREN_RUN_ID: removing the outputs of run $previous from $WORKDIR (its ledger stays; WARREN_KEEP_OUTPUTS=1 refuses)"
  fi
  tasker clean "$WORKDIR"
fi

# ---- your study ----------------------------------------------------------------------
# 3. Prepare: the data, then the jobs file. Each step runs once per run.
#    The stock warren-tasker image holds no study: build yours FROM it (examples/tasker-image).
if [ ! -d "$STUDY/data" ] || ! command -v asreview >/dev/null 2>&1; then
  echo "tasker.sh: this image has no study (no $STUDY/data, or no asreview): build your study's tasker image FROM warren-tasker (examples/tasker-image), or edit this script" >&2
  exit 2
fi
#    (`cp -R SRC/. DEST` copies into DEST whether or not it exists: safe to repeat after a crash.)
tasker once data -- cp -R "$STUDY/data/." "$WORKDIR/data"
tasker once makita -- asreview makita template "${MAKITA_TEMPLATE:-basic}"

# 4. Run the phases, each after the one before has finished, parallel ones on the workers:
tasker run jobs.sh --rules makita
#    or asreview-cloud's three parts (part 1 serially here, then parts 2 and 3):
#      tasker run jobs.sh --rules asreview-cloud
# ---- end of your study ------------------------------------------------------------------

echo "tasker.sh: run $WARREN_RUN_ID finished; results are in $WORKDIR (and in S3, if configured)"
