package checkpoints

import "path/filepath"

// OplogBufferDir is where a migration keeps its shards' oplog buffers: beside the
// state file and the logs, a folder per migration (engine.Config.OplogBufferDir).
func OplogBufferDir(statePath, id string) string {
	return filepath.Join(filepath.Dir(statePath), "oplog-buffer", id)
}
