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

.PHONY: all deps deps-test build run test test-short vet clean

all: build

# Installs only the packages that are missing (apt-get update only when something is).
deps:
	@scripts/apt-install.sh $(DEB_BUILD)
	@command -v $(GO) >/dev/null || { echo "Go 1.24 or newer is needed: install it from https://go.dev/dl/ into /usr/local/go" >&2; exit 1; }

deps-test: deps
	@scripts/apt-install.sh $(DEB_TEST)

build: deps
	$(GO) build -o $(BIN) .

# Until the desktop app lands, `make run` serves the sandbox clusters with a seeded data
# set and a live write load; connect any MongoDB tool to the two URIs it prints.
run: build
	./$(BIN) sandbox --docs 20000 --load 200

vet: deps
	$(GO) vet ./...

# Every test, with a real Secret Service for the keyring tests.
test: deps-test vet
	scripts/keyring-session.sh $(GO) test -timeout 25m ./...

clean:
	rm -rf bin dist
