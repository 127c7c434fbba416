// Package repo finds the Shardlift repository a test or a benchmark runs in: the
// folder holding go.mod, from the working directory up. Tests use it to find the
// shared corpus beside the repository; make bench and the fault suite use it to build
// and run the code of this checkout.
package repo

import (
	"errors"
	"os"
	"path/filepath"
)

// Root returns the nearest folder holding go.mod, from the working directory up.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above: run this from the Shardlift repository")
		}
		dir = parent
	}
}
