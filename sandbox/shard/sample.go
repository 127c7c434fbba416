package shard

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// maxSample bounds a $sample the front draws: it answers in one batch.
const maxSample = 10_000

// sample answers an aggregate that starts with {$sample: {size: n}}, which
// FerretDB does not implement. MongoDB draws a large collection's sample with a
// random cursor, n seeks; the front draws n random rows of the collection's SQLite
// table (SQLite orders the row ids at random without decoding a document) and
// decodes only those (sandbox/sjson), as its keyed finds do. The only stage taken
// after it is {$project: {_id: 1}}, which is what a copy asks.
func (n *node) sample(ctx context.Context, cmd *wire.Command, coll string, stages []bson.RawValue) bson.Raw {
	first, _ := stages[0].DocumentOK()
	spec, _ := first.Lookup("$sample").DocumentOK()
	size, ok := spec.Lookup("size").AsInt64OK()
	if !ok || size < 0 {
		return wire.ErrorReply(&wire.Error{Code: 28747, Name: "Location28747", Msg: "size argument to $sample must be a non-negative number"})
	}
	idOnly := false
	for _, st := range stages[1:] {
		stage, _ := st.DocumentOK()
		p, isProject := stage.Lookup("$project").DocumentOK()
		elems, _ := p.Elements()
		if !isProject || idOnly || len(elems) != 1 || elems[0].Key() != "_id" {
			return wire.ErrorReply(wire.BadValue("the sandbox's $sample takes at most a {$project: {_id: 1}} after it"))
		}
		idOnly = true
	}
	if size > maxSample {
		return wire.ErrorReply(wire.BadValue(fmt.Sprintf("the sandbox's $sample draws at most %d documents", maxSample)))
	}
	rows, err := n.be.files.randomRows(ctx, cmd.DB, coll, size)
	if err != nil {
		return wire.ErrorReply(&wire.Error{Code: 1, Name: "InternalError", Msg: err.Error()})
	}
	docs := make([]bson.Raw, len(rows))
	for i, r := range rows {
		if docs[i], err = decodeRow(cmd.DB, coll, r.text); err != nil {
			return wire.ErrorReply(&wire.Error{Code: 1, Name: "InternalError", Msg: err.Error()})
		}
	}
	if idOnly {
		for i, doc := range docs {
			id := doc.Lookup("_id")
			docs[i] = bson.Raw(bsoncore.BuildDocumentFromElements(nil, bsoncore.AppendValueElement(nil, "_id", bsoncore.Value{Type: id.Type, Data: id.Value})))
		}
	}
	return firstBatchReply(cmd.DB+"."+coll, docs)
}

// randomRows returns up to n rows of db.coll drawn at random (none when FerretDB
// has no table for it).
func (f *sqlFiles) randomRows(ctx context.Context, db, coll string, n int64) ([]storedRow, error) {
	conn, table, err := f.table(ctx, db, coll)
	if err != nil || table == "" || n == 0 {
		return nil, err
	}
	rows, err := conn.QueryContext(ctx, fmt.Sprintf(`SELECT rowid, _ferretdb_sjson FROM %q WHERE rowid IN (SELECT rowid FROM %q ORDER BY RANDOM() LIMIT ?)`, table, table), n)
	if err != nil {
		return nil, fmt.Errorf("sample %s.%s: %w", db, coll, err)
	}
	defer rows.Close()
	var out []storedRow
	for rows.Next() {
		var r storedRow
		if err := rows.Scan(&r.rowid, &r.text); err != nil {
			return nil, fmt.Errorf("sample %s.%s: %w", db, coll, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
