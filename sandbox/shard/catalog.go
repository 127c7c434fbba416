package shard

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// collInfo is what the front knows about a namespace beyond FerretDB: the collection's
// UUID and shard key (for oplog entries), whether it exists, a view's definition
// (FerretDB has no views) and the index options FerretDB cannot hold.
type collInfo struct {
	NS       string           `bson:"ns"`
	UUID     primitive.Binary `bson:"uuid"`
	Key      bson.Raw         `bson:"key,omitempty"`
	Exists   bool             `bson:"exists"`
	ViewOn   string           `bson:"viewOn,omitempty"`
	Pipeline bson.RawValue    `bson:"pipeline,omitempty"`
	Indexes  []indexInfo      `bson:"indexes,omitempty"`
}

// indexInfo is an index FerretDB cannot hold (Virtual: Spec is the whole spec, as
// listIndexes shows it) or the options FerretDB lacks for one it holds (Spec holds just
// those options, merged into its listIndexes entry).
type indexInfo struct {
	Name    string   `bson:"name"`
	Virtual bool     `bson:"virtual"`
	Spec    bson.Raw `bson:"spec"`
}

func (c *collInfo) isView() bool { return c.ViewOn != "" }

func (c *collInfo) index(name string) (int, bool) {
	for i, ix := range c.Indexes {
		if ix.Name == name {
			return i, true
		}
	}
	return -1, false
}

// catalog is the front's metadata, persisted in one BSON file rewritten on each change.
// Changes happen under the shard's write lock; readers take the read lock.
type catalog struct {
	path string
	mu   sync.RWMutex
	byNS map[string]*collInfo
}

type catalogFile struct {
	Collections []*collInfo `bson:"collections"`
}

func loadCatalog(path string) (*catalog, error) {
	c := &catalog{path: path, byNS: map[string]*collInfo{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read shard metadata: %w", err)
	}
	var f catalogFile
	if err := bson.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("shard metadata %s is damaged: %w", path, err)
	}
	for _, ci := range f.Collections {
		c.byNS[ci.NS] = ci
	}
	return c, nil
}

// saveLocked writes the catalog atomically (temp file + rename).
func (c *catalog) saveLocked() error {
	f := catalogFile{Collections: make([]*collInfo, 0, len(c.byNS))}
	for _, ci := range c.byNS {
		f.Collections = append(f.Collections, ci)
	}
	sort.Slice(f.Collections, func(i, j int) bool { return f.Collections[i].NS < f.Collections[j].NS })
	b, err := bson.Marshal(f)
	if err != nil {
		return fmt.Errorf("encode shard metadata: %w", err)
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write shard metadata: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("write shard metadata: %w", err)
	}
	return nil
}

// get returns a copy of a namespace's info.
func (c *catalog) get(ns string) (collInfo, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	ci, ok := c.byNS[ns]
	if !ok {
		return collInfo{}, false
	}
	return ci.clone(), true
}

// lookup returns a namespace's info, or an empty one naming it when it is unknown.
func (c *catalog) lookup(ns string) collInfo {
	if ci, ok := c.get(ns); ok {
		return ci
	}
	return collInfo{NS: ns}
}

func (ci *collInfo) clone() collInfo {
	out := *ci
	out.Indexes = append([]indexInfo(nil), ci.Indexes...)
	return out
}

// update changes a namespace's info (creating it with a fresh UUID if unknown) and
// saves the catalog.
func (c *catalog) update(ns string, fn func(ci *collInfo)) (collInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci, ok := c.byNS[ns]
	if !ok {
		ci = &collInfo{NS: ns, UUID: newUUID()}
		c.byNS[ns] = ci
	}
	fn(ci)
	return ci.clone(), c.saveLocked()
}

// remove forgets a namespace.
func (c *catalog) remove(ns string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byNS[ns]; !ok {
		return nil
	}
	delete(c.byNS, ns)
	return c.saveLocked()
}

// rename moves a collection's info to a new namespace (the UUID stays with it).
func (c *catalog) rename(from, to string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci, ok := c.byNS[from]
	if !ok {
		return nil
	}
	delete(c.byNS, from)
	ci.NS = to
	c.byNS[to] = ci
	return c.saveLocked()
}

// inDB lists the namespaces of one database, sorted by name.
func (c *catalog) inDB(db string) []collInfo {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []collInfo
	for ns, ci := range c.byNS {
		if strings.HasPrefix(ns, db+".") {
			out = append(out, ci.clone())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NS < out[j].NS })
	return out
}

// reconcile makes the catalog agree with the collections FerretDB holds (found maps a
// namespace to the UUID FerretDB reports): collections the front has not seen get that
// UUID, and collections that are gone are marked so.
func (c *catalog) reconcile(found map[string]primitive.Binary) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ns, uuid := range found {
		ci, ok := c.byNS[ns]
		if !ok {
			if len(uuid.Data) != 16 {
				uuid = newUUID()
			}
			ci = &collInfo{NS: ns, UUID: uuid}
			c.byNS[ns] = ci
		}
		ci.Exists = true
	}
	for ns, ci := range c.byNS {
		if _, ok := found[ns]; !ok && ci.Exists {
			ci.Exists = false
			ci.Indexes = nil
		}
	}
	return c.saveLocked()
}

func newUUID() primitive.Binary {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return primitive.Binary{Subtype: 4, Data: b}
}
