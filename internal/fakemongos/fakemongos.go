// Package fakemongos is a test double of a mongos: it answers over the real wire
// protocol from sharding metadata documents written in the format of one MongoDB
// version (config.shards, databases, collections, chunks, tags, settings), so that
// discovery, the plan and Prepare can be tested on what real clusters of every
// version hold, including what the sandbox cannot present. It records the commands
// it receives; commands it does not know go to a handler the test provides.
package fakemongos

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Collection is one collection or view a database lists.
type Collection struct {
	Name string
	// Type is listCollections' type; "" is "collection".
	Type    string
	Options bson.D
}

// Mongos is the state the fake serves. Tests fill it before Start and may
// change it through Config and SetConfig while it runs.
type Mongos struct {
	// Version is what buildInfo and hello report, such as "4.4.29".
	Version string
	// Shards are config.shards' documents, which listShards returns.
	Shards []bson.D
	// ConfigDocs are the documents of config.<name>: databases, collections,
	// chunks, tags, settings, ...
	ConfigDocs map[string][]bson.D
	// Databases are the databases listDatabases reports, with their collections.
	Databases map[string][]Collection
	// Handle answers the commands the fake does not know; nil or false: CommandNotFound.
	Handle func(m *Mongos, cmd *wire.Command) (bson.Raw, bool)

	mu       sync.Mutex
	commands []bson.Raw
}

// Start serves m on a free loopback port and returns its connection string.
func Start(t testing.TB, m *Mongos) string {
	t.Helper()
	if m.Version == "" {
		m.Version = "7.0.14"
	}
	s, err := wire.Listen(wire.Config{Addr: "127.0.0.1:0", Handler: wire.HandlerFunc(m.handle)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return "mongodb://" + s.Addr() + "/"
}

// Commands returns the commands received so far whose name is one of names
// (all of them when names is empty), in order.
func (m *Mongos) Commands(names ...string) []bson.Raw {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []bson.Raw
	for _, c := range m.commands {
		name := firstKey(c)
		if len(names) == 0 || contains(names, name) {
			out = append(out, c)
		}
	}
	return out
}

// Config returns a copy of config.<name>'s documents.
func (m *Mongos) Config(name string) []bson.D {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]bson.D(nil), m.ConfigDocs[name]...)
}

// SetConfig replaces config.<name>'s documents.
func (m *Mongos) SetConfig(name string, docs []bson.D) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ConfigDocs == nil {
		m.ConfigDocs = map[string][]bson.D{}
	}
	m.ConfigDocs[name] = docs
}

