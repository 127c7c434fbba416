package shard

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/sjson"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Scans of the _id index and of the collection: a mongod answers a find sorted by _id
// ascending (a copy's scan of a shard, each partition of a partitioned copy bounded by
// find's min and max on the hinted _id index, a verification's range) by walking its
// _id index from the lower bound, fetching each document as it goes: the first batch
// comes at once, and a range costs what it holds, not what the collection holds.
//
// FerretDB v1.24.2 can do neither: it filters and sorts in memory, so every such find
// decoded the shard's whole collection before its first batch (minutes under load,
// with "a read has had no answer" in Shardlift's status), and eight partitions of a
// collection cost eight whole reads. So the front walks an index of its own on the
// collection's SQLite table (ensureIDIndex adds it with the _id lookup index, invisible
// to FerretDB, kept by SQLite on every write whoever makes it), in pages of rows after
// the last one served (keyset: no SQLite read stays open between batches, and a page
// sees every write committed before it, as a yielding mongod cursor does), and decodes
// the rows' text itself (sandbox/sjson, checked against FerretDB's own decoding).
//
// The index orders rows by (type class, value): the class in MongoDB's order across
// types (from the type sjson records for _id), then the value SQLite extracts from the
// JSON, which for numbers (int, long and double compared as numbers), strings (by their
// UTF-8 bytes, as the simple collation), ObjectIds (lowercase hex), booleans and dates
// (milliseconds) is MongoDB's order within the class. Documents, binaries, timestamps
// and regular expressions as _id have no such value: a page that reaches one of those
// classes reads the whole class and sorts it in memory (shardkey.Compare). Every
// document served is checked to come after the one before it and within the bounds,
// in MongoDB's order: a scan that would break the order fails instead.
//
// A collection scan (a find with no filter, sorted by nothing or {$natural: 1}: a
// plain driver pipe's read, figure 1's ceiling) walks the table by rowid, FerretDB's
// own order, with the same pages and decoding: the sandbox must not make an _id index
// scan cheaper than a collection scan, which a mongod never does.
//
// Taken: finds sorted by {_id: 1} alone, with no projection, skip, collation or hint
// other than _id's, a filter on _id alone (applied to each document, sandbox/match), and
// min and max of those types with a value; a filter naming its _ids ({_id: v},
// {_id: {$in: [...]}}) is keyedFind's, and the rest keeps the path it had
// (idorder.go, bounds.go, FerretDB).

// idClassSQL is a row's _id type class, in MongoDB's order across types: the canonical
// rank of its type (shardkey.CanonicalType) for every type FerretDB stores.
const idClassSQL = `CASE _ferretdb_sjson->>'$."$s".p._id.t'` +
	` WHEN 'null' THEN 5 WHEN 'int' THEN 10 WHEN 'long' THEN 10 WHEN 'double' THEN 10` +
	` WHEN 'string' THEN 15 WHEN 'object' THEN 20 WHEN 'array' THEN 25 WHEN 'binData' THEN 30` +
	` WHEN 'objectId' THEN 35 WHEN 'bool' THEN 40 WHEN 'date' THEN 45 WHEN 'timestamp' THEN 47` +
	` WHEN 'regex' THEN 50 ELSE 99 END`

// idValueSQL is a row's _id as an SQL value (null as 0: SQL's NULL compares with
// nothing).
const idValueSQL = `ifnull(_ferretdb_sjson->>'$._id', 0)`

