// Package seed fills a sandbox cluster, through its router, with a varied data set:
// several databases, sharded collections with ranged, hashed and unique shard keys,
// unsharded collections, secondary, compound, unique and TTL indexes, nested documents
// and arrays of documents, sizes from about 200 bytes to 4 KiB.
//
//	listShards ─► enableSharding ─► for each collection:
//	    shardCollection ─► createIndexes ─► split (ranged: at key quantiles; hashed:
//	    evenly over the hash space) ─► moveChunk until every shard owns a chunk
//	    ─► insertMany (unordered batches)
//
// Everything is drawn from the caller's random source, so a seed is reproducible. The
// data avoids what FerretDB rejects (DESIGN section 5): no Decimal128, NaN, infinities,
// MinKey/MaxKey, JavaScript, Symbol or undefined values, no nested arrays, no '.' or '$'
// in keys.
package seed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// batchSize is how many documents one insertMany carries.
const batchSize = 2000

// Summary is what Populate inserted, per collection in creation order.
type Summary struct {
	Collections []Count
}

// Count is what one collection received.
type Count struct {
	Namespace string
	Docs      int
	Bytes     int64
}

// Docs is the number of documents inserted.
func (s Summary) Docs() int {
	n := 0
	for _, c := range s.Collections {
		n += c.Docs
	}
	return n
}

// Bytes is the BSON size of the documents inserted.
func (s Summary) Bytes() int64 {
	var n int64
	for _, c := range s.Collections {
		n += c.Bytes
	}
	return n
}

// Populate creates the data set's collections and indexes through the router client
// talks to, spreads the sharded collections' chunks over every shard, and inserts docs
// documents in all, with ObjectId _ids. It expects none of the data set's namespaces to
// exist (see Present).
func Populate(ctx context.Context, client *mongo.Client, docs int, rnd *rand.Rand) (Summary, error) {
	return PopulateIDs(ctx, client, docs, rnd, ObjectIDs)
}

// PopulateIDs is Populate with generated _ids of the given type.
func PopulateIDs(ctx context.Context, client *mongo.Client, docs int, rnd *rand.Rand, ids IDs) (Summary, error) {
	return PopulateWith(ctx, client, Options{Docs: docs, IDs: ids}, rnd)
}

// Options shape a data set.
type Options struct {
	// Docs is the number of documents in all.
	Docs int
	// IDs is the type of the generated _ids.
	IDs IDs
	// Chunks, when more than the few chunks seeding makes anyway, gives every sharded
	// collection that many chunks (fewer where its key has fewer distinct seeded
	// values), owned in runs (see ownerRuns). It needs a sandbox router: they are set
	// in one _sandboxSetChunks command, before the documents are inserted.
	Chunks int
	// Collections, when positive, adds that many sharded collections shaped as
	// inventory.items (manyDB.items_0001, ...), which hold together as many
	// documents as inventory.items: a cluster with many collections.
	Collections int
}

// PopulateWith is Populate with options.
func PopulateWith(ctx context.Context, client *mongo.Client, o Options, rnd *rand.Rand) (Summary, error) {
	docs, ids := o.Docs, o.IDs
	if docs < 0 {
		return Summary{}, fmt.Errorf("seed: document count %d is negative", docs)
	}
	shards, err := listShards(ctx, client)
	if err != nil {
		return Summary{}, err
	}
	colls := CollectionsWith(ids)
	if many := ManyCollections(o.Collections, ids); len(many) > 0 {
		for i := range colls {
			colls[i].share *= len(many) // see ManyCollections
		}
		colls = append(colls, many...)
	}
	counts := share(colls, docs)
	admin := client.Database("admin")
	var enabled []string
	for _, c := range colls {
		if c.Key == nil || slices.Contains(enabled, c.DB) {
			continue
		}
		if err := admin.RunCommand(ctx, bson.D{{Key: "enableSharding", Value: c.DB}}).Err(); err != nil {
			return Summary{}, fmt.Errorf("seed: enableSharding %s: %w", c.DB, err)
		}
		enabled = append(enabled, c.DB)
	}
	var sum Summary
	for _, c := range colls {
		if err := prepare(ctx, client, c, shards, counts); err != nil {
			return sum, err
		}
		if c.Key != nil && o.Chunks > len(shards) {
			if err := setChunks(ctx, client, c, shards, counts, o.Chunks, rnd); err != nil {
				return sum, err
			}
		}
		n, bytes, err := insert(ctx, client, c, counts, rnd)
		sum.Collections = append(sum.Collections, Count{Namespace: c.Namespace(), Docs: n, Bytes: bytes})
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// Present reports whether any of the data set's collections exists, which is how a
// sandbox restarted on kept data knows not to seed it again.
func Present(ctx context.Context, client *mongo.Client) (bool, error) {
	for _, c := range Collections() {
		names, err := client.Database(c.DB).ListCollectionNames(ctx, bson.D{{Key: "name", Value: c.Name}})
		if err != nil {
			return false, fmt.Errorf("seed: list collections of %s: %w", c.DB, err)
		}
		if slices.Contains(names, c.Name) {
			return true, nil
		}
	}
	return false, nil
}

// share divides docs among the collections by their shares; the remainder of the
// rounding goes to the first ones.
func share(colls []Collection, docs int) map[string]int {
	counts := make(map[string]int, len(colls))
	left, total := docs, 0
	for _, c := range colls {
		total += c.share
	}
	for _, c := range colls {
		counts[c.Namespace()] = int(int64(docs) * int64(c.share) / int64(total))
		left -= counts[c.Namespace()]
	}
	for i := 0; left > 0; i = (i + 1) % len(colls) {
		counts[colls[i].Namespace()]++
		left--
	}
	return counts
}

func listShards(ctx context.Context, client *mongo.Client) ([]string, error) {
	var reply struct {
		Shards []struct {
			ID string `bson:"_id"`
		} `bson:"shards"`
	}
	if err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "listShards", Value: 1}}).Decode(&reply); err != nil {
		return nil, fmt.Errorf("seed: listShards (is this a router?): %w", err)
	}
	if len(reply.Shards) == 0 {
		return nil, errors.New("seed: listShards returned no shard")
	}
	shards := make([]string, len(reply.Shards))
	for i, s := range reply.Shards {
		shards[i] = s.ID
	}
	return shards, nil
}

