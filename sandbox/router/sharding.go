package router

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// nsArg reads a "db.coll" namespace argument.
func nsArg(cmd *wire.Command) (ns, db, coll string, err error) {
	ns, _ = cmd.Lookup(cmd.Name).StringValueOK()
	db, coll, ok := splitNS(ns)
	if !ok {
		return "", "", "", &wire.Error{Code: 73, Name: "InvalidNamespace", Msg: fmt.Sprintf("%s needs a full namespace (db.collection), got %q", cmd.Name, ns)}
	}
	return ns, db, coll, nil
}

func notSharded(ns string) error {
	return &wire.Error{Code: 118, Name: "NamespaceNotSharded", Msg: fmt.Sprintf("Collection %s is not sharded.", ns)}
}

func (r *Router) shardCollection(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	ns, db, coll, err := nsArg(cmd)
	if err != nil {
		return nil, err
	}
	if err := checkWritable(db); err != nil {
		return nil, err
	}
	keyDoc, ok := cmd.Lookup("key").DocumentOK()
	if !ok {
		return nil, wire.BadValue("shardCollection needs a key document")
	}
	pattern, err := shardkey.ParsePattern(keyDoc)
	if err != nil {
		return nil, wire.BadValue(err.Error())
	}
	unique := truthy(cmd.Lookup("unique"))
	if unique && pattern.IsHashed() {
		return nil, &wire.Error{Code: 72, Name: "InvalidOptions", Msg: "hashed shard keys cannot be declared unique. It's possible to ensure uniqueness on the hashed field by declaring an additional (non-hashed) unique index on the field."}
	}
	numChunks, _ := asInt64(cmd.Lookup("numInitialChunks"))

	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	if rt, ok := r.cat.Route(ns); ok && rt.Sharded() {
		if bytes.Equal(rt.Coll.Key, keyDoc) && rt.Coll.Unique == unique {
			return wire.OK(bson.E{Key: "collectionsharded", Value: ns}, bson.E{Key: "collectionUUID", Value: rt.Coll.UUID}), nil
		}
		return nil, &wire.Error{Code: 23, Name: "AlreadyInitialized",
			Msg: fmt.Sprintf("sharding already enabled for collection %s with options %s", ns, bson.Raw(rt.Coll.Key))}
	}
	dbDoc, err := r.cat.EnableSharding(db, "")
	if err != nil {
		return nil, err
	}
	primary, err := r.backend(dbDoc.Primary)
	if err != nil {
		return nil, err
	}
	info, exists, err := r.collectionInfo(ctx, primary, db, coll)
	if err != nil {
		return nil, err
	}
	uuid := newUUID()
	empty := true
	if exists {
		if sub, data, ok := info.Lookup("info", "uuid").BinaryOK(); ok && sub == 4 && len(data) == 16 {
			uuid = primitive.Binary{Subtype: 4, Data: data}
		}
		n, err := primary.run(ctx, db, bson.D{{Key: "count", Value: coll}})
		if err != nil {
			return nil, err
		}
		if c, _ := asInt64(n.Lookup("n")); c > 0 {
			empty = false
		}
	}
	// Every shard learns the collection's uuid and key first, so the entries of the
	// create and of every later write carry them.
	for _, b := range r.order {
		if err := setCollection(ctx, b, db, coll, keyDoc, uuid); err != nil {
			return nil, err
		}
	}
	chunks := initialChunks(pattern, r.shardNames(), dbDoc.Primary, empty, int(numChunks))
	owners := map[string]bool{dbDoc.Primary: true}
	for _, ch := range chunks {
		owners[ch.Shard] = true
	}
	keyIndex := bson.D{{Key: "key", Value: keyDoc}, {Key: "name", Value: indexName(keyDoc)}}
	if unique {
		keyIndex = append(keyIndex, bson.E{Key: "unique", Value: true})
	}
	for _, b := range r.order {
		if !owners[b.Name] {
			continue
		}
		if err := r.ensureCollection(ctx, b, db, coll, []bson.Raw{rawDoc(keyIndex)}); err != nil {
			return nil, err
		}
	}
	if _, err := r.cat.AddCollection(CollectionDoc{ID: ns, UUID: uuid, Key: keyDoc, Unique: unique}, chunks); err != nil {
		return nil, err
	}
	if err := r.noteShardCollection(ctx, primary, db, coll, keyDoc, unique, numChunks); err != nil {
		return nil, err
	}
	r.log.Info("collection sharded", "ns", ns, "key", keyDoc.String(), "chunks", len(chunks))
	return wire.OK(bson.E{Key: "collectionsharded", Value: ns}, bson.E{Key: "collectionUUID", Value: uuid}), nil
}

