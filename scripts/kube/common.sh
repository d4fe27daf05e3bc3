# shellcheck shell=sh
# Shared by the operator scripts in this directory (sourced, not run). Settings:
#   WARREN_NAMESPACE     the namespace (default: warren)
#   WARREN_RABBITMQ_POD  a RabbitMQ pod (default: warren-rabbitmq-server-0, the operator's name)
# Usage errors exit 2, a missing tool or a failed kubectl exits 3, each with one line on stderr.

NAMESPACE="${WARREN_NAMESPACE:-warren}"
RABBITMQ_POD="${WARREN_RABBITMQ_POD:-warren-rabbitmq-server-0}"
SCRIPT="$(basename "$0")"

die() {
  echo "$SCRIPT: $1" >&2
  exit "${2:-2}"
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "needs \`$1\` on PATH ($2)" 3
}

# kubectl in Warren's namespace; a failure exits 3 (kubectl has said why).
kube() {
  need kubectl "https://kubernetes.io/docs/tasks/tools/"
  kubectl -n "$NAMESPACE" "$@" || exit 3
}

# rabbitmqctl inside the RabbitMQ pod.
rabbitmqctl_in_cluster() {
  kube exec "$RABBITMQ_POD" -c rabbitmq -- rabbitmqctl "$@"
}
