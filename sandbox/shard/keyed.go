package shard

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/sjson"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Keyed writes: every targeted read, update and delete the front makes by _id is an
// index lookup in SQLite, whatever the _id's type.
//
// FerretDB v1.24.2 (SQLite backend) stores each document as one row of "sjson" text,
// `{"$s": <schema: key order and BSON types>, "_id": <JSON value>, ...}`, and pushes a
// filter down to SQL only when it is exactly {_id: <string or ObjectId>}
// (backends/sqlite/collection.go, Query). Any other _id (an int32 counter, a snowflake
// long, a double, a date, a UUID, a compound document) makes FerretDB read and decode
// every row of the collection for each update or delete: at 100,000 documents a write
// takes seconds, and a load on such collections collapses as they grow. FerretDB's
// own writes, once it has found a document, are already keyed: UpdateAll and
// DeleteAll use `WHERE _ferretdb_sjson->'$._id' = <sjson of _id>`, which the index of
// ensureIDIndex serves.
//
// So for _ids FerretDB does not push down, the front does the lookup itself, on that
// same indexed expression:
//
//   - find: `SELECT rowid, _ferretdb_sjson ... WHERE _ferretdb_sjson->'$._id' IN (...)`
//     with the sjson texts of every value MongoDB counts as equal to the _id (5, 5L
//     and 5.0 are one _id; 2^62 as a long and as a double are written differently).
//     EXPLAIN QUERY PLAN shows an index search (TestKeyedLookupSearchesTheIDIndex).
//   - decode: sandbox/sjson reads the row's text into the BSON FerretDB answers for
//     it, byte for byte (FerretDB is its test oracle, as for the scans of idscan.go).
//     Texts are not unique per _id (the date 42 and the int 42 both store `42`), so
//     the decoded _id is compared with MongoDB's rules before the document counts.
//   - update: in process when it can be. The row's text is decoded (sandbox/sjson),
//     the update computed by sandbox/modify (a replacement, or $set, $unset, $inc,
//     $mul, $min, $max, $currentDate on plain field paths: inproc.go says which), and
//     the result written as the text FerretDB would store for it (sjson.Encode).
//     Anything else (array operators and indexes, $rename, arrayFilters, conflicting
//     paths, a modify error, a result FerretDB refuses or would store as another
//     document) goes to a workbench (a private FerretDB with a one-document
//     collection, never reachable by clients): the row's text is copied onto it, as
//     is, and its FerretDB applies the update (its operators, validation and errors)
//     and gives back the resulting row text. Either way the front writes the text
//     with `UPDATE ... WHERE rowid = ? AND <text> = <the text read>` (the row its
//     lookup read, read again if it changed), unless the update left it as it was.
//     SQLite still checks the collection's unique indexes on that write.
//   - delete: `DELETE ... WHERE _ferretdb_sjson->'$._id' = <the document's exact text>`,
//     one row: FerretDB's unique index on the _id text allows no second one.
//
// All of this runs under the shard's write lock, as FerretDB's own path did: the
// workbench holds one document at a time, and a write is still one SQL statement on
// the collection, so a crash leaves either the old row or the new one. String and
// ObjectId _ids keep FerretDB's own keyed reads and deletes; their updates take the
// in-process path too (the row found by its _id text, which FerretDB's unique _id
// index holds once), and FerretDB's own findAndModify for what that path leaves, not
// the workbench. _id types with no text form here (regular expressions, timestamps'
// neighbours the sandbox refuses anyway) fall back to FerretDB's scan.

// idColumn is FerretDB's expression for a row's _id, which ensureIDIndex indexes.
const idColumn = `_ferretdb_sjson->'$._id'`

// pushedDown reports whether FerretDB itself looks an _id up by index.
func pushedDown(id bson.RawValue) bool {
	return id.Type == bsontype.String || id.Type == bsontype.ObjectID
}

// fetchByID returns the documents whose _id MongoDB counts as equal to id (more than one
// only when FerretDB stored equal numbers as distinct _ids, e.g. 0 and -0.0), and keeps
// their rows in b.fetched for the write that follows. An _id FerretDB looks up itself
// leaves b.fetched alone: finds pinning such _ids run without the write lock
// (keyedFind), beside a writer using b.fetched (a stale row there is harmless: the
// rewrite checks the row is unchanged).
func (b *backend) fetchByID(ctx context.Context, db, coll string, id bson.RawValue) ([]bson.Raw, error) {
	docs, rows, err := b.readByID(ctx, b, db, coll, id)
	if pushedDown(id) {
		return docs, err
	}
	clear(b.fetched)
	for i, doc := range docs {
		if own, ok := idKeys(doc.Lookup("_id")); ok && rows[i] != nil {
			b.fetched[fetchedKey(db, coll, own[0])] = *rows[i]
		}
	}
	return docs, err
}