func (r *Router) shardNames() []string {
	out := make([]string, len(r.order))
	for i, b := range r.order {
		out[i] = b.Name
	}
	return out
}

// initialChunks is the placement shardCollection creates: one chunk on the primary
// for a ranged key (or a non-empty collection), and for an empty collection whose
// key starts with a hashed field, numChunks (default 2 per shard) chunks split
// evenly over the hash space, each shard getting a contiguous run, as MongoDB's
// initial split policy does.
func initialChunks(p *shardkey.Pattern, shards []string, primary string, empty bool, numChunks int) []ChunkDoc {
	whole := []ChunkDoc{{Min: bson.Raw(p.GlobalMin()), Max: bson.Raw(p.GlobalMax()), Shard: primary}}
	fields := p.Fields()
	if !empty || !p.IsHashed() || fields[0] != p.HashedField() {
		return whole
	}
	if numChunks <= 0 {
		numChunks = 2 * len(shards)
	}
	points := hashedSplitPoints(numChunks)
	bounds := make([]bson.Raw, 0, len(points)+2)
	bounds = append(bounds, bson.Raw(p.GlobalMin()))
	for _, pt := range points {
		idx, doc := bsoncore.AppendDocumentStart(nil)
		doc = bsoncore.AppendInt64Element(doc, fields[0], pt)
		for _, f := range fields[1:] {
			doc = bsoncore.AppendMinKeyElement(doc, f)
		}
		doc, _ = bsoncore.AppendDocumentEnd(doc, idx)
		bounds = append(bounds, doc)
	}
	bounds = append(bounds, bson.Raw(p.GlobalMax()))
	n := len(bounds) - 1
	chunks := make([]ChunkDoc, n)
	for i := range n {
		chunks[i] = ChunkDoc{Min: bounds[i], Max: bounds[i+1], Shard: shards[i*len(shards)/n]}
	}
	return chunks
}

// hashedSplitPoints spreads n-1 split points evenly over the int64 hash space,
// symmetric around 0, as MongoDB's calculateHashedSplitPoints does.
func hashedSplitPoints(n int) []int64 {
	if n <= 1 {
		return nil
	}
	interval := (math.MaxInt64 / int64(n)) * 2
	var pts []int64
	cur := int64(0)
	if n%2 == 0 {
		pts = append(pts, 0)
		cur += interval
	} else {
		cur += interval / 2
	}
	for range (n - 1) / 2 {
		pts = append(pts, cur, -cur)
		cur += interval
	}
	slices.Sort(pts)
	return pts
}

// indexName is MongoDB's default index name: "a_1_b_-1", "x_hashed".
func indexName(key bson.Raw) string {
	elems, _ := key.Elements()
	parts := make([]string, 0, 2*len(elems))
	for _, e := range elems {
		v := e.Value()
		val := ""
		if s, ok := v.StringValueOK(); ok {
			val = s
		} else if n, ok := asInt64(v); ok {
			val = fmt.Sprint(n)
		}
		parts = append(parts, e.Key(), val)
	}
	return strings.Join(parts, "_")
}

// collectionInfo returns the shard's listCollections entry for a collection.
func (r *Router) collectionInfo(ctx context.Context, b *backend, db, coll string) (bson.Raw, bool, error) {
	docs, err := b.all(ctx, db, bson.D{{Key: "listCollections", Value: 1}, {Key: "filter", Value: bson.D{{Key: "name", Value: coll}}}})
	if err != nil {
		return nil, false, err
	}
	if len(docs) == 0 {
		return nil, false, nil
	}
	return docs[0], true, nil
}

// setCollection tells a shard front a collection's uuid and shard key
// (_sandboxSetCollection, see the sandbox contracts).
func setCollection(ctx context.Context, b *backend, db, coll string, key bson.Raw, uuid primitive.Binary) error {
	cmd := bson.D{{Key: "_sandboxSetCollection", Value: coll}}
	if key != nil {
		cmd = append(cmd, bson.E{Key: "key", Value: key})
	}
	cmd = append(cmd, bson.E{Key: "uuid", Value: uuid})
	if _, err := b.run(ctx, db, cmd); err != nil {
		return fmt.Errorf("tell shard %s about %s.%s: %w", b.Name, db, coll, err)
	}
	return nil
}

