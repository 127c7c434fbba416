# Shardlift. `make run` and `make test` work on a fresh Debian 12 machine as root:
# each installs what is missing first.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin/shardlift

# Debian packages: cgo + OpenGL/X11 headers for Fyne; a real Secret Service (gnome-keyring
# inside dbus-run-session) for the keyring tests; Xvfb + ImageMagick for real-window checks.
DEB_BUILD := gcc pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev \
	libxinerama-dev libxi-dev libxxf86vm-dev
DEB_TEST := gnome-keyring dbus dbus-x11 xvfb xauth imagemagick
# mongosh for the sandbox's real-client test: 2.12.0, and 1.10.6 for MongoDB 3.6-4.2,
# which mongosh 2.12 refuses (sandbox/mongosh_test.go reads them from this prefix).
MONGOSH_PREFIX := /opt/shardlift-tools
MONGOSH_VERSIONS := 2.12.0 1.10.6

.PHONY: all deps deps-test build build-gssapi run screenshots package test test-short vet clean
.PHONY: faults test-matrix package-windows test-windows

all: build

# Installs only the packages that are missing (apt-get update only when something is).
deps:
	@scripts/apt-install.sh $(DEB_BUILD)
	@command -v $(GO) >/dev/null || { echo "Go 1.24 or newer is needed: install it from https://go.dev/dl/ into /usr/local/go" >&2; exit 1; }

deps-test: deps
	@scripts/apt-install.sh $(DEB_TEST)
	@scripts/mongosh-install.sh $(MONGOSH_PREFIX) $(MONGOSH_VERSIONS)

build: deps
	$(GO) build -o $(BIN) .

# The same binary with Kerberos (authMechanism=GSSAPI): the driver's gssapi build tag,
# cgo against MIT Kerberos (Debian's libkrb5-dev).
DEB_GSSAPI := libkrb5-dev
build-gssapi: deps
	@scripts/apt-install.sh $(DEB_GSSAPI)
	$(GO) build -tags gssapi -o $(BIN) .

# The desktop app. "Try with sandbox clusters" walks the whole flow offline; `shardlift
# sandbox` serves the same clusters to other MongoDB tools.
run: build
	./$(BIN)

# The real app under Xvfb walks the sandbox flow and saves every screen at 1280x800 and
# 1024x700 into screenshots/.
screenshots: deps-test build
	scripts/screenshots.sh $(BIN) screenshots

# The Linux package (tar.xz with the binary, a desktop entry and the icon) in dist/,
# built by the fyne tool from FyneApp.toml; the tool is installed when missing. The
# tool bumps Build in FyneApp.toml after each package: the file is put back, since the
# binary's metadata (app/diagnostics/diagnostics.go) must match it.
FYNE_TOOL := fyne.io/tools/cmd/fyne@v1.7.4
GOBIN_DIR = $(shell $(GO) env GOPATH)/bin
package: deps
	@command -v fyne >/dev/null || test -x $(GOBIN_DIR)/fyne || $(GO) install $(FYNE_TOOL)
	mkdir -p dist
	cp FyneApp.toml dist/FyneApp.toml.orig; \
	PATH="$(GOBIN_DIR):$$PATH" fyne package --os linux --release; status=$$?; \
	mv -f dist/FyneApp.toml.orig FyneApp.toml; exit $$status
	mv -f Shardlift.tar.xz dist/
	@tar -tJf dist/Shardlift.tar.xz

# The Windows package (issue 18): dist/Shardlift.exe for Windows amd64, cross-compiled
# with Debian's mingw-w64 (cgo, for Fyne's OpenGL driver) by the fyne tool, which
# embeds the icon and the version metadata of FyneApp.toml and builds a GUI program
# (no console window; a command typed in cmd.exe or PowerShell still prints, see
# app/console_windows.go). FyneApp.toml is put back as for `make package`.
DEB_WINDOWS := gcc-mingw-w64-x86-64
WINDOWS_ENV := CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc
package-windows: deps
	@scripts/apt-install.sh $(DEB_WINDOWS)
	@command -v fyne >/dev/null || test -x $(GOBIN_DIR)/fyne || $(GO) install $(FYNE_TOOL)
	mkdir -p dist
	cp FyneApp.toml dist/FyneApp.toml.orig; \
	PATH="$(GOBIN_DIR):$$PATH" $(WINDOWS_ENV) fyne package --os windows --release; status=$$?; \
	mv -f dist/FyneApp.toml.orig FyneApp.toml; exit $$status
	mv -f Shardlift.exe dist/
	@ls -l dist/Shardlift.exe

# The Windows package under Wine (Debian's wine64), not part of `make test`:
# Shardlift.exe --help, validate and a short migrate (API token, metrics, cutover,
# done) against `shardlift sandbox` running on Linux, a screenshot of its window
# under Xvfb (dist/windows-smoke/window.png); the ui package's headless tests
# (notifications, tray) and the store's keyring tests (go-keyring's Windows
# backend, against Wine's Credential Manager API) built for Windows.
DEB_WINE := wine64 xvfb xauth imagemagick curl
test-windows: package-windows build
	@scripts/apt-install.sh $(DEB_WINE)
	scripts/windows-smoke.sh dist/Shardlift.exe $(BIN) dist/windows-smoke
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) test -c -o bin/ui.test.exe ./ui
	scripts/wine-test.sh bin/ui.test.exe -test.run 'Notif|Tray'
	GOOS=windows GOARCH=amd64 CGO_ENABLED=0 $(GO) test -c -o bin/store.test.exe ./store
	SHARDLIFT_KEYRING=1 scripts/wine-test.sh bin/store.test.exe -test.run 'TestSecrets|TestRemovingAMigrationsPasswords|TestConcurrentSecretCalls'

