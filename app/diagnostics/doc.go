// Package diagnostics is what the app logs and what a DBA sends when asking for help,
// with no secret in either: the secrets seen in this process, masked in every line;
// the recent lines of the app's log; each migration's own log file; the diagnostics
// zip; the app's version and build.
//
//	passwords seen ─► SecretSet ─┬─► NewAppLogger ─┬─ LogRing (recent lines)
//	                             │                  ├─ stderr (warnings)
//	                             │                  └─ MigrationLogs ─► <state dir>/logs/<id>.log
//	                             └─► Export: record, checkpoints, snapshot, log lines, log file,
//	                                 VersionInfo ─► Redact ─► zip
//
// The CLI's migrate and the desktop app (package gui) both log through it.
package diagnostics