// ensureCollection creates a collection on a shard if it lacks it, with the given
// index specifications (an index whose key already exists there is skipped).
func (r *Router) ensureCollection(ctx context.Context, b *backend, db, coll string, indexes []bson.Raw) error {
	_, exists, err := r.collectionInfo(ctx, b, db, coll)
	if err != nil {
		return err
	}
	if !exists {
		if _, err := b.run(ctx, db, bson.D{{Key: "create", Value: coll}}); err != nil && !isCode(err, 48) {
			return fmt.Errorf("create %s.%s on shard %s: %w", db, coll, b.Name, err)
		}
	}
	have, err := b.all(ctx, db, bson.D{{Key: "listIndexes", Value: coll}})
	if err != nil {
		return err
	}
	var missing bson.A
	for _, spec := range indexes {
		key, _ := spec.Lookup("key").DocumentOK()
		found := false
		for _, h := range have {
			if hk, ok := h.Lookup("key").DocumentOK(); ok && sameIndexKey(hk, key) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, spec)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := b.run(ctx, db, bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: missing}}); err != nil {
		return fmt.Errorf("create indexes of %s.%s on shard %s: %w", db, coll, b.Name, err)
	}
	return nil
}

// sameIndexKey compares index key patterns: same fields in order, each with the
// same direction or the same kind ("hashed").
func sameIndexKey(a, b bson.Raw) bool {
	ea, _ := a.Elements()
	eb, _ := b.Elements()
	if len(ea) != len(eb) {
		return false
	}
	for i := range ea {
		if ea[i].Key() != eb[i].Key() {
			return false
		}
		va, vb := ea[i].Value(), eb[i].Value()
		sa, aIsStr := va.StringValueOK()
		sb, bIsStr := vb.StringValueOK()
		if aIsStr || bIsStr {
			if sa != sb || aIsStr != bIsStr {
				return false
			}
			continue
		}
		na, _ := asInt64(va)
		nb, _ := asInt64(vb)
		if (na < 0) != (nb < 0) {
			return false
		}
	}
	return true
}

// boundKey reads a chunk bound or split point given by a user: a document with
// every shard key field, values taken as they are (hashed fields already hashed).
func boundKey(rt *Routing, doc bson.Raw) (shardkey.Key, error) {
	idx, out := bsoncore.AppendDocumentStart(nil)
	for _, f := range rt.Pattern.Fields() {
		v, err := doc.LookupErr(f)
		if err != nil {
			return nil, wire.BadValue(fmt.Sprintf("%s is not a shard key value of %s: field %q is missing", doc, rt.NS, f))
		}
		out = bsoncore.AppendValueElement(out, f, core(v))
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return shardkey.Key(out), nil
}

// chunkArg finds the chunk a split or moveChunk names with find (a shard key value
// as a query) or bounds ([min, max], exactly one chunk's).
func chunkArg(rt *Routing, cmd *wire.Command) (int, error) {
	if find, ok := cmd.Lookup("find").DocumentOK(); ok {
		key, err := rt.Pattern.ExtractDocumentKey(find)
		if err != nil {
			return 0, wire.BadValue(err.Error())
		}
		return rt.ChunkFor(key), nil
	}
	if arr, ok := cmd.Lookup("bounds").ArrayOK(); ok {
		vals, _ := arr.Values()
		if len(vals) == 2 {
			lo, ok1 := vals[0].DocumentOK()
			hi, ok2 := vals[1].DocumentOK()
			if ok1 && ok2 {
				minKey, err := boundKey(rt, lo)
				if err != nil {
					return 0, err
				}
				maxKey, err := boundKey(rt, hi)
				if err != nil {
					return 0, err
				}
				for i, ch := range rt.Chunks {
					if shardkey.CompareKeys(shardkey.Key(ch.Min), minKey) == 0 && shardkey.CompareKeys(shardkey.Key(ch.Max), maxKey) == 0 {
						return i, nil
					}
				}
				return 0, wire.BadValue(fmt.Sprintf("no chunk of %s has bounds [%s, %s)", rt.NS, lo, hi))
			}
		}
		return 0, wire.BadValue("bounds must be [min, max]")
	}
	return 0, wire.BadValue(cmd.Name + " needs find or bounds")
}

func (r *Router) split(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	ns, _, _, err := nsArg(cmd)
	if err != nil {
		return nil, err
	}
	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	rt, ok := r.cat.Route(ns)
	if !ok || !rt.Sharded() {
		return nil, notSharded(ns)
	}
	var at shardkey.Key
	if middle, ok := cmd.Lookup("middle").DocumentOK(); ok {
		if at, err = boundKey(rt, middle); err != nil {
			return nil, err
		}
	} else {
		i, err := chunkArg(rt, cmd)
		if err != nil {
			return nil, err
		}
		if i < 0 {
			return nil, wire.BadValue(fmt.Sprintf("no chunk of %s matches the command", ns))
		}
		if at, err = r.medianKey(ctx, rt, rt.Chunks[i]); err != nil {
			return nil, err
		}
	}
	if err := r.chunkPause(ctx, r.cfg.CommandLatency.Split); err != nil {
		return nil, err
	}
	if err := r.cat.SplitChunk(ns, at); err != nil {
		return nil, err
	}
	r.log.Info("chunk split", "ns", ns, "at", at.String())
	return wire.OK(), nil
}

// inChunk reports whether key lies in [ch.Min, ch.Max).
func inChunk(ch ChunkDoc, key shardkey.Key) bool {
	return shardkey.CompareKeys(shardkey.Key(ch.Min), key) <= 0 && shardkey.CompareKeys(key, shardkey.Key(ch.Max)) < 0
}

// medianKey is the split point split's find/bounds forms use: the median shard key
// of the chunk's documents on its shard.
func (r *Router) medianKey(ctx context.Context, rt *Routing, ch ChunkDoc) (shardkey.Key, error) {
	b, err := r.backend(ch.Shard)
	if err != nil {
		return nil, err
	}
	db, coll, _ := splitNS(rt.NS)
	docs, err := b.all(ctx, db, bson.D{{Key: "find", Value: coll}, {Key: "projection", Value: keyProjection(rt)}})
	if err != nil && !isCode(err, codeNamespaceNotFound) {
		return nil, err
	}
	var keys []shardkey.Key
	for _, d := range docs {
		k, err := rt.Pattern.Extract(d)
		if err == nil && inChunk(ch, k) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b shardkey.Key) int { return shardkey.CompareKeys(a, b) })
	for i := len(keys) / 2; i < len(keys); i++ {
		if shardkey.CompareKeys(keys[i], shardkey.Key(ch.Min)) > 0 {
			return keys[i], nil
		}
	}
	return nil, &wire.Error{Code: 2, Name: "BadValue", Msg: fmt.Sprintf(
		"cannot split chunk [%s, %s) of %s: its documents do not have two distinct shard key values", bson.Raw(ch.Min), bson.Raw(ch.Max), rt.NS)}
}