// readByID returns the documents of src (b itself, or another member's backend, such
// as the primary a secondary refetches from) whose _id MongoDB counts as equal to id,
// each with its row when read from src's files (nil when FerretDB found it). src's
// fetched rows are left alone, so that reading another member takes none of its locks
// (a secondary refetching through the primary raced its writes: "concurrent map
// writes" in fetchByID).
func (b *backend) readByID(ctx context.Context, src *backend, db, coll string, id bson.RawValue) ([]bson.Raw, []*storedRow, error) {
	keys, ok := idKeys(id)
	if pushedDown(id) || !ok {
		doc, err := src.ferretFetchByID(ctx, db, coll, id)
		if doc == nil || err != nil {
			return nil, nil, err
		}
		return []bson.Raw{doc}, []*storedRow{nil}, nil
	}
	rows, err := src.files.rowsByID(ctx, db, coll, keys)
	if err != nil {
		return nil, nil, err
	}
	same, err := sameID(id)
	if err != nil {
		return nil, nil, err
	}
	var docs []bson.Raw
	var from []*storedRow
	for i := range rows {
		doc, err := decodeRow(db, coll, rows[i].text)
		if err != nil {
			return nil, nil, err
		}
		if same.Match(doc) {
			rows[i].doc = doc
			docs = append(docs, doc)
			from = append(from, &rows[i])
		}
	}
	return docs, from, nil
}

// fetchedKey names a row in backend.fetched.
func fetchedKey(db, coll, idText string) string { return db + "\x00" + coll + "\x00" + idText }

// modifyByID applies an update to the document whose _id is exactly id (as read from
// it) and returns the post-image.
func (b *backend) modifyByID(ctx context.Context, db, coll string, id, update, arrayFilters bson.RawValue) (bson.Raw, error) {
	keys, ok := idKeys(id)
	inProcess := ok && inProcessUpdate(update, arrayFilters)
	if !ok || pushedDown(id) && !inProcess {
		return b.ferretModifyByID(ctx, db, coll, id, update, arrayFilters)
	}
	// The row fetchByID has just read, when it has (an update by a numeric, date...
	// _id finds its document first): the rewrite checks it is unchanged, else the row
	// is read again.
	k := fetchedKey(db, coll, keys[0])
	row, known := b.fetched[k]
	delete(b.fetched, k)
	for {
		if !known {
			rows, err := b.files.rowsByID(ctx, db, coll, keys[:1])
			if err != nil {
				return nil, err
			}
			if len(rows) != 1 && pushedDown(id) {
				return b.ferretModifyByID(ctx, db, coll, id, update, arrayFilters)
			}
			if len(rows) != 1 {
				return nil, fmt.Errorf("FerretDB lost document _id %s of %s.%s during an update", id, db, coll)
			}
			row = rows[0]
		}
		var post bson.Raw
		var text string
		done := false
		if inProcess {
			post, text, done = applyInProcess(row, id, update)
		}
		switch {
		case !done && pushedDown(id):
			return b.ferretModifyByID(ctx, db, coll, id, update, arrayFilters)
		case !done:
			var err error
			if post, text, err = b.bench.apply(ctx, row.text, update, arrayFilters); err != nil {
				return nil, err
			}
		}
		if text == row.text {
			// A no-op: the row, read under this write lock, already holds it.
			return post, nil
		}
		rewritten, err := b.files.rewrite(ctx, db, coll, row, text)
		b.gens.wrote(db, coll)
		if err != nil {
			return nil, err
		}
		switch {
		case rewritten:
			return post, nil
		case pushedDown(id):
			return b.ferretModifyByID(ctx, db, coll, id, update, arrayFilters)
		case !known:
			return nil, fmt.Errorf("FerretDB lost document _id %s of %s.%s during an update", id, db, coll)
		}
		known = false
	}
}

// deleteByID deletes the document whose _id is exactly id (as read from it) and reports
// whether it existed.
func (b *backend) deleteByID(ctx context.Context, db, coll string, id bson.RawValue) (bool, error) {
	keys, ok := idKeys(id)
	if pushedDown(id) || !ok {
		return b.ferretDeleteByID(ctx, db, coll, id)
	}
	defer b.gens.wrote(db, coll)
	return b.files.deleteByKey(ctx, db, coll, keys[0])
}

