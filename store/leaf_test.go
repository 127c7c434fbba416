package store

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// store is a leaf: the engine declares the interfaces it needs and app wires store
// in, so store must not import any other package of Shardlift (nor Fyne).
func TestStoreIsALeaf(t *testing.T) {
	allowed := []string{"go.etcd.io/bbolt", "github.com/zalando/go-keyring", "go.mongodb.org/mongo-driver/bson"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
	imports:
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !strings.Contains(strings.Split(path, "/")[0], ".") {
				continue // standard library
			}
			for _, a := range allowed {
				if path == a || strings.HasPrefix(path, a+"/") {
					continue imports
				}
			}
			t.Errorf("%s imports %s; store may import only the standard library and %v", name, path, allowed)
		}
	}
}
