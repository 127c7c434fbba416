package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/namespaces"
)

// readAll runs a find and returns copies of every document. The find and each
// following batch are bounded by the timeout separately, so a big config.chunks is
// read as long as the server keeps answering.
func readAll(ctx context.Context, coll *mongo.Collection, timeout time.Duration, filter any, opts ...*options.FindOptions) ([]bson.Raw, error) {
	fctx, cancel := context.WithTimeout(ctx, timeout)
	cur, err := coll.Find(fctx, filter, opts...)
	cancel()
	if err != nil {
		return nil, err
	}
	return drain(ctx, cur, timeout)
}

func (d *discovery) config(name string) *mongo.Collection {
	return d.client.Database("config").Collection(name)
}

func (d *discovery) readDatabases(ctx context.Context) {
	docs, err := readAll(ctx, d.config("databases"), d.e.timeout(), bson.D{})
	if err != nil {
		d.problem(ctx, PartDatabases, err)
		return
	}
	d.c.Databases = parseDatabases(docs)
}

// parseDatabases reads config.databases documents: {_id, primary, partitioned
// (until 5.x), version: {uuid, lastMod, timestamp (5.0+)}}. Entries of MongoDB's
// own databases (3.x listed admin, with primary "config") are left out.
func parseDatabases(docs []bson.Raw) []Database {
	var out []Database
	for _, doc := range docs {
		name := str(doc, "_id")
		if !namespaces.UserDatabase(name) {
			continue
		}
		out = append(out, Database{Name: name, Primary: str(doc, "primary"), Partitioned: isTrue(doc.Lookup("partitioned"))})
	}
	return out
}

// readCollections reads config.collections and then config.chunks, in both of its
// forms (keyed by ns until 4.4, by collection uuid from 5.0).
func (d *discovery) readCollections(ctx context.Context) {
	docs, err := readAll(ctx, d.config("collections"), d.e.timeout(), bson.D{})
	if err != nil {
		d.problem(ctx, PartCollections, err)
		return
	}
	colls, err := parseCollections(docs)
	if err != nil {
		d.malformedMetadata(err)
	}
	chunks, err := readAll(ctx, d.config("chunks"), d.e.timeout(), bson.D{},
		options.Find().SetProjection(bson.D{{Key: "ns", Value: 1}, {Key: "uuid", Value: 1}, {Key: "min", Value: 1}, {Key: "max", Value: 1}, {Key: "shard", Value: 1}}))
	if err != nil {
		d.c.Collections = colls
		d.problem(ctx, PartChunks, err)
		return
	}
	if err := attachChunks(colls, chunks); err != nil {
		d.malformedMetadata(err)
	}
	d.c.Collections = colls
}

