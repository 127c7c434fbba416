// Package ui is Shardlift's desktop app: a wizard modeled on the Atlas live-migration
// screens, one screen per step, drawn with Fyne.
//
//	Start ─► Before you start ─► Connections ─(Validate, Start migration)─► Sync
//	   ▲                                                                      │
//	   └── Summary (done, cancelled, expired) ◄── Cutover ◄── Ready for cutover
//
// A screen says "ready" only when the engine accepts Start cutover
// (Snapshot.CanStartCutover): a shard that failed, fell behind or restarts is named
// instead, with its Restart, on the Sync and the Cutover screens alike.
//
// The screens talk to the rest of Shardlift through Backend and Migration, declared
// here and implemented by the app package. Data flows one way:
//
//	engine ─► Migration.Snapshot() ◄─ ticker goroutine (4 per second)
//	                                        │ one fyne.Do per tick
//	                                        ▼
//	                                  current screen.show(snapshot)
//
// Backend calls that may do I/O run in goroutines owned by the App (runner) with a
// context cancelled when the window closes; their results come back through fyne.Do.
// The event goroutine never waits on the network, the disk or the keyring.
package ui
