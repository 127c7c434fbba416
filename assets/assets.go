// Package assets holds Shardlift's embedded resources: the app icon, drawn once and
// committed as a PNG (FyneApp.toml points `fyne package` at the same file).
package assets

import (
	_ "embed"

	"fyne.io/fyne/v2"
)

//go:embed icon.png
var iconPNG []byte

// Icon is the app icon, for the window and the step list.
var Icon = fyne.NewStaticResource("icon.png", iconPNG)