// idOrderIndexSQL creates the index a scan walks on table.
func idOrderIndexSQL(table string) string {
	return fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s, %s)`, table+"_shardlift_idorder", table, idClassSQL, idValueSQL)
}

// idClass is the class of an _id value, as idClassSQL gives it (MongoDB's canonical
// rank of its type), and whether the index orders values of the class as MongoDB does.
func idClass(t bsontype.Type) (class int64, ordered bool) {
	switch t {
	case bsontype.Null, bsontype.Int32, bsontype.Int64, bsontype.Double, bsontype.String,
		bsontype.ObjectID, bsontype.Boolean, bsontype.DateTime:
		ordered = true
	}
	return int64(shardkey.CanonicalType(t)), ordered
}

// idSQLValue is v as idValueSQL gives it, for a value of an ordered class; ok is
// false for any other (and for doubles SQLite's JSON cannot hold: NaN, infinities).
func idSQLValue(v bsoncore.Value) (any, bool) {
	switch v.Type {
	case bsontype.Null:
		return int64(0), true
	case bsontype.Int32:
		return int64(v.Int32()), true
	case bsontype.Int64:
		return v.Int64(), true
	case bsontype.Double:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		return f, true
	case bsontype.String:
		return v.StringValue(), true
	case bsontype.ObjectID:
		oid := v.ObjectID()
		return hex.EncodeToString(oid[:]), true
	case bsontype.Boolean:
		if v.Boolean() {
			return int64(1), true
		}
		return int64(0), true
	case bsontype.DateTime:
		return v.DateTime(), true
	}
	return nil, false
}

// A page reads at most idScanPage rows, and idScanFirstPage before the rows' size is
// known; then as many as fit in idScanPageBytes at the average size so far (a batch
// of large documents is cut at 16 MiB anyway: the rest would wait in memory).
const (
	idScanPage      = 1000
	idScanFirstPage = 100
	idScanPageBytes = 16 << 20
)

// idScan walks db.coll's _id order index from lo (included) to hi (excluded).
type idScan struct {
	files    *sqlFiles
	db, coll string
	table    string         // the collection's table when the scan began ("": none)
	natural  bool           // rowid order: a collection scan, unfiltered and unbounded
	lo, hi   bsoncore.Value // Type 0: unbounded
	filter   *match.Matcher // nil: every document
	// after is the key of the last row read: its class, SQL value and rowid; afterClass
	// alone when a whole class was read (inClass false). ties are the rows served whose
	// _id equals the last one's (the rows read again at the start of the next page),
	// afterID that _id.
	started    bool
	afterClass int64
	afterValue any
	afterRow   int64
	afterID    bsoncore.Value
	ties       map[int64]bool
	inClass    bool
	done       bool
	last       bsoncore.Value // the _id served last, for the order check
	decoded    []byte         // the buffer documents are decoded into
	rows       int64          // rows read, and their text's bytes
	bytes      int64
	counter    *atomic.Int64 // the node's count of rows its scans read
}

// idScanFind answers a find the _id index scan takes (see above); ok is false for
// any other.
func (n *node) idScanFind(ctx context.Context, cmd *wire.Command, coll string) (bson.Raw, bool) {
	s, ok := n.newIDScan(cmd, coll)
	if !ok {
		return nil, false
	}
	return n.firstIDOrderedBatch(ctx, cmd, &idOrderedCursor{ns: cmd.DB + "." + coll, scan: s}), true
}

// newIDScan is the scan cmd asks for, if the front takes it.
func (n *node) newIDScan(cmd *wire.Command, coll string) (*idScan, bool) {
	if !plainScan(cmd, coll) {
		return nil, false
	}
	natural := false
	switch sort, ok := cmd.Lookup("sort").DocumentOK(); {
	case cmd.Lookup("sort").Type == 0 || ok && len(sort) <= 5:
		natural = true
	case ok:
		elems, err := sort.Elements()
		if err != nil || len(elems) != 1 {
			return nil, false
		}
		dir, isNum := elems[0].Value().AsInt64OK()
		switch {
		case elems[0].Key() == "$natural" && isNum && dir == 1:
			natural = true
		case elems[0].Key() != "_id" || !isNum || dir != 1:
			return nil, false
		}
	default:
		return nil, false
	}
	s := &idScan{files: n.be.files, db: cmd.DB, coll: coll, natural: natural, counter: &n.idScanRows}
	if natural && (cmd.Lookup("min").Type != 0 || cmd.Lookup("max").Type != 0 || cmd.Lookup("hint").Type != 0) {
		return nil, false
	}
	for _, b := range []struct {
		field string
		to    *bsoncore.Value
	}{{"min", &s.lo}, {"max", &s.hi}} {
		doc, has := cmd.Lookup(b.field).DocumentOK()
		if !has {
			continue
		}
		if cmd.Lookup("hint").Type == 0 {
			return nil, false // bounds.go answers the error
		}
		elems, _ := doc.Elements()
		if len(elems) != 1 || elems[0].Key() != "_id" {
			return nil, false
		}
		v := elems[0].Value()
		*b.to = bsoncore.Value{Type: v.Type, Data: v.Value}
		if _, ok := idSQLValue(*b.to); !ok {
			return nil, false
		}
	}
	if filter, ok := cmd.Lookup("filter").DocumentOK(); ok && len(filter) > 5 {
		if natural {
			return nil, false // FerretDB's: its filters are not all sandbox/match's
		}
		elems, err := filter.Elements()
		if err != nil || len(elems) != 1 || elems[0].Key() != "_id" {
			return nil, false
		}
		if s.filter, err = match.Compile(filter); err != nil {
			return nil, false
		}
		if _, pinned := s.filter.IDValues(); pinned {
			return nil, false // keyedFind's lookups
		}
	}
	return s, true
}

// read returns up to want documents (at least one unless the scan ends), in _id order.
func (s *idScan) read(ctx context.Context, want int) ([]bson.Raw, error) {
	var out []bson.Raw
	for !s.done && len(out) < want {
		rows, err := s.page(ctx, min(max(want-len(out), 1), idScanPage))
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			s.done = true
			break
		}
		var docs []bson.Raw
		if s.natural {
			for _, r := range rows {
				doc, err := s.decode(r.text)
				if err != nil {
					return nil, err
				}
				out = append(out, doc)
				s.afterRow = r.rowid
			}
			continue
		}
		// A row's place in the index (class, value) is read from its decoded _id, not
		// from SQLite: selecting the indexed expressions would parse each row's JSON
		// twice more.
		for i, r := range rows {
			doc, err := s.decode(r.text)
			if err != nil {
				return nil, err
			}
			id := doc.Lookup("_id")
			class, ordered := idClass(id.Type)
			if !ordered {
				if i > 0 {
					break // the next page starts with that class
				}
				// A class the index does not order: read all of it, sort it in memory.
				if docs, err = s.wholeClass(ctx, class); err != nil {
					return nil, err
				}
				s.started, s.inClass, s.afterClass, s.ties = true, false, class, nil
				break
			}
			v := bsoncore.Value{Type: id.Type, Data: id.Value}
			value, _ := idSQLValue(v)
			docs = append(docs, doc)
			if !s.inClass || s.afterClass != class || shardkey.Compare(s.afterID, v) != 0 {
				s.ties = map[int64]bool{}
			}
			s.ties[r.rowid] = true
			s.started, s.inClass, s.afterClass, s.afterValue, s.afterRow, s.afterID = true, true, class, value, r.rowid, v
		}
		for _, doc := range docs {
			id := doc.Lookup("_id")
			v := bsoncore.Value{Type: id.Type, Data: id.Value}
			if err := s.check(v); err != nil {
				return nil, err
			}
			if s.hi.Type != 0 && shardkey.Compare(v, s.hi) >= 0 {
				s.done = true
				break
			}
			if s.lo.Type != 0 && shardkey.Compare(v, s.lo) < 0 {
				continue
			}
			if s.filter == nil || s.filter.Match(doc) {
				out = append(out, doc)
			}
		}
	}
	return out, nil
}

// check fails the scan when v does not come after the _id served before it.
func (s *idScan) check(v bsoncore.Value) error {
	if s.last.Type != 0 && shardkey.Compare(s.last, v) > 0 {
		return fmt.Errorf("the sandbox's _id index scan of %s.%s read _id %s after %s: out of MongoDB's order", s.db, s.coll, v, s.last)
	}
	s.last = v
	return nil
}

// decode turns a row's text into its document, a copy of its own.
func (s *idScan) decode(text []byte) (bson.Raw, error) {
	var err error
	s.decoded, err = sjson.Decode(s.decoded[:0], text)
	if err != nil {
		return nil, fmt.Errorf("decode a stored document of %s.%s: %w", s.db, s.coll, err)
	}
	return bson.Raw(append([]byte(nil), s.decoded...)), nil
}

// storedText is a row of a collection's table.
type storedText struct {
	rowid int64
	text  []byte
}

// page reads up to n rows after the last one read, in the index's order, down to hi:
// fewer when the rows read so far say n would pass idScanPageBytes.
func (s *idScan) page(ctx context.Context, n int) ([]storedText, error) {
	conn, table, err := s.scanned(ctx)
	if err != nil || table == "" {
		return nil, err
	}
	if s.rows == 0 {
		n = min(n, idScanFirstPage)
	} else if fit := int(idScanPageBytes * s.rows / max(s.bytes, 1)); fit < n {
		n = max(fit, 1)
	}
	var rows []storedText
	for _, q := range s.pageSQL(table, n) {
		got, err := s.query(ctx, conn, q.sql, q.args...)
		if err != nil {
			return nil, err
		}
		for _, r := range got {
			if s.counter != nil {
				s.counter.Add(1)
			}
			s.rows++
			s.bytes += int64(len(r.text))
			if !s.ties[r.rowid] && len(rows) < n {
				rows = append(rows, r)
			}
		}
		if len(rows) == n {
			break
		}
	}
	return rows, nil
}

// scanned returns the connection to the collection's file and its table, the one the
// scan began on. A collection dropped or renamed under a scan (its name now leads to
// no table, or to another) kills the scan as a mongod kills its cursor, with
// QueryPlanKilled: ending it quietly would tell the reader it read the whole
// collection.
func (s *idScan) scanned(ctx context.Context) (*sql.DB, string, error) {
	conn, table, err := s.files.table(ctx, s.db, s.coll)
	switch {
	case err != nil:
		return nil, "", err
	case !s.started && s.rows == 0 && s.table == "":
		s.table = table
	case table != s.table:
		return nil, "", &wire.Error{Code: 175, Name: "QueryPlanKilled",
			Msg: fmt.Sprintf("collection %s.%s was dropped or renamed during the scan", s.db, s.coll)}
	}
	return conn, table, nil
}

// pageQuery is one query of a page.
type pageQuery struct {
	sql  string
	args []any
}

// pageSQL are the queries of a page of n rows, to run in order until n rows came.
// SQLite seeks in an index only on equality and ranges of its leading columns, not on
// a row value ((class, value, rowid) > (...) walks the index from its start, every
// page), so a page reads the rest of the current class (from the last value served,
// that value's rows again: those served are skipped, see ties), then the classes
// after it.
func (s *idScan) pageSQL(table string, n int) []pageQuery {
	if s.natural {
		return []pageQuery{{fmt.Sprintf(`SELECT rowid, _ferretdb_sjson FROM %q WHERE rowid > ? ORDER BY rowid LIMIT ?`, table), []any{s.afterRow, n}}}
	}
	order := fmt.Sprintf(` ORDER BY %s, %s, rowid LIMIT ?`, idClassSQL, idValueSQL)
	hiClass := int64(math.MaxInt64)
	var hiValue any
	if s.hi.Type != 0 {
		hiClass, _ = idClass(s.hi.Type)
		hiValue, _ = idSQLValue(s.hi)
	}
	var out []pageQuery
	// The rest of a class, from value on.
	within := func(class int64, value any) {
		q := fmt.Sprintf(`SELECT rowid, _ferretdb_sjson FROM %q WHERE %s = ? AND %s >= ?`, table, idClassSQL, idValueSQL)
		args := []any{class, value}
		if class == hiClass {
			q += fmt.Sprintf(` AND %s < ?`, idValueSQL)
			args = append(args, hiValue)
		}
		out = append(out, pageQuery{q + fmt.Sprintf(` ORDER BY %s, rowid LIMIT ?`, idValueSQL), append(args, n+len(s.ties))})
	}
	after := int64(-1) // the classes after this one
	switch {
	case s.started && s.inClass:
		within(s.afterClass, s.afterValue)
		after = s.afterClass
	case s.started:
		after = s.afterClass
	case s.lo.Type != 0:
		class, _ := idClass(s.lo.Type)
		value, _ := idSQLValue(s.lo)
		within(class, value)
		after = class
	}
	if after < hiClass {
		out = append(out, pageQuery{fmt.Sprintf(`SELECT rowid, _ferretdb_sjson FROM %q WHERE %s > ? AND %s <= ?`, table, idClassSQL, idClassSQL) + order,
			[]any{after, hiClass, n}})
	}
	return out
}

// wholeClass reads every document whose _id is of class, sorted by _id.
func (s *idScan) wholeClass(ctx context.Context, class int64) ([]bson.Raw, error) {
	conn, table, err := s.scanned(ctx)
	if err != nil || table == "" {
		return nil, err
	}
	rows, err := s.query(ctx, conn, fmt.Sprintf(`SELECT rowid, _ferretdb_sjson FROM %q WHERE %s = ?`, table, idClassSQL), class)
	if err != nil {
		return nil, err
	}
	docs := make([]bson.Raw, len(rows))
	for i, r := range rows {
		if docs[i], err = s.decode(r.text); err != nil {
			return nil, err
		}
	}
	sortByID(docs, 1)
	return docs, nil
}

func (s *idScan) query(ctx context.Context, conn *sql.DB, q string, args ...any) ([]storedText, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("scan the _id index of %s.%s: %w", s.db, s.coll, err)
	}
	defer rows.Close()
	var out []storedText
	for rows.Next() {
		var r storedText
		if err := rows.Scan(&r.rowid, &r.text); err != nil {
			return nil, fmt.Errorf("scan the _id index of %s.%s: %w", s.db, s.coll, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan the _id index of %s.%s: %w", s.db, s.coll, err)
	}
	return out, nil
}
