#!/bin/sh
# Creates the Secrets Warren reads that the RabbitMQ operator does not make:
#   scripts/kube/secrets.sh signing-key      warren-signing-key (key: 64 random hex digits)
#   scripts/kube/secrets.sh keda             warren-keda-rabbitmq (host: the management API URL
#                                            with the user warren-keda of the least-privilege
#                                            component if it exists, else the operator's default
#                                            user), for the keda and keda-jobs components
# Both leave an existing Secret as it is. The S3 Secret (warren-s3) is yours: docs/kubernetes.md.
set -eu
# shellcheck source=common.sh
. "$(dirname "$0")/common.sh"

exists() {
  [ -n "$(kube get secret "$1" --ignore-not-found -o name)" ]
}

case "${1:-}" in
  signing-key)
    if exists warren-signing-key; then echo "warren-signing-key exists; left as it is"; exit 0; fi
    need od "coreutils"
    key="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    kube create secret generic warren-signing-key --from-literal=key="$key"
    ;;
  keda)
    if exists warren-keda-rabbitmq; then echo "warren-keda-rabbitmq exists; left as it is"; exit 0; fi
    # KEDA's own user when the least-privilege component made it, else the administrator.
    from=warren-rabbitmq-default-user
    if exists warren-keda-user-credentials; then from=warren-keda-user-credentials; fi
    user="$(kube get secret "$from" -o jsonpath='{.data.username}' | base64 -d)"
    pass="$(kube get secret "$from" -o jsonpath='{.data.password}' | base64 -d)"
    [ -n "$user" ] || die "no $from secret yet: is the RabbitmqCluster up?" 3
    kube create secret generic warren-keda-rabbitmq \
      --from-literal=host="http://$user:$pass@warren-rabbitmq.$NAMESPACE.svc:15672/"
    echo "warren-keda-rabbitmq: KEDA reads the queue as the user in $from"
    ;;
  *)
    die "usage: $SCRIPT signing-key | keda"
    ;;
esac