// keyedFindFields are the find options keyedFind answers; any other sends the find to
// FerretDB.
var keyedFindFields = map[string]bool{"find": true, "filter": true, "projection": true, "limit": true, "batchSize": true, "singleBatch": true, "sort": true}

// keyedFind answers a find whose filter pins _id ({_id: v}, {_id: v, <shard key>: k},
// {_id: {$in: [...]}}) with keyed lookups, as writes find their documents: that is how
// the router finds the shard of a document it is asked to update or delete by _id
// alone. It reports false for any other find, which FerretDB answers.
func (n *node) keyedFind(ctx context.Context, cmd *wire.Command, coll string) (bson.Raw, bool) {
	body := stripped(cmd.Body)
	elems, _ := body.Elements()
	for _, e := range elems {
		if !keyedFindFields[e.Key()] {
			return nil, false
		}
	}
	filter, _ := body.Lookup("filter").DocumentOK()
	m, err := match.Compile(filter)
	if err != nil {
		return nil, false
	}
	ids, ok := m.IDValues()
	sort, _ := body.Lookup("sort").DocumentOK()
	if !ok || (len(sort) > 0 && len(ids) > 1 && idSortOrder(sort) == 0) {
		return nil, false
	}
	var proj *projection
	if p, ok := body.Lookup("projection").DocumentOK(); ok {
		if proj, err = compileProjection(p); err != nil {
			return nil, false
		}
	}
	limit, _ := asFloat(body.Lookup("limit"))
	batchSize, _ := asFloat(body.Lookup("batchSize"))
	// The front's own lookups (its SQLite connections, the rows it keeps for the
	// write that follows: fetchByID) are the write lock holder's; string and ObjectId
	// lookups are FerretDB's and run concurrently.
	if slices.ContainsFunc(ids, func(id bson.RawValue) bool { return !pushedDown(id) }) {
		n.writeMu.Lock()
		defer n.writeMu.Unlock()
	}
	docs, _, err := n.targets(ctx, cmd.DB, coll, filter, sort, int64(math.Abs(limit)))
	if err != nil {
		return errorReply(err, cmd.DB+"."+coll), true
	}
	if batchSize > 0 && float64(len(docs)) > batchSize {
		return nil, false // needs a cursor: FerretDB's
	}
	batch := make(bson.A, len(docs))
	for i, d := range docs {
		batch[i] = proj.apply(d)
	}
	return wire.OK(bson.E{Key: "cursor", Value: bson.D{
		{Key: "firstBatch", Value: batch}, {Key: "id", Value: int64(0)}, {Key: "ns", Value: cmd.DB + "." + coll},
	}}), true
}

// sameID is the filter {_id: id}, MongoDB's equality on _id.
func sameID(id bson.RawValue) (*match.Matcher, error) {
	idx, f := bsoncore.AppendDocumentStart(nil)
	f = appendValue(f, "_id", id)
	f, _ = bsoncore.AppendDocumentEnd(f, idx)
	return match.Compile(f)
}

// ---- sjson texts of _id values ----

// maxKeyVariants bounds the texts one compound _id expands to (each number inside may
// be written two ways); beyond it FerretDB's scan is used.
const maxKeyVariants = 16

// idKeys returns the texts FerretDB's sjson writes for the _id values MongoDB counts as
// equal to id, id's own text first, or false when id's type has no keyed form here.
// The texts follow FerretDB v1.24.2's sjson marshalling (handler/sjson): strings,
// ObjectIds (as hex) and binary data (as base64) are JSON strings made by
// encoding/json, numbers and dates (milliseconds) JSON numbers, documents and arrays
// JSON objects and arrays of those, in order, without schema.
func idKeys(id bson.RawValue) ([]string, bool) {
	keys, ok := sjsonTexts(id)
	if !ok || len(keys) > maxKeyVariants {
		return nil, false
	}
	return keys, true
}