// migrationBatch bounds the documents of one insert or delete a migration sends.
const migrationBatch = 99

func (r *Router) moveChunk(ctx context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	start := time.Now()
	ns, db, coll, err := nsArg(cmd)
	if err != nil {
		return nil, err
	}
	to, _ := cmd.Lookup("to").StringValueOK()
	recipient, err := r.backend(to)
	if err != nil {
		return nil, err
	}
	l := r.lockNS(ns)
	l.Lock()
	defer l.Unlock()
	rt, ok := r.cat.Route(ns)
	if !ok || !rt.Sharded() {
		return nil, notSharded(ns)
	}
	i, err := chunkArg(rt, cmd)
	if err != nil {
		return nil, err
	}
	if i < 0 {
		return nil, wire.BadValue(fmt.Sprintf("no chunk of %s matches the command", ns))
	}
	if err := r.moveChunkTo(ctx, rt, rt.Chunks[i], recipient, db, coll); err != nil {
		return nil, err
	}
	return wire.OK(bson.E{Key: "millis", Value: int32(time.Since(start).Milliseconds())}), nil
}

// moveChunkTo moves one chunk to the recipient, taking as long as the cluster's
// moveChunk latency; a chunk already there stays. Called with the namespace locked.
func (r *Router) moveChunkTo(ctx context.Context, rt *Routing, ch ChunkDoc, recipient *backend, db, coll string) error {
	if ch.Shard == recipient.Name {
		return nil
	}
	donor, err := r.backend(ch.Shard)
	if err != nil {
		return err
	}
	if err := r.chunkPause(ctx, r.cfg.CommandLatency.MoveChunk); err != nil {
		return err
	}
	moved, err := r.migrate(ctx, rt, ch, donor, recipient, db, coll)
	if err != nil {
		return fmt.Errorf("move chunk [%s, %s) of %s from %s to %s: %w", bson.Raw(ch.Min), bson.Raw(ch.Max), rt.NS, donor.Name, recipient.Name, err)
	}
	r.log.Info("chunk moved", "ns", rt.NS, "min", bson.Raw(ch.Min).String(), "from", donor.Name, "to", recipient.Name, "docs", len(moved))
	return nil
}

