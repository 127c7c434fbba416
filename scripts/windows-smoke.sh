#!/usr/bin/env bash
# windows-smoke.sh EXE LINUX_BINARY OUTDIR: the Windows build under Wine (make
# test-windows). Runs Shardlift.exe --help; starts `shardlift sandbox` (the Linux
# binary) and runs Shardlift.exe validate against it, then a short migrate --api with
# --api-token-file, driven to done by Shardlift.exe's own thin clients (with its
# token), checking GET /metrics and that a request without the token is refused; then
# opens the window under Xvfb and saves a screenshot to OUTDIR/window.png. Exits
# non-zero at the first step that fails, saying which.
#
# Wine: scripts/wine/prefix.sh (and why it adds a stand-in bcryptprimitives.dll).
set -euo pipefail
exe=${1:?usage: windows-smoke.sh EXE LINUX_BINARY OUTDIR}
linux=${2:?usage: windows-smoke.sh EXE LINUX_BINARY OUTDIR}
out=${3:?usage: windows-smoke.sh EXE LINUX_BINARY OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
exe=$(realpath "$exe")
linux=$(realpath "$linux")
mkdir -p "$out"
out=$(realpath "$out")

. "$here/wine/prefix.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/shardlift-wine.XXXXXX")
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	wine_stop
	rm -rf "$work"
}
trap cleanup EXIT
step() { echo "== $*" >&2; }
fail() { echo "windows-smoke: FAILED: $*" >&2; exit 1; }
win() { "$wine" "$exe" "$@"; }

step "Wine prefix ($("$wine" --version 2>/dev/null || true))"
wine_prefix "$work/prefix"

step "Shardlift.exe --help"
win --help >"$work/help.txt" 2>&1 || fail "--help exited $? : $(cat "$work/help.txt")"
grep -q "validate" "$work/help.txt" || fail "--help does not list the commands: $(cat "$work/help.txt")"
win version >"$work/version.txt" 2>&1 || fail "version: $(cat "$work/version.txt")"
grep -q "windows/amd64" "$work/version.txt" || fail "version does not say windows/amd64: $(cat "$work/version.txt")"
cat "$work/version.txt" >&2

step "shardlift sandbox (Linux) for the Windows build to migrate"
"$linux" sandbox --shards 2 --docs 2000 >"$work/sandbox.txt" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q '^destination: ' "$work/sandbox.txt" && break; sleep 0.2; done
src=$(sed -n 's/^source: //p' "$work/sandbox.txt")
dst=$(sed -n 's/^destination: //p' "$work/sandbox.txt")
[ -n "$src" ] && [ -n "$dst" ] || fail "the sandbox did not start: $(cat "$work/sandbox.txt")"

step "Shardlift.exe validate"
win validate --source "$src" --destination "$dst" >"$work/validate.txt" 2>&1 || fail "validate: $(cat "$work/validate.txt")"
tail -3 "$work/validate.txt" >&2

step "Shardlift.exe migrate --api --api-token-file (Windows paths)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
api=127.0.0.1:$port
state='C:\users\Public\shardlift-smoke\state.db'
token='C:\users\Public\shardlift-smoke\api.token'
mkdir -p "$WINEPREFIX/drive_c/users/Public/shardlift-smoke"
win migrate --source "$src" --destination "$dst" --state "$state" --api "$api" --api-token-file "$token" \
	--cutover-window 10m --progress-every 2s >"$work/migrate.txt" 2>&1 &
migrate=$!
pids+=($migrate)
tokfile=$WINEPREFIX/drive_c/users/Public/shardlift-smoke/api.token
status() { # GET /status with the token, once migrate has written it
	[ -s "$tokfile" ] || return 0
	curl -fsS -H "Authorization: Bearer $(tr -d '\r\n' <"$tokfile")" "http://$api/status" 2>/dev/null || true
}
await() { # await WHAT REGEX
	for _ in $(seq 1 600); do status | grep -Eq "$2" && return 0; kill -0 "$migrate" 2>/dev/null || break; sleep 0.5; done
	fail "never $1; migrate said: $(cat "$work/migrate.txt")"
}
await "ready with every shard in sync" '"canCutover": true'
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$api/status")
[ "$code" = 401 ] || fail "GET /status without the token answered $code, want 401"
curl -fsS -H "Authorization: Bearer $(tr -d '\r\n' <"$tokfile")" "http://$api/metrics" >"$work/metrics.txt" ||
	fail "GET /metrics with the token"
grep -q '^shardlift_migration_state{state="ready"} 1' "$work/metrics.txt" || fail "/metrics: $(head -40 "$work/metrics.txt")"
win status --api "$api" >"$work/status-notoken.txt" 2>&1 && fail "Shardlift.exe status without the token was accepted"
win cutover --api "$api" --api-token-file "$token" >"$work/cutover.txt" 2>&1 || fail "cutover: $(cat "$work/cutover.txt")"
await "an optime gap of 0" '"optimeGapSeconds": 0[,}]'
win done --api "$api" --api-token-file "$token" >"$work/done.txt" 2>&1 || fail "done: $(cat "$work/done.txt")"
wait "$migrate" || fail "migrate exited $?: $(cat "$work/migrate.txt")"
grep -q "done: the destination is finalized" "$work/migrate.txt" || fail "migrate did not finish: $(cat "$work/migrate.txt")"
grep -q 'C:\\users\\Public\\shardlift-smoke\\logs\\' "$work/migrate.txt" || fail "the log path is not a Windows path: $(head -3 "$work/migrate.txt")"
head -4 "$work/migrate.txt" >&2

step "the window under Xvfb, and a screenshot"
if ! command -v Xvfb >/dev/null || ! command -v import >/dev/null; then
	fail "Xvfb and ImageMagick are needed for the screenshot (make deps-test)"
fi
display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp >"$work/xvfb.txt" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -e "/tmp/.X11-unix/X${display#:}" ] && break; sleep 0.1; done
# Wine's desktop (its explorer process) started with the prefix, without a display,
# and every later program of that wineserver would share it: restart with the display.
wine_stop
DISPLAY=$display "$wine" "$exe" >"$work/gui.txt" 2>&1 &
pids+=($!)
shot=$out/window.png
for _ in $(seq 1 60); do
	sleep 1
	DISPLAY=$display import -window root "$shot" 2>/dev/null || continue
	# A drawn window has text and widgets: many colours, not one background.
	colours=$(identify -format '%k' "$shot" 2>/dev/null || echo 0)
	[ "$colours" -gt 50 ] && break
done
[ "${colours:-0}" -gt 50 ] || fail "no window was drawn ($colours colours on screen); the app said: $(cat "$work/gui.txt")"
echo "windows-smoke: every step passed; screenshot $shot ($colours colours)" >&2
