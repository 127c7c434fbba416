// Package api serves a running migration over HTTP, on a loopback address only: the
// JSON API of `shardlift migrate --api ADDR`, its token and its Prometheus metrics.
//
//	request ─► loopbackOnly ─► requireToken (apitoken.go) ─┬─ GET /status ─► toStatus(Control.Snapshot()) ─► JSON
//	                                                        ├─ GET /metrics ─► snapshotCollector (metrics.go)
//	                                                        └─ POST action ─► Control (the engine's Migration) ─► status, or ErrorBody
//
// The thin clients (`shardlift status`, `cutover`, `done`, ...) are commands of package
// app; they reach the API with Call.
package api
