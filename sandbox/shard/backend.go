package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// maxSocketPath is the longest Unix socket path the kernel accepts (sun_path, less NUL).
const maxSocketPath = 107

// ferretNewMu serializes ferretdb.New, which writes package-level state in FerretDB.
var ferretNewMu sync.Mutex

// backend is the embedded FerretDB of one shard, the driver client that talks to it
// over its Unix socket, the front's own connections to its SQLite files, and the
// workbench the front's keyed writes use (see keyed.go).
type backend struct {
	dataDir string
	client  *mongo.Client
	stop    func()
	files   *sqlFiles
	bench   *workbench
	// fetched are the rows the last fetchByID read, by fetchedKey: the update that
	// follows (under the same write lock) rewrites its document's row without
	// looking it up again. Only the write lock holder uses it.
	fetched map[string]storedRow
	sockDir string // a temporary directory holding the sockets, removed on close; "" when in Dir
	// gens counts the writes made here, for the statistics answered again while
	// nothing changed (writegen.go).
	gens *writeGens
}

// startBackend runs FerretDB on dir's SQLite files and connects to it.
func startBackend(dir string, logger *slog.Logger) (*backend, error) {
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create shard data directory: %w", err)
	}
	b := &backend{dataDir: dataDir, files: newSQLFiles(dataDir, shardSync), fetched: map[string]storedRow{}, gens: newWriteGens()}
	sockDir := dir
	if len(filepath.Join(dir, "workbench.sock")) > maxSocketPath {
		// The data directory's path is too long for a socket: use a short private one.
		tmp, err := os.MkdirTemp("", "shardlift-")
		if err != nil {
			return nil, fmt.Errorf("create socket directory: %w", err)
		}
		b.sockDir, sockDir = tmp, tmp
	}
	client, stop, err := runFerret(dataDir, shardSync, filepath.Join(sockDir, "ferretdb.sock"), logger)
	if err != nil {
		b.removeSockDir()
		return nil, err
	}
	b.client, b.stop = client, stop
	if b.bench, err = startWorkbench(dir, filepath.Join(sockDir, "workbench.sock"), logger); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// shardSync is the SQLite pragma of every connection to a shard's files, FerretDB's and
// the front's own (keyed.go): with SQLite's WAL, synchronous(normal) makes a commit
// survive the process being killed (not a power cut), which is what a sandbox needs,
// without an fsync per write. A connection left at SQLite's default (full) syncs the
// WAL at each of its commits: the front's keyed writes did, and each cost an fsync.
const shardSync = "synchronous(normal)"

// runFerret starts an embedded FerretDB on the SQLite files in dataDir (with the given
// SQLite pragma), listening on the Unix socket sock only, and connects to it; stop
// disconnects and stops it.
func runFerret(dataDir, pragma, sock string, logger *slog.Logger) (client *mongo.Client, stop func(), err error) {
	// A socket file left by a killed process would make the listener fail.
	os.Remove(sock)

	ferretNewMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: sock},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dataDir + "/?_pragma=" + pragma,
		Logger:    slog.New(minLevel{level: slog.LevelError, h: logger.Handler()}),
	})
	ferretNewMu.Unlock()
	if err != nil {
		return nil, nil, fmt.Errorf("start FerretDB on %s: %w", dataDir, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx)
	}()
	stopFerret := func() {
		cancel()
		<-done
	}

	// The driver lowercases host names, so the socket path in the URI is only a label:
	// the dialer connects to the exact path.
	uri := "mongodb://" + strings.ReplaceAll(url.PathEscape(sock), "/", "%2F") + "/"
	client, err = mongo.Connect(context.Background(), options.Client().ApplyURI(uri).
		SetDialer(socketDialer(sock)).
		SetDirect(true).
		SetMaxPoolSize(128).
		SetRetryReads(false).
		SetRetryWrites(false).
		SetServerSelectionTimeout(5*time.Second))
	if err != nil {
		stopFerret()
		return nil, nil, fmt.Errorf("connect to FerretDB on %s: %w", sock, err)
	}
	stop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		client.Disconnect(ctx)
		stopFerret()
	}
	return client, stop, nil
}

type socketDialer string

func (p socketDialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", string(p))
}

func (b *backend) removeSockDir() {
	if b.sockDir != "" {
		os.RemoveAll(b.sockDir)
	}
}

// close stops the workbench, closes the front's SQLite connections (before FerretDB's,
// so that SQLite's last connection, which checkpoints, is FerretDB's) and stops
// FerretDB, which closes its SQLite files.
func (b *backend) close() error {
	var err error
	if b.bench != nil {
		err = b.bench.close()
	}
	if errFiles := b.files.closeAll(); err == nil {
		err = errFiles
	}
	b.stop()
	b.removeSockDir()
	return err
}