func sjsonTexts(v bson.RawValue) ([]string, bool) {
	one := func(x any) ([]string, bool) {
		b, err := json.Marshal(x)
		return []string{string(b)}, err == nil
	}
	switch v.Type {
	case bsontype.Int32:
		return numberTexts(strconv.FormatInt(int64(v.Int32()), 10), float64(v.Int32()), true), true
	case bsontype.Int64:
		i := v.Int64()
		f := float64(i)
		// Only a long a double can hold exactly has an equal double.
		exact := f < math.Ldexp(1, 63) && int64(f) == i
		return numberTexts(strconv.FormatInt(i, 10), f, exact), true
	case bsontype.Double:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, false
		}
		own, ok := one(f)
		if !ok {
			return nil, false
		}
		keys := own
		if f == math.Trunc(f) && f >= -math.Ldexp(1, 63) && f < math.Ldexp(1, 63) {
			keys = appendNew(keys, strconv.FormatInt(int64(f), 10))
		}
		if f == 0 {
			keys = appendNew(keys, "-0")
		}
		return keys, true
	case bsontype.String:
		return one(v.StringValue())
	case bsontype.ObjectID:
		oid := v.ObjectID()
		return one(hex.EncodeToString(oid[:]))
	case bsontype.DateTime:
		return []string{strconv.FormatInt(v.DateTime(), 10)}, true
	case bsontype.Binary:
		_, data := v.Binary()
		return []string{`"` + base64.StdEncoding.EncodeToString(data) + `"`}, true
	case bsontype.Boolean:
		return one(v.Boolean())
	case bsontype.Null:
		return []string{"null"}, true
	case bsontype.EmbeddedDocument, bsontype.Array:
		return compositeTexts(v)
	}
	return nil, false
}

// numberTexts are the texts of an integer (as int or long) and of the double equal to it
// when there is one, zero's "-0" included.
func numberTexts(intText string, f float64, hasDouble bool) []string {
	keys := []string{intText}
	if hasDouble {
		b, _ := json.Marshal(f)
		keys = appendNew(keys, string(b))
		if f == 0 {
			keys = appendNew(keys, "-0")
		}
	}
	return keys
}

func appendNew(keys []string, k string) []string {
	for _, have := range keys {
		if have == k {
			return keys
		}
	}
	return append(keys, k)
}

// compositeTexts writes a document or an array, one text per combination of its
// elements' texts.
func compositeTexts(v bson.RawValue) ([]string, bool) {
	doc := bson.Raw(v.Value)
	elems, err := doc.Elements()
	if err != nil {
		return nil, false
	}
	open, close := "{", "}"
	if v.Type == bsontype.Array {
		open, close = "[", "]"
	}
	texts := []string{open}
	for i, e := range elems {
		sub, ok := sjsonTexts(e.Value())
		if !ok || len(texts)*len(sub) > maxKeyVariants {
			return nil, false
		}
		prefix := ""
		if i > 0 {
			prefix = ","
		}
		if v.Type == bsontype.EmbeddedDocument {
			name, _ := json.Marshal(e.Key())
			prefix += string(name) + ":"
		}
		next := make([]string, 0, len(texts)*len(sub))
		for _, t := range texts {
			for _, s := range sub {
				next = append(next, t+prefix+s)
			}
		}
		texts = next
	}
	for i := range texts {
		texts[i] += close
	}
	return texts, true
}

// ---- the front's connections to FerretDB's SQLite files ----

// sqlFiles holds one connection per FerretDB database file (FerretDB keeps one file
// per database, <db>.sqlite, with a _ferretdb_collections table naming each
// collection's table). They are the "sqlite" database/sql driver FerretDB registers
// (modernc.org/sqlite), on the WAL files FerretDB writes, so reads see every write
// FerretDB has committed. A connection must be released before FerretDB removes its
// file (dropDatabase): closing the last connection to a removed file would remove the
// write-ahead log of the file FerretDB creates in its place.
type sqlFiles struct {
	dir string
	// pragma is the synchronous setting of the FerretDB writing these files: a
	// connection's commits are synced as FerretDB's are.
	pragma string
	mu     sync.Mutex
	dbs    map[string]*sql.DB
}

func newSQLFiles(dir, pragma string) *sqlFiles {
	return &sqlFiles{dir: dir, pragma: pragma, dbs: map[string]*sql.DB{}}
}

// open returns the connection to db's file, or nil when FerretDB has no such file
// (opening it would create one).
func (f *sqlFiles) open(db string) (*sql.DB, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if conn := f.dbs[db]; conn != nil {
		return conn, nil
	}
	path := filepath.Join(f.dir, db+".sqlite")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	conn, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(10000)&_pragma="+f.pragma)
	if err != nil {
		return nil, fmt.Errorf("open %s's SQLite file: %w", db, err)
	}
	conn.SetMaxOpenConns(1)
	f.dbs[db] = conn
	return conn, nil
}