func contains(names []string, name string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

func firstKey(doc bson.Raw) string {
	elems, _ := doc.Elements()
	if len(elems) == 0 {
		return ""
	}
	return elems[0].Key()
}

var handshake = map[string]bool{"hello": true, "ismaster": true, "buildinfo": true, "getparameter": true,
	"connectionstatus": true, "ping": true, "endsessions": true, "saslstart": true, "saslcontinue": true}

func (m *Mongos) handle(_ context.Context, s *wire.Session, cmd *wire.Command) bson.Raw {
	name := strings.ToLower(cmd.Name)
	if !handshake[name] {
		m.mu.Lock()
		m.commands = append(m.commands, append(bson.Raw(nil), cmd.Body...))
		m.mu.Unlock()
	}
	if name == "hello" || name == "ismaster" {
		return wire.OK(append(wire.HelloBase(cmd, m.Version), bson.E{Key: "msg", Value: "isdbgrid"})...)
	}
	id := wire.Identity{Version: m.Version}
	if reply, ok := id.AnswerCommon(s, cmd); ok {
		return reply
	}
	if m.Handle != nil {
		if reply, ok := m.Handle(m, cmd); ok {
			return reply
		}
	}
	switch name {
	case "listshards":
		m.mu.Lock()
		shards := bson.A{}
		for _, sh := range m.Shards {
			shards = append(shards, sh)
		}
		m.mu.Unlock()
		return wire.OK(bson.E{Key: "shards", Value: shards})
	case "serverstatus":
		return wire.OK(bson.E{Key: "sharding", Value: bson.D{{Key: "configsvrConnectionString", Value: "csRS/127.0.0.1:9"}}})
	case "balancerstatus":
		return wire.OK(bson.E{Key: "mode", Value: "off"}, bson.E{Key: "inBalancerRound", Value: false})
	case "usersinfo":
		return wire.OK(bson.E{Key: "users", Value: bson.A{}})
	case "rolesinfo":
		return wire.OK(bson.E{Key: "roles", Value: bson.A{}})
	case "listdatabases":
		return m.listDatabases()
	case "listcollections":
		name, _ := cmd.Body.Lookup("filter", "name").StringValueOK()
		return m.listCollections(cmd.DB, name)
	case "find":
		return m.find(cmd)
	case "update":
		return m.update(cmd)
	case "collstats":
		return wire.OK(bson.E{Key: "count", Value: int64(0)}, bson.E{Key: "size", Value: int64(0)})
	case "aggregate":
		return cursor(cmd.DB+".$cmd.aggregate", nil)
	}
	return wire.ErrorReply(wire.CommandNotFound(cmd.Name))
}

func cursor(ns string, docs []bson.D) bson.Raw {
	batch := bson.A{}
	for _, d := range docs {
		batch = append(batch, d)
	}
	return wire.OK(bson.E{Key: "cursor", Value: bson.D{{Key: "id", Value: int64(0)}, {Key: "ns", Value: ns}, {Key: "firstBatch", Value: batch}}})
}

func (m *Mongos) listDatabases() bson.Raw {
	m.mu.Lock()
	defer m.mu.Unlock()
	dbs := bson.A{bson.D{{Key: "name", Value: "admin"}}, bson.D{{Key: "name", Value: "config"}}}
	for name := range m.Databases {
		dbs = append(dbs, bson.D{{Key: "name", Value: name}, {Key: "sizeOnDisk", Value: int64(0)}, {Key: "empty", Value: false}})
	}
	return wire.OK(bson.E{Key: "databases", Value: dbs}, bson.E{Key: "totalSize", Value: int64(0)})
}

// listCollections lists db's collections, only the one called name when it is set.
func (m *Mongos) listCollections(db, name string) bson.Raw {
	m.mu.Lock()
	defer m.mu.Unlock()
	var docs []bson.D
	for _, c := range m.Databases[db] {
		if name != "" && c.Name != name {
			continue
		}
		typ := c.Type
		if typ == "" {
			typ = "collection"
		}
		opts := c.Options
		if opts == nil {
			opts = bson.D{}
		}
		docs = append(docs, bson.D{{Key: "name", Value: c.Name}, {Key: "type", Value: typ}, {Key: "options", Value: opts}})
	}
	return cursor(db+".$cmd.listCollections", docs)
}

// find serves config.<name> with a filter of top-level equalities, or $or of them.
func (m *Mongos) find(cmd *wire.Command) bson.Raw {
	coll, _ := cmd.Lookup("find").StringValueOK()
	if cmd.DB != "config" {
		return cursor(cmd.DB+"."+coll, nil)
	}
	filter, _ := cmd.Lookup("filter").DocumentOK()
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []bson.D
	for _, d := range m.ConfigDocs[coll] {
		if matches(d, filter) {
			out = append(out, d)
		}
	}
	return cursor("config."+coll, out)
}

// update applies {$set: {...}} updates to config.<name> documents.
func (m *Mongos) update(cmd *wire.Command) bson.Raw {
	coll, _ := cmd.Lookup("update").StringValueOK()
	updates, _ := cmd.Lookup("updates").ArrayOK()
	values, _ := updates.Values()
	m.mu.Lock()
	defer m.mu.Unlock()
	n := int32(0)
	for _, v := range values {
		u, _ := v.DocumentOK()
		q, _ := u.Lookup("q").DocumentOK()
		set, ok := u.Lookup("u").Document().Lookup("$set").DocumentOK()
		if !ok {
			return wire.ErrorReply(wire.BadValue("fakemongos: only $set updates"))
		}
		docs := m.ConfigDocs[coll]
		for i, d := range docs {
			if !matches(d, q) {
				continue
			}
			n++
			elems, _ := set.Elements()
		fields:
			for _, e := range elems {
				var v any
				if err := e.Value().Unmarshal(&v); err != nil {
					return wire.ErrorReply(err)
				}
				for j := range d {
					if d[j].Key == e.Key() {
						d[j].Value = v
						continue fields
					}
				}
				d = append(d, bson.E{Key: e.Key(), Value: v})
			}
			docs[i] = d
		}
	}
	return wire.OK(bson.E{Key: "n", Value: n}, bson.E{Key: "nModified", Value: n})
}

// matches reports whether d satisfies filter: every top-level field equal (the
// same BSON type and bytes), or one branch of an $or.
func matches(d bson.D, filter bson.Raw) bool {
	raw, err := bson.Marshal(d)
	if err != nil {
		return false
	}
	elems, _ := filter.Elements()
	for _, e := range elems {
		if e.Key() == "$or" {
			branches, _ := e.Value().Array().Values()
			any := false
			for _, b := range branches {
				if matches(d, b.Document()) {
					any = true
					break
				}
			}
			if !any {
				return false
			}
			continue
		}
		got := bson.Raw(raw).Lookup(e.Key())
		want := e.Value()
		if got.Type != want.Type || !bytes.Equal(got.Value, want.Value) {
			return false
		}
	}
	return true
}