// prepare shards the collection, creates its indexes, and splits and places its chunks.
func prepare(ctx context.Context, client *mongo.Client, c Collection, shards []string, counts map[string]int) error {
	ns := c.Namespace()
	admin := client.Database("admin")
	if c.Key != nil {
		cmd := bson.D{{Key: "shardCollection", Value: ns}, {Key: "key", Value: c.Key}}
		if c.Unique {
			cmd = append(cmd, bson.E{Key: "unique", Value: true})
		}
		if err := admin.RunCommand(ctx, cmd).Err(); err != nil {
			return fmt.Errorf("seed: shardCollection %s: %w", ns, err)
		}
	}
	models := make([]mongo.IndexModel, len(c.Indexes))
	for i, ix := range c.Indexes {
		opts := options.Index().SetName(ix.Name)
		if ix.Unique {
			opts.SetUnique(true)
		}
		if ix.TTL >= 0 {
			opts.SetExpireAfterSeconds(ix.TTL)
		}
		models[i] = mongo.IndexModel{Keys: ix.Keys, Options: opts}
	}
	if len(models) > 0 {
		if _, err := client.Database(c.DB).Collection(c.Name).Indexes().CreateMany(ctx, models); err != nil {
			return fmt.Errorf("seed: createIndexes on %s: %w", ns, err)
		}
	}
	if c.Key == nil {
		return nil
	}
	chunks, err := chunksOf(ctx, client, ns)
	if err != nil {
		return err
	}
	if len(chunks) < len(shards) {
		for _, middle := range splitPoints(c, len(shards), counts) {
			if err := admin.RunCommand(ctx, bson.D{{Key: "split", Value: ns}, {Key: "middle", Value: middle}}).Err(); err != nil {
				return fmt.Errorf("seed: split %s at %v: %w", ns, middle, err)
			}
		}
		if chunks, err = chunksOf(ctx, client, ns); err != nil {
			return err
		}
	}
	return place(ctx, client, ns, chunks, shards)
}

// splitPoints are where a collection's single initial chunk is cut so that each shard
// can own about an equal part of its documents.
func splitPoints(c Collection, shards int, counts map[string]int) []bson.D {
	var points []bson.D
	for k := 1; k < shards; k++ {
		var p bson.D
		if c.Hashed() {
			// Hashed chunk bounds are 64-bit hash values: cut the int64 range evenly.
			step := math.MaxUint64 / uint64(shards)
			p = bson.D{{Key: c.Key[0].Key, Value: int64(uint64(1<<63) + uint64(k)*step)}}
		} else if c.splitAt != nil {
			p = c.splitAt(k, shards, counts)
		}
		// The points ascend with k, so a repeat (more cuts than distinct seeded keys)
		// can only be the previous point.
		if p != nil && (len(points) == 0 || fmt.Sprint(points[len(points)-1]) != fmt.Sprint(p)) {
			points = append(points, p)
		}
	}
	return points
}

type chunk struct {
	Min   bson.Raw `bson:"min"`
	Max   bson.Raw `bson:"max"`
	Shard string   `bson:"shard"`
}