// release closes the connection to db's file, if any.
func (f *sqlFiles) release(db string) error {
	f.mu.Lock()
	conn := f.dbs[db]
	delete(f.dbs, db)
	f.mu.Unlock()
	if conn == nil {
		return nil
	}
	return conn.Close()
}

func (f *sqlFiles) closeAll() error {
	f.mu.Lock()
	dbs := f.dbs
	f.dbs = map[string]*sql.DB{}
	f.mu.Unlock()
	var err error
	for _, conn := range dbs {
		if errClose := conn.Close(); err == nil {
			err = errClose
		}
	}
	return err
}

// table returns the connection to db's file and the SQLite table of db.coll, or ""
// when FerretDB has none.
func (f *sqlFiles) table(ctx context.Context, db, coll string) (*sql.DB, string, error) {
	conn, err := f.open(db)
	if err != nil || conn == nil {
		return nil, "", err
	}
	var table string
	err = conn.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table)
	if errors.Is(err, sql.ErrNoRows) {
		return conn, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("find the SQLite table of %s.%s: %w", db, coll, err)
	}
	return conn, table, nil
}

// storedRow is one row of a collection's table: FerretDB's text of a document.
type storedRow struct {
	rowid int64
	text  string
	// doc is the document text holds, when the row's reader decoded it (readByID):
	// the update that follows does not decode it again.
	doc bson.Raw
}

// lookupSQL selects the rows whose _id text is one of n texts, through the _id index.
func lookupSQL(table string, n int) string {
	return fmt.Sprintf(`SELECT rowid, _ferretdb_sjson FROM %q WHERE %s IN (%s)`,
		table, idColumn, strings.TrimSuffix(strings.Repeat("json(?),", n), ","))
}