// ensureIDIndex adds to a collection's SQLite table the index FerretDB's own lookups
// by _id and the front's keyed writes (keyed.go) use, and the index of _id order the
// front's scans walk (idscan.go). FerretDB v1.24.2 filters on
// `_ferretdb_sjson->'$._id'` but indexes `_ferretdb_sjson->"_id"`, an expression SQLite
// does not recognize as the same, so without this every read, update and delete by _id
// scans the whole table (measured: 20-40 ms per targeted write at 10,000 documents,
// growing with the collection). The index is invisible to FerretDB (not in its
// metadata) and goes with the table.
func (b *backend) ensureIDIndex(ctx context.Context, db, coll string) error {
	conn, table, err := b.files.table(ctx, db, coll)
	if err != nil {
		return err
	}
	if table == "" {
		return fmt.Errorf("find the SQLite table of %s.%s: FerretDB has none", db, coll)
	}
	q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, table+"_shardlift_id", table, idColumn)
	_, err = conn.ExecContext(ctx, q)
	if err == nil {
		_, err = conn.ExecContext(ctx, idOrderIndexSQL(table))
	}
	b.gens.wrote(db, coll)
	if err != nil {
		return fmt.Errorf("index _id of %s.%s: %w", db, coll, err)
	}
	return nil
}

// backendError is a command FerretDB answered with ok: 0; reply is its answer.
type backendError struct {
	reply bson.Raw
}

func (e *backendError) Error() string {
	code, name, msg := e.parts()
	return fmt.Sprintf("%s (%d): %s", name, code, msg)
}

func (e *backendError) parts() (int32, string, string) {
	code, _ := e.reply.Lookup("code").AsInt32OK()
	name, _ := e.reply.Lookup("codeName").StringValueOK()
	msg, _ := e.reply.Lookup("errmsg").StringValueOK()
	return code, name, msg
}

// run sends a command to FerretDB. A reply with ok: 1 is returned as is, write errors
// included; ok: 0 comes back as a *backendError carrying the reply.
func (b *backend) run(ctx context.Context, db string, cmd any) (bson.Raw, error) {
	raw, err := b.client.Database(db).RunCommand(ctx, cmd).Raw()
	b.gens.wroteBy(db, cmd)
	if len(raw) > 0 {
		if isOK(raw) {
			return raw, nil
		}
		return nil, &backendError{reply: raw}
	}
	if err != nil {
		return nil, fmt.Errorf("FerretDB backend: %w", err)
	}
	return nil, errors.New("FerretDB backend sent an empty reply")
}

func isOK(reply bson.Raw) bool {
	v := reply.Lookup("ok")
	switch v.Type {
	case bsontype.Double:
		return v.Double() == 1
	case bsontype.Int32, bsontype.Int64:
		return v.AsInt64() == 1
	case bsontype.Boolean:
		return v.Boolean()
	}
	return false
}

// find runs a query on FerretDB and returns every document it yields.
func (b *backend) find(ctx context.Context, db, coll string, filter, sort bson.Raw, limit int64) ([]bson.Raw, error) {
	cmd := bson.D{{Key: "find", Value: coll}, {Key: "filter", Value: orEmpty(filter)}}
	if len(sort) > 0 {
		cmd = append(cmd, bson.E{Key: "sort", Value: sort})
	}
	if limit > 0 {
		cmd = append(cmd, bson.E{Key: "limit", Value: limit})
	}
	cmd = append(cmd, bson.E{Key: "batchSize", Value: int32(10000)})
	reply, err := b.run(ctx, db, cmd)
	if err != nil {
		return nil, err
	}
	return b.drain(ctx, db, reply)
}

// drain collects a cursor reply's documents, fetching further batches from FerretDB.
func (b *backend) drain(ctx context.Context, db string, reply bson.Raw) ([]bson.Raw, error) {
	var out []bson.Raw
	batch := "firstBatch"
	for {
		cur := document(reply.Lookup("cursor"))
		docs := values(cur.Lookup(batch))
		for _, d := range docs {
			out = append(out, document(d))
		}
		id, _ := cur.Lookup("id").AsInt64OK()
		if id == 0 {
			return out, nil
		}
		ns := str(cur.Lookup("ns"))
		_, coll, _ := strings.Cut(ns, ".")
		var err error
		reply, err = b.run(ctx, db, bson.D{{Key: "getMore", Value: id}, {Key: "collection", Value: coll}, {Key: "batchSize", Value: int32(10000)}})
		if err != nil {
			return nil, err
		}
		batch = "nextBatch"
	}
}

// ferretFetchByID has FerretDB read one document by a lone {_id: v} filter. It returns
// nil when there is none.
func (b *backend) ferretFetchByID(ctx context.Context, db, coll string, id bson.RawValue) (bson.Raw, error) {
	reply, err := b.run(ctx, db, bson.D{
		{Key: "find", Value: coll},
		{Key: "filter", Value: bson.D{{Key: "_id", Value: id}}},
		{Key: "limit", Value: int64(1)},
		{Key: "singleBatch", Value: true},
	})
	if err != nil {
		return nil, err
	}
	docs := values(reply.Lookup("cursor", "firstBatch"))
	if len(docs) == 0 {
		return nil, nil
	}
	return document(docs[0]), nil
}

