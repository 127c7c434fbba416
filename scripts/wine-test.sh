#!/usr/bin/env bash
# wine-test.sh TEST.EXE [ARGS]: runs a Go test binary built for Windows under Wine, in
# a temporary prefix (scripts/wine/prefix.sh), and exits with its status.
set -euo pipefail
exe=$(realpath "${1:?usage: wine-test.sh TEST.EXE [ARGS]}")
shift
. "$(dirname "$0")/wine/prefix.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/shardlift-wine.XXXXXX")
trap 'wine_stop; rm -rf "$work"' EXIT
wine_prefix "$work/prefix"
"$wine" "$exe" -test.v "$@"
