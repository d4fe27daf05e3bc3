#!/bin/sh
# Warren's queues in the cluster, through `kubectl exec ... rabbitmqctl`:
#   scripts/kube/queues.sh list               every warren.* queue: ready, unacked, consumers
#   scripts/kube/queues.sh inspect QUEUE      one queue: type, arguments, depth, its consumers
#   scripts/kube/queues.sh dead               dead letters (tasks no worker could take)
#   scripts/kube/queues.sh purge QUEUE --yes  drop every ready message of QUEUE
# Prefer `tasker cancel` to purging warren.tasks: a purge drops tasks the tasker still waits for.
set -eu
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

COLUMNS_SHOWN="name type messages_ready messages_unacknowledged consumers"

warren_only() {
  awk -F '\t' 'NR == 1 || $1 ~ /^warren\./'
}

command="${1:-}"
case "$command" in
  list)
    [ $# -eq 1 ] || die "usage: $SCRIPT list"
    # shellcheck disable=SC2086
    rabbitmqctl_in_cluster -q list_queues $COLUMNS_SHOWN | warren_only
    ;;
  inspect)
    [ $# -eq 2 ] || die "usage: $SCRIPT inspect QUEUE"
    queue="$2"
    found="$(rabbitmqctl_in_cluster -q list_queues name type durable messages_ready \
      messages_unacknowledged consumers arguments | awk -F '\t' -v q="$queue" 'NR == 1 || $1 == q')"
    [ "$(printf '%s\n' "$found" | wc -l)" -gt 1 ] || die "no queue named $queue (try: $SCRIPT list)"
    printf '%s\n' "$found"
    echo
    echo "consumers of $queue:"
    rabbitmqctl_in_cluster -q list_consumers queue_name channel_pid consumer_tag prefetch_count \
      | awk -F '\t' -v q="$queue" 'NR == 1 || $1 == q'
    ;;
  dead)
    [ $# -eq 1 ] || die "usage: $SCRIPT dead"
    rabbitmqctl_in_cluster -q list_queues name messages | awk -F '\t' 'NR == 1 || $1 == "warren.dead"'
    echo "Dead letters of a live run also reach its tasker, which records them as failed tasks:"
    echo "  kubectl -n $NAMESPACE exec job/warren-tasker -- tasker status --failed"
    ;;
  purge)
    if [ $# -ne 3 ] || [ "$3" != "--yes" ]; then
      die "usage: $SCRIPT purge QUEUE --yes (drops its ready messages for good)"
    fi
    queue="$2"
    case "$queue" in
      warren.*) ;;
      *) die "$queue is not one of Warren's queues (warren.*)" ;;
    esac
    rabbitmqctl_in_cluster purge_queue "$queue"
    ;;
  ""|-h|--help)
    sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
    [ -n "$command" ] || exit 2
    ;;
  *)
    die "unknown command \`$command\`: list, inspect QUEUE, dead or purge QUEUE --yes"
    ;;
esac
