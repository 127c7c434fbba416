package shard

import (
	"context"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// indexBuild logs the indexes a createIndexes command adds, in the form of the shard's
// version (see indexForm): around the build for two-phase builds and the 4.0/4.2 no-op,
// after it for the entries that record a finished index.
type indexBuild struct {
	n        *node
	ci       collInfo
	specs    []bson.Raw // the new indexes, as listIndexes shows them
	twoPhase bool
	uuid     primitive.Binary // indexBuildUUID of a two-phase build
}

// startIndexBuild logs what a version writes before building specs on ci (created: the
// command created the collection, so it is empty).
func (n *node) startIndexBuild(ctx context.Context, ci collInfo, specs []bson.Raw, created bool) (*indexBuild, error) {
	b := &indexBuild{n: n, ci: ci, specs: specs}
	if len(specs) == 0 {
		return b, nil
	}
	switch n.front.forms.index {
	case indexNoteThenCommand:
		return b, n.oplog.append(noop("Creating indexes. Coll: " + ci.NS))
	case indexTwoPhase:
		if created {
			return b, nil
		}
		db, coll := splitNS(ci.NS)
		docs, err := n.countDocs(ctx, db, coll)
		if err != nil || docs == 0 {
			return b, err // an empty collection's indexes are committed at once
		}
		b.twoPhase, b.uuid = true, newUUID()
		return b, n.oplog.append(b.phase("startIndexBuild", nil))
	}
	return b, nil
}

// commit logs the built indexes.
func (b *indexBuild) commit() error {
	if len(b.specs) == 0 {
		return nil
	}
	if b.twoPhase {
		return b.n.oplog.append(b.phase("commitIndexBuild", nil))
	}
	db, coll := splitNS(b.ci.NS)
	var drafts []draft
	for _, spec := range b.specs {
		if b.n.front.forms.index == indexSystemInsert {
			drafts = append(drafts, draft{op: "i", ns: db + ".system.indexes", o: specWithNS(spec, b.ci.NS)})
			continue
		}
		o := bsoncore.NewDocumentBuilder().AppendString("createIndexes", coll)
		elems, _ := spec.Elements()
		for _, e := range elems {
			o.AppendValue(e.Key(), bsoncore.Value{Type: e.Value().Type, Data: e.Value().Value})
		}
		drafts = append(drafts, draft{op: "c", ns: cmdNS(db), ui: b.ci.UUID.Data, o: bson.Raw(o.Build())})
	}
	return b.n.oplog.append(drafts...)
}

// abort logs the failure of a two-phase build, with its cause as MongoDB serializes it.
func (b *indexBuild) abort(cause error) error {
	if !b.twoPhase {
		return nil
	}
	code, name, msg := classify(cause, b.ci.NS)
	return b.n.oplog.append(b.phase("abortIndexBuild", bson.D{
		{Key: "ok", Value: false}, {Key: "code", Value: code}, {Key: "codeName", Value: name}, {Key: "errmsg", Value: msg},
	}))
}

// phase is a startIndexBuild, commitIndexBuild or abortIndexBuild entry.
func (b *indexBuild) phase(cmd string, cause bson.D) draft {
	db, coll := splitNS(b.ci.NS)
	specs := make(bson.A, len(b.specs))
	for i, s := range b.specs {
		specs[i] = s
	}
	o := bson.D{{Key: cmd, Value: coll}, {Key: "indexBuildUUID", Value: b.uuid}, {Key: "indexes", Value: specs}}
	if cause != nil {
		o = append(o, bson.E{Key: "cause", Value: cause})
	}
	return draft{op: "c", ns: cmdNS(db), ui: b.ci.UUID.Data, o: mustMarshal(o)}
}

// specWithNS is an index spec as servers before 4.4 store it: ns after the name.
func specWithNS(spec bson.Raw, ns string) bson.Raw {
	elems, _ := spec.Elements()
	idx, b := bsoncore.AppendDocumentStart(nil)
	for _, e := range elems {
		if e.Key() == "ns" {
			continue
		}
		b = append(b, e...)
		if e.Key() == "name" {
			b = bsoncore.AppendStringElement(b, "ns", ns)
		}
	}
	b, _ = bsoncore.AppendDocumentEnd(b, idx)
	return b
}

// splitNS splits "db.coll" at its first dot.
func splitNS(ns string) (db, coll string) {
	db, coll, _ = strings.Cut(ns, ".")
	return db, coll
}
