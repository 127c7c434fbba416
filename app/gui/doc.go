// Package gui is the desktop app: the window `shardlift` opens without arguments, and
// the bridge that serves the screens (package ui) from the engine, the state file and
// the keyring.
//
//	Run ─► display check ─► logger ─► state file (handed over by a background Shardlift)
//	    ─► bridge (ui.Backend) ─► ui.New ─► window ... closed ─► keepSyncing in the background
//	bridge ─┬─ connOf / checksOf (bridge_conn.go): the screens' forms ─► endpoints, findings ─► checks
//	        ├─ liveMigration (bridge_migration.go): one engine.Migration behind ui.Migration
//	        ├─ sandboxPair (bridge_sandbox.go): "Try with sandbox clusters"
//	        └─ checkpoints (state file), keyring, diagnostics (logs, the zip)
//	SHARDLIFT_SCREENSHOTS ─► runTour (gui_tour.go) walks the screens and saves each one
//
// It is the only package that sees both the screens and the engine.
package gui
