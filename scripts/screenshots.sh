#!/usr/bin/env bash
# screenshots.sh BINARY DIR: runs the real Shardlift under Xvfb; the app walks the
# sandbox flow on its own (SHARDLIFT_SCREENSHOTS) and saves a PNG of every screen at
# 1280x800 and 1024x700 into DIR.
#
# The app's state file lives in a temporary folder (XDG_CONFIG_HOME), so the run
# neither sees nor changes the user's migrations. When gnome-keyring is installed the
# passwords go to a private, temporary keyring (scripts/keyring-session.sh); without
# it the app shows its "keyring not available" notice, as it would for a user.
set -euo pipefail
bin=${1:?usage: screenshots.sh BINARY DIR}
dir=${2:?usage: screenshots.sh BINARY DIR}
here=$(cd "$(dirname "$0")" && pwd)

command -v xvfb-run >/dev/null || { echo "screenshots: xvfb-run not found (Debian package xvfb)" >&2; exit 1; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -f "$dir"/*.png

config=$(mktemp -d "${TMPDIR:-/tmp}/shardlift-screenshots.XXXXXX")
trap 'rm -rf "$config"' EXIT

# FYNE_SCALE=1: one canvas pixel per screen pixel, so a 1280x800 window is a
# 1280x800 PNG. The screen is larger than the largest window.
XDG_CONFIG_HOME=$config FYNE_SCALE=1 FYNE_THEME=light SHARDLIFT_SCREENSHOTS=$dir \
	xvfb-run -a -s "-screen 0 1600x1000x24" "$here/keyring-session.sh" "$bin"
ls -1 "$dir"
