package gui

import "github.com/godbus/dbus/v5"

// desktopHasTray reports whether the session shows tray entries: on Linux, whether a
// StatusNotifierItem host (the freedesktop tray protocol Fyne's systray speaks) is on
// the session bus. Without one, a window hidden to the tray could not be opened again.
func desktopHasTray() bool {
	conn, err := dbus.SessionBus()
	if err != nil {
		return false
	}
	var owner string
	err = conn.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, "org.kde.StatusNotifierWatcher").Store(&owner)
	return err == nil && owner != ""
}
