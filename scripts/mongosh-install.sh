#!/usr/bin/env bash
# mongosh-install.sh PREFIX VERSION...: installs each mongosh VERSION from npm into
# PREFIX/mongosh-VERSION, unless it is there already, so a machine (or a CI runner
# keeping PREFIX) pays the ~2 minutes of npm once. Node.js and npm come from Debian
# when missing. The sandbox's mongosh test (sandbox/mongosh_test.go) runs them.
set -euo pipefail
prefix=$1
shift
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
for v in "$@"; do
  [ -x "$prefix/mongosh-$v/bin/mongosh" ] && continue
  command -v npm >/dev/null || "$(dirname "$0")/apt-install.sh" nodejs npm
  echo "installing mongosh $v into $prefix/mongosh-$v (npm)" >&2
  $sudo npm install --global --prefix "$prefix/mongosh-$v" "mongosh@$v" \
    --no-fund --no-audit --loglevel=error </dev/null
done
