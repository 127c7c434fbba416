// Package topology connects to a MongoDB deployment and finds out what it is, as
// plain values the validator, the engine and the UI can use. It changes nothing on
// the servers.
//
//	Endpoint (URI or hosts, user, password, TLS, CA, timeout)
//	    │ ClientOptions / Connect: preflight DNS ─► TCP ─► TLS, then driver handshake + auth + ping
//	    ▼
//	mongos ── hello ─► Kind (mongos | replica set | standalone), buildInfo, FCV
//	    ├─ listShards ─► shards "rs/h1:p,h2:p" ─┐ (ParseHostString, strict)
//	    ├─ serverStatus / getShardMap ─► config server string (CSRS or legacy)
//	    │                                       ▼
//	    │        every member, direct (ForHosts): hello, buildInfo, FCV, credentials
//	    │        shard primary: oplog first/last ts, connectionStatus privileges
//	    ├─ config.databases, config.collections, config.chunks (by ns ≤4.4, by uuid ≥5.0)
//	    ├─ config.version clusterId + listShards + mongos addresses ─► Identity (Compare: one cluster?)
//	    ├─ shardlift_marker.migration ─► Marker (a migration holds this destination)
//	    ├─ balancerStatus (else config.settings)
//	    ├─ listDatabases ─► listCollections ─► $collStats / collStats / estimated count
//	    ├─ usersInfo, rolesInfo (names and roles only, never credentials)
//	    └─ connectionStatus showPrivileges
//	    ▼
//	Cluster{...; Problems} — parts that could not be read are listed, not fatal
//
// Failures are classified in errors.go: each is an *Error whose Kind is a sentinel
// (ErrDNS, ErrRefused, ErrTimeout, ErrTLSRequired, ErrUnknownAuthority, ErrInvalidCA,
// ErrAuthFailed, ErrUnauthorized, ...) and Fix(err) says what the DBA should do.
package topology
