// Package apitest helps tests drive the API without a migration: a Control whose
// answers a test sets, a server for it, and the metrics it serves parsed.
//
//	test ─► Control (Snap, Err) ─► Serve / ServeWithToken ─► addr ─► a client under test
//	                                                          └─► Scrape ─► MetricValue
package apitest