// ferretModifyByID has FerretDB apply an update (operators, replacement or pipeline) to
// the document with the given _id and returns the post-image.
func (b *backend) ferretModifyByID(ctx context.Context, db, coll string, id, update, arrayFilters bson.RawValue) (bson.Raw, error) {
	cmd := bson.D{
		{Key: "findAndModify", Value: coll},
		{Key: "query", Value: bson.D{{Key: "_id", Value: id}}},
		{Key: "update", Value: update},
		{Key: "new", Value: true},
	}
	if arrayFilters.Type != 0 {
		cmd = append(cmd, bson.E{Key: "arrayFilters", Value: arrayFilters})
	}
	reply, err := b.run(ctx, db, cmd)
	if err != nil {
		return nil, err
	}
	post, ok := reply.Lookup("value").DocumentOK()
	if !ok {
		return nil, fmt.Errorf("FerretDB lost document _id %s of %s.%s during an update", id, db, coll)
	}
	return post, nil
}

// ferretDeleteByID has FerretDB delete the document with the given _id and reports
// whether it existed.
func (b *backend) ferretDeleteByID(ctx context.Context, db, coll string, id bson.RawValue) (bool, error) {
	reply, err := b.run(ctx, db, bson.D{
		{Key: "delete", Value: coll},
		{Key: "deletes", Value: bson.A{bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: id}}}, {Key: "limit", Value: int32(1)}}}},
	})
	if err != nil {
		return false, err
	}
	n, _ := reply.Lookup("n").AsInt64OK()
	return n == 1, nil
}

// values returns the elements of an array value, or none when v is not an array.
func values(v bson.RawValue) []bson.RawValue {
	arr, ok := v.ArrayOK()
	if !ok {
		return nil
	}
	vals, _ := arr.Values()
	return vals
}

// document returns an embedded document value, or an empty document when v is not one.
func document(v bson.RawValue) bson.Raw {
	d, ok := v.DocumentOK()
	if !ok {
		return emptyDoc
	}
	return d
}

// str returns a string value, or "" when v is not a string.
func str(v bson.RawValue) string {
	s, _ := v.StringValueOK()
	return s
}

func orEmpty(d bson.Raw) bson.Raw {
	if len(d) == 0 {
		return emptyDoc
	}
	return d
}

var emptyDoc = bson.Raw(bsoncore.NewDocumentBuilder().Build())

// envelopeFields are the fields drivers and routers add around a command that FerretDB
// either rejects or must not act on.
var envelopeFields = map[string]bool{
	"$db": true, "lsid": true, "$clusterTime": true, "$readPreference": true, "txnNumber": true,
	"autocommit": true, "startTransaction": true, "readConcern": true, "writeConcern": true,
	"apiVersion": true, "apiStrict": true, "apiDeprecationErrors": true, "$audit": true,
	"$client": true, "$configServerState": true, "$configTime": true, "$topologyTime": true,
	"maxTimeMSOpOnly": true, "databaseVersion": true, "shardVersion": true, "$queryOptions": true,
	"noCursorTimeout": true, "allowPartialResults": true, "mayBypassWriteBlocking": true,
	"clientOperationKey": true, "fromMigrate": true, "bypassDocumentValidation": true,
	"stmtIds": true, "stmtId": true, routerLSID: true,
}

// stripped is the command without its envelope fields, and without the named extra ones.
func stripped(body bson.Raw, extra ...string) bson.Raw {
	elems, _ := body.Elements()
	idx, out := bsoncore.AppendDocumentStart(nil)
	for _, e := range elems {
		k := e.Key()
		if envelopeFields[k] || slices.Contains(extra, k) {
			continue
		}
		out = append(out, e...)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return out
}

// minLevel drops records below a level: FerretDB logs every connection and command.
// Attributes and groups reach the handler only with a record that passes: FerretDB
// adds every SQL statement's arguments to its logger before each statement (fsql's
// Tx.ExecContext, for a debug record), and a text handler formats them at once, so
// the sandbox's servers spent a fifth of their time quoting the documents of every
// insert for records never written (figure 1's profile, session 14).
type minLevel struct {
	level slog.Level
	h     slog.Handler
	// pending are the WithAttrs and WithGroup calls not yet made on h, in order.
	pending []func(slog.Handler) slog.Handler
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.level && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error {
	h := m.h
	for _, apply := range m.pending {
		h = apply(h)
	}
	return h.Handle(ctx, r)
}

func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return m.later(func(h slog.Handler) slog.Handler { return h.WithAttrs(a) })
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return m.later(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

func (m minLevel) later(apply func(slog.Handler) slog.Handler) slog.Handler {
	return minLevel{m.level, m.h, append(slices.Clip(m.pending), apply)}
}
