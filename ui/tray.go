package ui

import (
	"fmt"

	"fyne.io/fyne/v2"

	"github.com/shardlift/shardlift/engine"
)

// The system tray entry: where the desktop has a tray, "Keep syncing in the
// background" hides the window instead of closing it, and the tray shows the
// migration's state and opens the window again. The snapshot tick keeps running
// meanwhile, so the notifications (notify.go) keep coming.

// Tray is the desktop's system tray: Fyne's desktop.App on a desktop that has one.
type Tray interface {
	SetSystemTrayMenu(menu *fyne.Menu)
}

// UseSystemTray puts Shardlift in tray t. Call it before ShowAndRun, on a desktop
// that shows a tray (where none does, the window closes as before).
func (a *App) UseSystemTray(t Tray) {
	a.tray = t
	a.updateTray("No migration open")
}

// trayStatus is the tray's first line for a snapshot.
func trayStatus(s engine.Snapshot) string {
	return fmt.Sprintf("%s: %s", s.Name, stateText(s.State))
}

// updateTray shows status in the tray; the menu is rebuilt only when it changes.
func (a *App) updateTray(status string) {
	if a.tray == nil || status == a.trayStatus {
		return
	}
	a.trayStatus = status
	a.tray.SetSystemTrayMenu(fyne.NewMenu("Shardlift",
		&fyne.MenuItem{Label: status, Disabled: true},
		fyne.NewMenuItem("Open Shardlift", a.showWindow),
		fyne.NewMenuItemSeparator(),
		// Quit asks, as closing the window does, whether to keep syncing or pause.
		&fyne.MenuItem{Label: "Quit Shardlift…", IsQuit: true, Action: func() {
			a.showWindow()
			a.requestClose()
		}},
	))
}

// showWindow brings the window back from the tray.
func (a *App) showWindow() {
	a.win.Show()
	a.win.RequestFocus()
}
