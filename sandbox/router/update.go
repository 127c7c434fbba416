package router

import (
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/modify"
)

// The router computes an update's result itself (modify.Apply) only when the update
// may change a document's shard key: if the new key belongs to another shard, mongos
// deletes the document on the old shard and inserts the result on the new one.
// Everything else is applied by the shards.

// touchesPaths reports whether an update may change any of the given dotted paths.
func touchesPaths(u bson.RawValue, paths []string) bool {
	doc, ok := u.DocumentOK()
	if !ok {
		return false // a pipeline update: the shards apply it, as mongos would target it
	}
	if modify.IsReplacement(doc) {
		return true
	}
	ops, _ := doc.Elements()
	for _, op := range ops {
		fields, ok := op.Value().DocumentOK()
		if !ok {
			continue
		}
		elems, _ := fields.Elements()
		for _, f := range elems {
			targets := []string{f.Key()}
			if op.Key() == "$rename" {
				if to, ok := f.Value().StringValueOK(); ok {
					targets = append(targets, to)
				}
			}
			for _, t := range targets {
				t = positionalFree(t)
				for _, p := range paths {
					if t == p || strings.HasPrefix(p, t+".") || strings.HasPrefix(t, p+".") {
						return true
					}
				}
			}
		}
	}
	return false
}

// positionalFree cuts a path at its first positional part ($, $[], $[x]).
func positionalFree(path string) string {
	if i := strings.Index(path, ".$"); i >= 0 {
		return path[:i]
	}
	return path
}