// migrate copies a chunk's documents to the recipient (insert, fromMigrate),
// commits the new owner in the catalog, then deletes the donor's copies (delete,
// fromMigrate) unless the cluster leaves orphans. It returns the moved _ids.
func (r *Router) migrate(ctx context.Context, rt *Routing, ch ChunkDoc, donor, recipient *backend, db, coll string) ([]bson.RawValue, error) {
	if err := r.receiveCollection(ctx, rt, donor, recipient, db, coll); err != nil {
		return nil, err
	}
	// A range the recipient owned before may still hold its orphans: clear them, as
	// the recipient's range deleter would before accepting the chunk.
	stale, err := rangeDocs(ctx, rt, ch, recipient, db, coll)
	if err != nil {
		return nil, err
	}
	if err := deleteByID(ctx, recipient, db, coll, ids(stale), true); err != nil {
		return nil, err
	}
	docs, err := rangeDocs(ctx, rt, ch, donor, db, coll)
	if err != nil {
		return nil, err
	}
	if err := insertFromMigrate(ctx, recipient, db, coll, docs); err != nil {
		return nil, err
	}
	if err := r.cat.MoveChunk(rt.NS, ch.Min, recipient.Name); err != nil {
		return nil, err
	}
	moved := ids(docs)
	if r.cfg.LeaveOrphans {
		return moved, nil
	}
	if err := deleteByID(ctx, donor, db, coll, moved, true); err != nil {
		return nil, fmt.Errorf("the chunk moved but its documents stayed on %s as orphans: %w", donor.Name, err)
	}
	return moved, nil
}

// receiveCollection readies a recipient for a range of the collection: it learns the
// collection's uuid and key, and gets the collection with the donor's indexes.
func (r *Router) receiveCollection(ctx context.Context, rt *Routing, donor, recipient *backend, db, coll string) error {
	if err := setCollection(ctx, recipient, db, coll, rt.Coll.Key, rt.Coll.UUID); err != nil {
		return err
	}
	indexes, err := donor.all(ctx, db, bson.D{{Key: "listIndexes", Value: coll}})
	if err != nil && !isCode(err, codeNamespaceNotFound) {
		return err
	}
	var specs []bson.Raw
	for _, ix := range indexes {
		if name, _ := ix.Lookup("name").StringValueOK(); name != "_id_" {
			specs = append(specs, without(ix, map[string]bool{"v": true, "ns": true}))
		}
	}
	return r.ensureCollection(ctx, recipient, db, coll, specs)
}

// rangeDocs reads the documents of a shard whose shard key lies in a chunk.
func rangeDocs(ctx context.Context, rt *Routing, ch ChunkDoc, b *backend, db, coll string) ([]bson.Raw, error) {
	all, err := b.all(ctx, db, bson.D{{Key: "find", Value: coll}})
	if err != nil {
		if isCode(err, codeNamespaceNotFound) {
			return nil, nil
		}
		return nil, err
	}
	var out []bson.Raw
	for _, d := range all {
		if k, err := rt.Pattern.Extract(d); err == nil && inChunk(ch, k) {
			out = append(out, d)
		}
	}
	return out, nil
}

func ids(docs []bson.Raw) []bson.RawValue {
	out := make([]bson.RawValue, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.Lookup("_id"))
	}
	return out
}

// deleteByID deletes documents one statement each, in batches small enough for
// FerretDB.
func deleteByID(ctx context.Context, b *backend, db, coll string, idList []bson.RawValue, fromMigrate bool) error {
	for start := 0; start < len(idList); start += migrationBatch {
		batch := idList[start:min(start+migrationBatch, len(idList))]
		stmts := make(bson.A, len(batch))
		for i, id := range batch {
			stmts[i] = bson.D{{Key: "q", Value: bson.D{{Key: "_id", Value: id}}}, {Key: "limit", Value: int32(1)}}
		}
		cmd := bson.D{{Key: "delete", Value: coll}, {Key: "deletes", Value: stmts}, {Key: "ordered", Value: false}}
		if fromMigrate {
			cmd = append(cmd, bson.E{Key: "fromMigrate", Value: true})
		}
		reply, err := b.run(ctx, db, cmd)
		if err != nil {
			return err
		}
		if we := writeErrorsOf(reply); len(we) > 0 {
			return fmt.Errorf("delete on %s: %s", b.Name, we[0])
		}
	}
	return nil
}