vet: deps
	$(GO) vet ./...
	@unformatted=$$("$$($(GO) env GOROOT)/bin/gofmt" -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt-formatted (run gofmt -w on them):" $$unformatted >&2; exit 1; fi

# Every test, with a real Secret Service for the keyring tests. go test runs the
# packages' tests in the order given, 3 at once (-p 3; the default is one per core, 2
# on the CI): the two longest, the engine's end-to-end tests and app/faults' short
# fault suite (5 to 8 minutes each on 2 cores), start first, and every other package
# follows in the third slot, then in whichever frees first (in ./... order the engine
# came 14th). With 2 slots the other packages waited for the fault suite, and a third
# of them is waiting on timeouts (fakes whose shard hosts refuse connections), while
# the cores were idle 44 % of the run. -vet=off: `make vet` has run every analyzer.
# GOGC=200: most of the tests' CPU is the sandbox (FerretDB) in the test processes,
# and a fifth of it was the garbage collector; with twice the heap headroom the
# engine's tests took 266 CPU-s instead of 328, their peak RSS 496 MiB against 481.
test: deps-test vet
	GOGC=200 scripts/keyring-session.sh $(GO) test -p 3 -vet=off -timeout 25m ./engine ./app/faults ./...

# mongosh against every MongoDB release the sandbox presents (`make test` checks 3.6,
# 7.0 and 8.0), then a migration under a write load on each personality, 8.0 with a
# config shard, and upward (4.4 -> 7.0, 5.0 -> 8.0, 6.0 -> 8.0) (`make test` migrates
# 3.6, 5.0 -> 8.0 and 8.0 with a config shard).
test-matrix: deps-test
	SHARDLIFT_MONGOSH_ALL=1 $(GO) test -count=1 -timeout 15m -run '^TestMongoshAcceptsEveryPersonality$$' -v ./sandbox
	SHARDLIFT_E2E_MATRIX=1 $(GO) test -count=1 -timeout 30m -run '^TestSandboxReleasesMigrateWithTheirZones$$' -v ./engine

# The reliability suite (issue 9), long form: every fault scenario of app/faults with
# more data, 20 kill -9s and 30 s outages, then each fuzz target for FUZZTIME. It prints
# one line per scenario and a total line (also left in bin/faults.txt for the README's
# "Reliability" section). FAULTS_SEED=<seed printed by a run> replays that run. `make
# test` runs the short form of the same scenarios and the fuzz seed corpora.
FUZZTIME ?= 30s
FAULTS_SEED ?=
FUZZ_TARGETS := engine/topology:FuzzParseHostString engine/topology:FuzzConnectionString \
	engine/topology:FuzzHostList engine/topology:FuzzCAPEM engine/validate:FuzzServerVersions \
	store:FuzzOpenStateFile store:FuzzRecordDecode engine/oplog:FuzzDecode engine/oplog:FuzzApplyDiff
faults: deps
	@mkdir -p bin && rm -f bin/faults.txt
	SHARDLIFT_FAULTS_LONG=1 SHARDLIFT_FAULTS_SEED=$(FAULTS_SEED) SHARDLIFT_FAULTS_REPORT=$(CURDIR)/bin/faults.txt \
		$(GO) test -count=1 -timeout 120m -run '^TestFaultSuite$$' ./app/faults; status=$$?; \
	cat bin/faults.txt 2>/dev/null; \
	for t in $(FUZZ_TARGETS); do \
		$(GO) test ./$${t%%:*} -run '^$$' -fuzz "^$${t##*:}$$" -fuzztime $(FUZZTIME) || status=1; \
	done; exit $$status

# The benchmarks (issue 8) on sandbox clusters started in-process: one table, each figure
# next to a ceiling measured in the same run on the same clusters (initial sync vs plain
# bulk insert, oplog replay vs direct bulk writes, lag under load, decode cost on one core,
# peak RSS of the copying process at 1x and 4x the data). The table goes to stdout and
# bin/bench.md. Default sizes are the issue's (200,000 docs, 4x for memory, 100,000
# entries, a 1-minute load): about 15 minutes on 2 idle cores. BENCH_SCALE=0.1 shrinks
# every size for a quick look. Nothing here runs in `make test`.
# Figure 6 (issue 13) is a real `shardlift migrate` of two 8.0 sandboxes under the
# sandbox command's load of 300 writes/s on numeric _ids: the load sustained, the time
# from the copy's end to ready, and the lag for 3 minutes after the copy (5 minutes in
# all); `make bench BENCH_ONLY=6` runs it alone.
# Figure 7 (issue 17) is Prepare's placement of a source with 100,000 chunks on a
# destination whose split and moveChunk take a real cluster's time (about 2 minutes;
# `make bench BENCH_ONLY=7`).
.PHONY: bench
BENCH_SCALE ?= 1
BENCH_ONLY ?=
bench:
	@command -v $(GO) >/dev/null || { echo "Go 1.24 or newer is needed: install it from https://go.dev/dl/ into /usr/local/go" >&2; exit 1; }
	@mkdir -p bin
	$(GO) build -o $(BIN) .
	$(GO) build -o bin/shardlift-bench ./app/bench/cmd/shardlift-bench
	set -o pipefail; ./bin/shardlift-bench --scale $(BENCH_SCALE) --only "$(BENCH_ONLY)" --shardlift $(BIN) | tee bin/bench.md

clean:
	rm -rf bin dist