// parseCollections reads config.collections documents in every version's form:
// {_id: ns, key, unique, uuid (3.6+), lastmodEpoch, lastmod, defaultCollation,
// noBalance, dropped (until 4.4: true once the collection is gone), timestamp
// (5.0+), unsplittable (8.0: a tracked unsharded collection)}. Dropped
// collections and MongoDB's own namespaces (config.system.sessions, sharded on
// _id since 3.6, and the buckets of sharded time-series collections) are left
// out. A collection without a key pattern is malformed.
func parseCollections(docs []bson.Raw) ([]Collection, error) {
	var out []Collection
	var errs []error
	for _, doc := range docs {
		if isTrue(doc.Lookup("dropped")) {
			continue
		}
		ns := str(doc, "_id")
		if ns == "" {
			errs = append(errs, &MetadataError{Where: "config.collections", Reason: "a document has no string _id"})
			continue
		}
		if !namespaces.MigratedNS(ns) {
			continue
		}
		keyDoc, ok := doc.Lookup("key").DocumentOK()
		if !ok {
			errs = append(errs, &MetadataError{Where: "config.collections " + ns, Reason: "it has no shard key document (key)"})
			continue
		}
		var key bson.D
		if err := bson.Unmarshal(keyDoc, &key); err != nil || len(key) == 0 {
			errs = append(errs, &MetadataError{Where: "config.collections " + ns, Reason: "its shard key is empty or unreadable"})
			continue
		}
		c := Collection{Namespace: ns, Key: key, Unique: isTrue(doc.Lookup("unique")), NoBalance: isTrue(doc.Lookup("noBalance")),
			Unsplittable: isTrue(doc.Lookup("unsplittable"))}
		if sub, data, ok := doc.Lookup("uuid").BinaryOK(); ok {
			c.UUID = primitive.Binary{Subtype: sub, Data: append([]byte(nil), data...)}
		}
		if coll, ok := doc.Lookup("defaultCollation").DocumentOK(); ok && len(coll) > 5 { // not {}
			c.DefaultCollation = cloneRaw(coll)
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

// attachChunks groups config.chunks documents by their collection (ns or uuid) and
// checks each chunk's bounds. Chunks of collections that are not in colls (left from
// a dropped collection) are ignored.
func attachChunks(colls []Collection, chunks []bson.Raw) error {
	byNS := map[string]int{}
	byUUID := map[string]int{}
	for i, c := range colls {
		byNS[c.Namespace] = i
		if len(c.UUID.Data) > 0 {
			byUUID[string(c.UUID.Data)] = i
		}
	}
	var errs []error
	for _, doc := range chunks {
		idx, found := -1, false
		if ns, ok := doc.Lookup("ns").StringValueOK(); ok {
			idx, found = byNS[ns]
		} else if _, data, ok := doc.Lookup("uuid").BinaryOK(); ok {
			idx, found = byUUID[string(data)]
		} else {
			errs = append(errs, &MetadataError{Where: "config.chunks " + chunkID(doc), Reason: "the chunk has neither ns nor uuid"})
			continue
		}
		if !found {
			continue
		}
		c := &colls[idx]
		where := fmt.Sprintf("config.chunks %s of %s", chunkID(doc), c.Namespace)
		ch, err := parseChunk(doc, len(c.Key))
		if err != nil {
			errs = append(errs, &MetadataError{Where: where, Reason: err.Error()})
			continue
		}
		c.Chunks = append(c.Chunks, ch)
	}
	for _, c := range colls {
		switch {
		case len(c.Chunks) == 0:
			errs = append(errs, &MetadataError{Where: "config.chunks of " + c.Namespace, Reason: "the sharded collection has no chunks"})
		case c.Unsplittable && len(c.Chunks) != 1:
			errs = append(errs, &MetadataError{Where: "config.chunks of " + c.Namespace,
				Reason: fmt.Sprintf("the tracked unsharded collection (unsplittable) has %d chunks, not one", len(c.Chunks))})
		}
	}
	return errors.Join(errs...)
}

// parseChunk reads one chunk's bounds and shard; each bound must be a document with
// one value per shard key field.
func parseChunk(doc bson.Raw, keyFields int) (Chunk, error) {
	var ch Chunk
	for _, bound := range []struct {
		name string
		dst  *bson.Raw
	}{{"min", &ch.Min}, {"max", &ch.Max}} {
		v := doc.Lookup(bound.name)
		if v.Type == 0 {
			return Chunk{}, fmt.Errorf("the chunk has no %s bound", bound.name)
		}
		b, ok := v.DocumentOK()
		if !ok {
			return Chunk{}, fmt.Errorf("the chunk's %s bound is a %s, not a document", bound.name, v.Type)
		}
		elems, err := b.Elements()
		if err != nil || len(elems) != keyFields {
			return Chunk{}, fmt.Errorf("the chunk's %s bound %s does not have one value per shard key field (%d)", bound.name, b, keyFields)
		}
		*bound.dst = cloneRaw(b)
	}
	ch.Shard = str(doc, "shard")
	if ch.Shard == "" {
		return Chunk{}, errors.New("the chunk names no shard")
	}
	return ch, nil
}

func chunkID(doc bson.Raw) string {
	v := doc.Lookup("_id")
	if v.Type == bsontype.String {
		return fmt.Sprintf("%q", v.StringValue())
	}
	if v.Type == 0 {
		return "(no _id)"
	}
	return v.String()
}

// readZones reads config.tags, the zone key ranges.
func (d *discovery) readZones(ctx context.Context) {
	docs, err := readAll(ctx, d.config("tags"), d.e.timeout(), bson.D{})
	if err != nil {
		d.problem(ctx, PartZones, err)
		return
	}
	zones, err := parseZones(docs)
	if err != nil {
		d.malformedMetadata(err)
	}
	d.c.Zones = zones
}

// parseZones reads config.tags documents, {_id ({ns, min} until 4.4, else an
// ObjectId), ns, min, max, tag}, the same in every version. Ranges of MongoDB's
// own namespaces are left out.
func parseZones(docs []bson.Raw) ([]ZoneRange, error) {
	var out []ZoneRange
	var errs []error
	for _, doc := range docs {
		z := ZoneRange{Namespace: str(doc, "ns"), Zone: str(doc, "tag")}
		lo, okMin := doc.Lookup("min").DocumentOK()
		hi, okMax := doc.Lookup("max").DocumentOK()
		if z.Namespace == "" || z.Zone == "" || !okMin || !okMax {
			errs = append(errs, &MetadataError{Where: "config.tags " + chunkID(doc), Reason: "a zone range needs ns, tag, min and max"})
			continue
		}
		if !namespaces.MigratedNS(z.Namespace) {
			continue
		}
		z.Min, z.Max = cloneRaw(lo), cloneRaw(hi)
		out = append(out, z)
	}
	return out, errors.Join(errs...)
}

// readBalancer asks balancerStatus (3.4+), else reads config.settings.
func (d *discovery) readBalancer(ctx context.Context) {
	status, err := d.command(ctx, "admin", bson.D{{Key: "balancerStatus", Value: 1}})
	if err == nil {
		mode := str(status, "mode")
		d.c.Balancer = Balancer{Mode: mode, Enabled: mode != "off", InRound: isTrue(status.Lookup("inBalancerRound")), From: "balancerStatus"}
		return
	}
	docs, settingsErr := readAll(ctx, d.config("settings"), d.e.timeout(), bson.D{{Key: "_id", Value: "balancer"}})
	if settingsErr != nil {
		d.problem(ctx, PartBalancer, errors.Join(err, settingsErr))
		return
	}
	d.c.Balancer = balancerFromSettings(docs)
}

// balancerFromSettings reads config.settings' balancer document; without one the
// balancer runs (MongoDB's default).
func balancerFromSettings(docs []bson.Raw) Balancer {
	b := Balancer{Mode: "full", Enabled: true, From: "config.settings"}
	if len(docs) == 0 {
		return b
	}
	if mode := str(docs[0], "mode"); mode != "" {
		b.Mode = mode
	}
	if isTrue(docs[0].Lookup("stopped")) {
		b.Mode = "off"
	}
	b.Enabled = b.Mode != "off"
	return b
}

// ShardedCollections reads config.collections through a mongos and returns its
// sharded user collections, without their chunks: what the metadata watcher
// compares between the source and the destination during the sync.
func ShardedCollections(ctx context.Context, client *mongo.Client, timeout time.Duration) ([]Collection, error) {
	docs, err := readAll(ctx, client.Database("config").Collection("collections"), timeout, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read config.collections: %w", err)
	}
	colls, err := parseCollections(docs)
	if err != nil {
		return nil, err
	}
	var out []Collection
	for _, c := range colls {
		if c.Sharded() {
			out = append(out, c)
		}
	}
	return out, nil
}
