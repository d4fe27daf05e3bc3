# shellcheck shell=bash
# Sourced by the scripts that make images from Debian's packages (scripts/broker4.sh,
# scripts/kube/stand-in-base.sh): the machine's own Debian mirror, read from its apt sources
# when they run (nothing of it is written into the repository), and a minbase root from it.

# Prints the machine's Debian mirror: the first URI of its apt sources (deb822 or one-line
# style), not the security one. $1 names the calling script in the error.
debian_mirror() {
  local mirror
  mirror="$(
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources || true
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list || true
    } | awk '$1 == "URIs:" {print $2} $1 == "deb" {print ($2 ~ /^\[/ ? $3 : $2)}' |
      grep -v security | head -n 1 || true
  )"
  if [ -z "$mirror" ]; then
    echo "$1: no Debian mirror found in /etc/apt/sources.list*" >&2
    exit 2
  fi
  echo "$mirror"
}

# debootstrap_minbase NAME SUITE ROOT MIRROR: a minbase Debian SUITE in ROOT from MIRROR, its
# log beside ROOT; on failure the log's end, and exit 1.
debootstrap_minbase() {
  local log
  log="$(dirname "$3")/debootstrap.log"
  debootstrap --variant=minbase "$2" "$3" "$4" >"$log" 2>&1 || {
    tail -n 20 "$log" >&2
    echo "$1: debootstrap failed" >&2
    exit 1
  }
}
