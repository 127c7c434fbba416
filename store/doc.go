// Package store keeps Shardlift's own state on the workstation, so that a migration
// survives the app being closed, crashing or the machine rebooting, and keeps the
// passwords out of that state:
//
//	engine ─► checkpoint sink (declared by engine, wired by app) ─┐
//	app, ui ─► migrations, lifecycle history, timer, summary ──────┼─► Store ─► bbolt file (state.db)
//	app, ui ─► source/destination passwords ─► Secrets ─► go-keyring ─► D-Bus Secret Service
//
// Layout of the bbolt file (schema 1); every value is a CRC-32C followed by a BSON
// document:
//
//	meta/         schema = {format: "shardlift-state", version: 1}
//	migrations/   <migration id> = Migration: connection settings without passwords,
//	              the two clusters' identities, lifecycle state and history, balancer's
//	              original state, timer, summary
//	checkpoints/  <migration id>/ <shard> = ShardCheckpoint: phase, T0, applied ts,
//	              copy progress per partition (one small record, rewritten every second)
//
// A file is inspected read-only before it is opened for writing: a damaged file, a
// file written by a newer Shardlift or a file that is not Shardlift's is reported and
// left exactly as it was. Opening a sound file and reading it writes nothing to it. Every write is one bbolt transaction, so a crash leaves either
// the previous checkpoint or the new one, never half of one.
//
// The package is a leaf: it imports only bbolt, go-keyring, the MongoDB driver's bson
// package and the standard library. States and phases are plain strings here; the
// engine owns their meaning.
package store
