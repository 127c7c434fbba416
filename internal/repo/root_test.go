package repo

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRootIsTheNearestFolderWithGoMod(t *testing.T) {
	top := t.TempDir()
	deep := filepath.Join(top, "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(top, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(deep)
	got, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := filepath.EvalSymlinks(top); got != top && got != want {
		t.Fatalf("Root() = %q, want %q", got, top)
	}
}