// chunksOf reads a collection's chunks from config.chunks, which since MongoDB 5.0 names
// the collection by UUID rather than by namespace (3.6 to 4.4 collections have a UUID
// too, but their chunks name the namespace).
func chunksOf(ctx context.Context, client *mongo.Client, ns string) ([]chunk, error) {
	config := client.Database("config")
	var coll struct {
		UUID bson.RawValue `bson:"uuid"`
	}
	if err := config.Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: ns}}).Decode(&coll); err != nil {
		return nil, fmt.Errorf("seed: read config.collections for %s: %w", ns, err)
	}
	filter := bson.D{{Key: "ns", Value: ns}}
	if !coll.UUID.IsZero() {
		filter = bson.D{{Key: "$or", Value: bson.A{filter, bson.D{{Key: "uuid", Value: coll.UUID}}}}}
	}
	cur, err := config.Collection("chunks").Find(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("seed: read config.chunks for %s: %w", ns, err)
	}
	var chunks []chunk
	if err := cur.All(ctx, &chunks); err != nil {
		return nil, fmt.Errorf("seed: read config.chunks for %s: %w", ns, err)
	}
	if len(chunks) == 0 {
		return nil, fmt.Errorf("seed: config.chunks has no chunk for %s", ns)
	}
	return chunks, nil
}

// place moves chunks, round robin, when some shard owns none of the collection's chunks.
func place(ctx context.Context, client *mongo.Client, ns string, chunks []chunk, shards []string) error {
	owners := map[string]bool{}
	for _, ch := range chunks {
		owners[ch.Shard] = true
	}
	if !slices.ContainsFunc(shards, func(s string) bool { return !owners[s] }) {
		return nil
	}
	admin := client.Database("admin")
	for i, ch := range chunks {
		to := shards[i%len(shards)]
		if ch.Shard == to {
			continue
		}
		cmd := bson.D{{Key: "moveChunk", Value: ns}, {Key: "bounds", Value: bson.A{ch.Min, ch.Max}}, {Key: "to", Value: to}}
		if err := admin.RunCommand(ctx, cmd).Err(); err != nil {
			return fmt.Errorf("seed: moveChunk %s %v to %s: %w", ns, ch.Min, to, err)
		}
	}
	return nil
}

// runsPerShard is how many runs of chunks each shard owns in a collection with many
// chunks.
const runsPerShard = 4

// setChunks gives a sharded (still empty) collection n chunks, cut as splitPoints cuts
// it for n parts, owned by the shards in runs (ownerRuns).
func setChunks(ctx context.Context, client *mongo.Client, c Collection, shards []string, counts map[string]int, n int, rnd *rand.Rand) error {
	points := splitPoints(c, n, counts)
	splits := make(bson.A, len(points))
	for i, p := range points {
		splits[i] = p
	}
	owners := ownerRuns(len(points)+1, shards, rnd)
	cmd := bson.D{{Key: "_sandboxSetChunks", Value: c.Namespace()}, {Key: "splits", Value: splits}, {Key: "shards", Value: owners}}
	if err := client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
		return fmt.Errorf("seed: give %s %d chunks (this needs a sandbox router): %w", c.Namespace(), len(points)+1, err)
	}
	return nil
}

// ownerRuns assigns n chunks in order to the shards in runs of random length (about
// runsPerShard runs per shard), each run on another shard than the one before, every
// shard in turn. That is how a real balanced cluster's chunks lie: a chunk is born by
// a split on the shard owning its range, the balancer moves a donor's chunks from one
// end of its ranges, and since 7.0 the automerger joins neighbours on one shard, so
// ownership changes a few times per shard, not at every chunk. A collection whose
// 100,000 chunks alternated shards chunk by chunk would be no cluster's.
func ownerRuns(n int, shards []string, rnd *rand.Rand) bson.A {
	mean := max(1, n/(runsPerShard*len(shards)))
	owners := make(bson.A, 0, n)
	for run := 0; len(owners) < n; run++ {
		length := 1 + rnd.IntN(2*mean-1)
		for i := 0; i < length && len(owners) < n; i++ {
			owners = append(owners, shards[run%len(shards)])
		}
	}
	return owners
}

// insert adds the collection's share of documents in unordered batches.
func insert(ctx context.Context, client *mongo.Client, c Collection, counts map[string]int, rnd *rand.Rand) (int, int64, error) {
	coll := client.Database(c.DB).Collection(c.Name)
	total := counts[c.Namespace()]
	var inserted int
	var bytes int64
	for start := 0; start < total; start += batchSize {
		batch := make([]any, 0, min(batchSize, total-start))
		var size int64
		for n := start; n < start+cap(batch); n++ {
			raw, err := bson.Marshal(c.Document(rnd, c.seedKeyOf(rnd, n, counts)))
			if err != nil {
				return inserted, bytes, fmt.Errorf("seed: encode a document for %s: %w", c.Namespace(), err)
			}
			batch = append(batch, bson.Raw(raw))
			size += int64(len(raw))
		}
		if _, err := coll.InsertMany(ctx, batch, options.InsertMany().SetOrdered(false)); err != nil {
			return inserted, bytes, fmt.Errorf("seed: insert into %s (%d of %d done): %w", c.Namespace(), inserted, total, err)
		}
		inserted += len(batch)
		bytes += size
	}
	return inserted, bytes, nil
}

// Source is the random source of the demo data set: fixed, so every sandbox holds
// the same documents.
var Source = [2]uint64{0x5eed, 0x5ba1d}
