#!/usr/bin/env bash
# Runs a command (e.g. `go test ./...`) inside a private D-Bus session with an unlocked
# gnome-keyring Secret Service, and sets SHARDLIFT_KEYRING=1 so that the keyring tests
# run against it instead of skipping.
#
#   scripts/keyring-session.sh go test ./...
#
# The keyring lives in a temporary folder (XDG_DATA_HOME of the daemon only) that is
# removed afterwards: the tests never touch the user's own keyring, and no keyring
# left by an earlier run (with another password) can be locked. HOME is not changed.
# Needs dbus-run-session and dbus-send (Debian: dbus) and gnome-keyring-daemon
# (Debian: gnome-keyring); when one is missing the command runs without a keyring, and
# the keyring tests skip (or fail when CI=true).
set -euo pipefail

if [[ "${SHARDLIFT_KEYRING:-}" == 1 ]]; then
	# Already inside a keyring session (nested call): just run the command.
	exec "$@"
fi

if [[ "${SHARDLIFT_KEYRING_SESSION:-}" != 1 ]]; then
	missing=()
	command -v dbus-run-session >/dev/null || missing+=("dbus-run-session (package dbus)")
	command -v dbus-send >/dev/null || missing+=("dbus-send (package dbus)")
	command -v gnome-keyring-daemon >/dev/null || missing+=("gnome-keyring-daemon (package gnome-keyring)")
	if ((${#missing[@]} > 0)); then
		list=$(printf '%s, ' "${missing[@]}")
		echo "keyring-session: not found: ${list%, }; running without a Secret Service: keyring tests will skip (or fail when CI=true)" >&2
		exec "$@"
	fi
	export SHARDLIFT_KEYRING_SESSION=1
	exec dbus-run-session -- bash "$0" "$@"
fi

# Inside the private session bus.
data=$(mktemp -d "${TMPDIR:-/tmp}/shardlift-keyring.XXXXXX")
daemon_pid=
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
	# The daemon usually exits with the bus, but not when the bus goes away while
	# it is still starting: stop it explicitly.
	if [[ -n "$daemon_pid" ]]; then
		kill "$daemon_pid" 2>/dev/null || true
	fi
	rm -rf "$data"
}
trap cleanup EXIT
password=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

# --unlock reads the login keyring's password on stdin, creates that keyring (unlocked)
# and daemonizes; it prints variables such as GNOME_KEYRING_CONTROL to export.
if ! env_out=$(printf '%s' "$password" | XDG_DATA_HOME="$data" gnome-keyring-daemon --unlock --components=secrets); then
	echo "keyring-session: gnome-keyring-daemon failed to start" >&2
	exit 1
fi
unset password
while IFS= read -r line; do
	[[ "$line" == *=* ]] && export "${line?}"
done <<<"$env_out"

# Wait until the Secret Service is on the bus, and learn the daemon's pid from it.
for _ in $(seq 50); do
	daemon_pid=$(dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
		org.freedesktop.DBus.GetConnectionUnixProcessID string:org.freedesktop.secrets 2>/dev/null |
		awk '$1 == "uint32" { print $2 }') || true
	[[ -n "$daemon_pid" ]] && break
	sleep 0.1
done
if [[ -z "$daemon_pid" ]]; then
	echo "keyring-session: the Secret Service did not appear on the session bus" >&2
	exit 1
fi

export SHARDLIFT_KEYRING=1
set +e
"$@"
status=$?
exit "$status"
