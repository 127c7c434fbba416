//go:build !linux

package gui

// desktopHasTray reports whether the session shows tray entries: Windows' notification
// area and macOS's menu bar always do.
func desktopHasTray() bool { return true }
