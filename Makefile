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

.PHONY: all deps deps-test build run screenshots package test test-short vet clean

all: build

# Installs only the packages that are missing (apt-get update only when something is).
deps:
	@scripts/apt-install.sh $(DEB_BUILD)
	@command -v $(GO) >/dev/null || { echo "Go 1.24 or newer is needed: install it from https://go.dev/dl/ into /usr/local/go" >&2; exit 1; }

deps-test: deps
	@scripts/apt-install.sh $(DEB_TEST)

build: deps
	$(GO) build -o $(BIN) .

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
# binary's metadata (app/gui.go) must match it.
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

vet: deps
	$(GO) vet ./...

# Every test, with a real Secret Service for the keyring tests.
test: deps-test vet
	scripts/keyring-session.sh $(GO) test -timeout 25m ./...

clean:
	rm -rf bin dist
