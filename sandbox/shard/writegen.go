package shard

import (
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
)

// A mongod answers collStats, dbStats and listDatabases from counters it keeps as it
// writes; FerretDB (SQLite) computes them from the data each time: collStats runs
// ANALYZE on the collection's table, dbStats on every table of the database,
// listDatabases reads every page of every database, and the front adds a sample of
// documents for MongoDB's BSON sizes (stats.go). Discovery asks for them once per
// collection and shard, again after each DDL and for each verification plan, so on
// the sandbox they took a tenth of a migration test's CPU, growing with the data.
//
// The front answers them again from the reply it computed last as long as nothing
// was written since: writeGens counts the writes the backend made, by collection, by
// database and in all, and a cached reply is reused only while the counts it was
// computed under are unchanged. A write is counted after FerretDB (or the front's own
// SQL) applied it, so a reply computed while a write ran is not reused once it is
// done. Commands that may write and whose target is not one known collection
// (renameCollection, dropDatabase, applyOps, anything unknown) count as a write to
// everything.

// writeGens counts a backend's writes.
type writeGens struct {
	mu    sync.Mutex
	any   uint64            // every write
	wide  uint64            // writes of unknown or several targets
	dbs   map[string]uint64 // by database
	colls map[string]uint64 // by namespace
	stats map[string]cachedStats
	// computed counts the replies computed rather than answered again.
	computed uint64
}

// cachedStats is a reply and the counts it was computed under.
type cachedStats struct {
	gen   statsGen
	reply bson.Raw
}

// statsGen is what a cached reply depends on.
type statsGen struct{ wide, n uint64 }

func newWriteGens() *writeGens {
	return &writeGens{dbs: map[string]uint64{}, colls: map[string]uint64{}, stats: map[string]cachedStats{}}
}

// wrote counts a write to the collection db.coll.
func (g *writeGens) wrote(db, coll string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.any++
	g.dbs[db]++
	g.colls[db+"."+coll]++
}

// wroteAnywhere counts a write whose targets are not known: every reply kept so far
// depends on wide.
func (g *writeGens) wroteAnywhere() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.any++
	g.wide++
}

// A reply depends on the writes to one collection, to one database, or to any.
func (g *writeGens) ofCollection(ns string) func() statsGen {
	return func() statsGen { return statsGen{g.wide, g.colls[ns]} }
}

func (g *writeGens) ofDatabase(db string) func() statsGen {
	return func() statsGen { return statsGen{g.wide, g.dbs[db]} }
}

func (g *writeGens) ofAll() statsGen { return statsGen{g.wide, g.any} }

// statsOnce answers the reply kept under key if the counts gen reads (under g.mu) are
// those it was computed under, or computes it and keeps it when it succeeded.
func (g *writeGens) statsOnce(key string, gen func() statsGen, compute func() (bson.Raw, error)) (bson.Raw, error) {
	g.mu.Lock()
	now := gen()
	if c, ok := g.stats[key]; ok && c.gen == now {
		g.mu.Unlock()
		return c.reply, nil
	}
	g.computed++
	g.mu.Unlock()
	reply, err := compute()
	if err == nil {
		g.mu.Lock()
		g.stats[key] = cachedStats{gen: now, reply: reply}
		g.mu.Unlock()
	}
	return reply, err
}

// readOnly are the commands the backend is sent that write nothing.
var readOnly = map[string]bool{
	"find": true, "getmore": true, "killcursors": true, "count": true, "distinct": true,
	"listcollections": true, "listindexes": true, "listdatabases": true, "collstats": true,
	"dbstats": true, "explain": true, "hello": true, "ismaster": true, "ping": true,
	"buildinfo": true, "serverstatus": true, "getparameter": true, "connectionstatus": true,
	"datasize": true, "validate": true, "getlog": true, "hostinfo": true,
}

// oneCollection are the writes whose target is the collection their first field names.
var oneCollection = map[string]bool{
	"insert": true, "update": true, "delete": true, "findandmodify": true, "create": true,
	"drop": true, "createindexes": true, "dropindexes": true, "deleteindexes": true, "collmod": true,
	"compact": true,
}

// wroteBy counts what a command the backend ran may have written.
func (g *writeGens) wroteBy(db string, cmd any) {
	name, coll, body, ok := commandHead(cmd)
	switch {
	case !ok:
		g.wroteAnywhere()
	case name == "aggregate":
		if writesOut(body()) {
			g.wroteAnywhere()
		}
	case readOnly[name]:
	case oneCollection[name] && coll != "":
		g.wrote(db, coll)
	default:
		g.wroteAnywhere()
	}
}

// commandHead is a command's name (lower case) and the string its first field holds,
// and a function that encodes the whole command.
func commandHead(cmd any) (name, coll string, body func() bson.Raw, ok bool) {
	if d, isD := cmd.(bson.D); isD && len(d) > 0 {
		coll, _ = d[0].Value.(string)
		return strings.ToLower(d[0].Key), coll, func() bson.Raw { raw, _ := bson.Marshal(d); return raw }, true
	}
	raw, isRaw := cmd.(bson.Raw)
	if !isRaw {
		b, err := bson.Marshal(cmd)
		if err != nil {
			return "", "", nil, false
		}
		raw = b
	}
	first, err := raw.IndexErr(0) // the first element only: an insert's documents are not walked
	if err != nil {
		return "", "", nil, false
	}
	coll, _ = first.Value().StringValueOK()
	return strings.ToLower(first.Key()), coll, func() bson.Raw { return raw }, true
}

// writesOut reports whether an aggregate's pipeline ends in $out or $merge.
func writesOut(cmd bson.Raw) bool {
	stages, ok := cmd.Lookup("pipeline").ArrayOK()
	if !ok {
		return false
	}
	vals, _ := stages.Values()
	for _, v := range vals {
		if st, ok := v.DocumentOK(); ok {
			if _, err := st.LookupErr("$out"); err == nil {
				return true
			}
			if _, err := st.LookupErr("$merge"); err == nil {
				return true
			}
		}
	}
	return false
}
