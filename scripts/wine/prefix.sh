# Sourced by scripts/windows-smoke.sh and scripts/wine-test.sh: wine_prefix DIR makes
# DIR a fresh Wine prefix (WINEPREFIX) that runs Go programs, and sets $wine.
#
# Wine is Debian 12's wine64 (8.0). It lacks bcryptprimitives.dll (Wine has it from
# 9.0), which Go's Windows runtime loads from System32 at start-up (as on every
# Windows 10 and 11): a stand-in built from bcryptprimitives.c goes into the prefix's
# System32, never into the package.
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)
wine_prefix() {
	[ -x "$wine" ] || { echo "wine64 not found (Debian package wine64)" >&2; return 1; }
	export WINEPREFIX=$1 WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
	"$wine" wineboot --init >/dev/null 2>&1 || true
	x86_64-w64-mingw32-gcc -O2 -shared -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
		"$(dirname "${BASH_SOURCE[0]}")/bcryptprimitives.c" -ladvapi32
}
# wine_stop stops the prefix's wineserver (and every program still running in it).
wine_stop() { "$(dirname "$wine")/wineserver" -k 2>/dev/null || wineserver -k 2>/dev/null || true; }
