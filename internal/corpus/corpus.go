// Package corpus locates, for tests, the shared MongoDB corpus: oplog entries written
// by real servers and transaction cases with their post-images. It lives beside the
// repository, at <repo root>/../shared/corpus/mongo-tools, the repo root being the
// folder that holds go.mod; tests skip, saying why, when it is absent.
package corpus

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shardlift/shardlift/internal/repo"
)

// Find returns the corpus folder, or "" and the reason it was not found.
func Find() (dir, why string) {
	dir, err := repo.Root()
	if err != nil {
		return "", err.Error() + ": cannot locate the shared corpus"
	}
	c := filepath.Join(filepath.Dir(dir), "shared", "corpus", "mongo-tools")
	if _, err := os.Stat(c); err != nil {
		return "", "shared MongoDB corpus not found at " + c
	}
	return c, ""
}

// Dir returns the corpus folder, skipping the test when there is none.
func Dir(t testing.TB) string {
	t.Helper()
	dir, why := Find()
	if dir == "" {
		t.Skip(why)
	}
	return dir
}