// rowsByID returns the rows of db.coll whose _id text is one of keys.
func (f *sqlFiles) rowsByID(ctx context.Context, db, coll string, keys []string) ([]storedRow, error) {
	conn, table, err := f.table(ctx, db, coll)
	if err != nil || table == "" {
		return nil, err
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	rows, err := conn.QueryContext(ctx, lookupSQL(table, len(keys)), args...)
	if err != nil {
		return nil, fmt.Errorf("look up _id in %s.%s: %w", db, coll, err)
	}
	defer rows.Close()
	var out []storedRow
	for rows.Next() {
		var r storedRow
		if err := rows.Scan(&r.rowid, &r.text); err != nil {
			return nil, fmt.Errorf("look up _id in %s.%s: %w", db, coll, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up _id in %s.%s: %w", db, coll, err)
	}
	return out, nil
}

// rewrite replaces the text of one row, as FerretDB's UpdateAll does, if the row still
// holds the text read from it; it reports whether it did.
func (f *sqlFiles) rewrite(ctx context.Context, db, coll string, row storedRow, text string) (bool, error) {
	conn, table, err := f.table(ctx, db, coll)
	if err == nil && table == "" {
		err = fmt.Errorf("collection %s.%s disappeared during an update", db, coll)
	}
	if err != nil {
		return false, err
	}
	res, err := conn.ExecContext(ctx, fmt.Sprintf(`UPDATE %q SET _ferretdb_sjson = ? WHERE rowid = ? AND _ferretdb_sjson = ?`, table), text, row.rowid, row.text)
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return false, &wire.Error{Code: 11000, Name: "DuplicateKey", Msg: "E11000 duplicate key error collection: " + db + "." + coll}
	}
	if err != nil {
		return false, fmt.Errorf("update a document of %s.%s: %w", db, coll, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// deleteSQL deletes the row whose _id text is the argument, through the _id index.
func deleteSQL(table string) string {
	return fmt.Sprintf(`DELETE FROM %q WHERE %s = json(?)`, table, idColumn)
}

// deleteByKey deletes the row whose _id text is key and reports whether there was one.
func (f *sqlFiles) deleteByKey(ctx context.Context, db, coll, key string) (bool, error) {
	conn, table, err := f.table(ctx, db, coll)
	if err != nil || table == "" {
		return false, err
	}
	res, err := conn.ExecContext(ctx, deleteSQL(table), key)
	if err != nil {
		return false, fmt.Errorf("delete a document of %s.%s: %w", db, coll, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ---- the workbench ----

// workbench is a private FerretDB (its own SQLite directory, a socket only the front
// knows) with one collection that holds at most one document: the copy of a stored row
// the front updates. It is replaced before each use and wiped at start.
// Only the shard's write lock holder uses it.
type workbench struct {
	client *mongo.Client
	stop   func()
	files  *sqlFiles
	table  string
	// holds is the text of the document on the bench ("" when unknown): an update of
	// the document the last update left there copies nothing.
	holds string
	// trips counts the requests sent to the bench's FerretDB: each costs the shard's
	// write lock a round trip.
	trips atomic.Int64
}

const workbenchDB, workbenchColl = "workbench", "doc"

// workbenchSync: nothing on the workbench outlives a write, so neither FerretDB nor the
// front syncs its file to disk.
const workbenchSync = "synchronous(off)"

// startWorkbench starts the workbench in dir/workbench, wiping what a previous run left.
func startWorkbench(dir, sock string, logger *slog.Logger) (*workbench, error) {
	dataDir := filepath.Join(dir, "workbench")
	if err := os.RemoveAll(dataDir); err != nil {
		return nil, fmt.Errorf("wipe the workbench: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create the workbench: %w", err)
	}
	client, stop, err := runFerret(dataDir, workbenchSync, sock, logger)
	if err != nil {
		return nil, err
	}
	w := &workbench{client: client, stop: stop, files: newSQLFiles(dataDir, workbenchSync)}
	ctx := context.Background()
	if err := client.Database(workbenchDB).RunCommand(ctx, bson.D{{Key: "create", Value: workbenchColl}}).Err(); err != nil {
		w.close()
		return nil, fmt.Errorf("create the workbench collection: %w", err)
	}
	if _, w.table, err = w.files.table(ctx, workbenchDB, workbenchColl); err == nil && w.table == "" {
		err = errors.New("FerretDB made no table for the workbench collection")
	}
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *workbench) close() error {
	err := w.files.closeAll()
	w.stop()
	return err
}

// put makes a stored row's text the workbench's only document, in one transaction.
func (w *workbench) put(ctx context.Context, text string) error {
	if text == w.holds {
		return nil
	}
	w.holds = ""
	conn, err := w.files.open(workbenchDB)
	if err != nil {
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("copy a document onto the workbench: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`DELETE FROM %q`, w.table)); err != nil {
		return fmt.Errorf("clear the workbench: %w", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %q (_ferretdb_sjson) VALUES (?)`, w.table), text); err != nil {
		return fmt.Errorf("copy a document onto the workbench: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("copy a document onto the workbench: %w", err)
	}
	w.holds = text
	return nil
}

// decodeRow returns the document a stored row's text holds, as FerretDB reads it.
func decodeRow(db, coll, text string) (bson.Raw, error) {
	doc, err := sjson.Decode(nil, []byte(text))
	if err != nil {
		return nil, fmt.Errorf("decode a stored document of %s.%s: %w", db, coll, err)
	}
	return doc, nil
}

// apply has FerretDB update the document a stored row's text holds and returns the
// result and its text. FerretDB's refusals come back as they would from the shard's
// own FerretDB (a *backendError).
func (w *workbench) apply(ctx context.Context, text string, update, arrayFilters bson.RawValue) (bson.Raw, string, error) {
	if err := w.put(ctx, text); err != nil {
		return nil, "", err
	}
	// The update changes the document on the bench, whatever comes of it.
	w.holds = ""
	cmd := bson.D{
		{Key: "findAndModify", Value: workbenchColl},
		{Key: "query", Value: bson.D{}},
		{Key: "update", Value: update},
		{Key: "new", Value: true},
	}
	if arrayFilters.Type != 0 {
		cmd = append(cmd, bson.E{Key: "arrayFilters", Value: arrayFilters})
	}
	w.trips.Add(1)
	raw, err := w.client.Database(workbenchDB).RunCommand(ctx, cmd).Raw()
	if len(raw) > 0 && !isOK(raw) {
		return nil, "", &backendError{reply: raw}
	}
	if err != nil {
		return nil, "", fmt.Errorf("update on the workbench: %w", err)
	}
	post, ok := raw.Lookup("value").DocumentOK()
	if !ok {
		return nil, "", errors.New("the workbench lost its document during an update")
	}
	conn, err := w.files.open(workbenchDB)
	if err != nil {
		return nil, "", err
	}
	var out string
	if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT _ferretdb_sjson FROM %q`, w.table)).Scan(&out); err != nil {
		return nil, "", fmt.Errorf("read the workbench's updated document: %w", err)
	}
	w.holds = out
	return post, out, nil
}
