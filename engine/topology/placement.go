package topology

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Placement reads, through a mongos, where the cluster's data is now: every
// database's primary shard and every tracked collection with its chunks (the
// move watcher's look at config.databases, config.collections and config.chunks,
// in both of config.chunks' forms).
func Placement(ctx context.Context, client *mongo.Client, timeout time.Duration) ([]Database, []Collection, error) {
	config := client.Database("config")
	docs, err := readAll(ctx, config.Collection("databases"), timeout, bson.D{})
	if err != nil {
		return nil, nil, fmt.Errorf("read config.databases: %w", err)
	}
	dbs := parseDatabases(docs)
	if docs, err = readAll(ctx, config.Collection("collections"), timeout, bson.D{}); err != nil {
		return nil, nil, fmt.Errorf("read config.collections: %w", err)
	}
	colls, err := parseCollections(docs)
	if err != nil {
		return nil, nil, err
	}
	chunks, err := readAll(ctx, config.Collection("chunks"), timeout, bson.D{},
		options.Find().SetProjection(bson.D{{Key: "ns", Value: 1}, {Key: "uuid", Value: 1}, {Key: "min", Value: 1}, {Key: "max", Value: 1}, {Key: "shard", Value: 1}}))
	if err != nil {
		return nil, nil, fmt.Errorf("read config.chunks: %w", err)
	}
	if err := attachChunks(colls, chunks); err != nil {
		// Read in the middle of a split or a move: the next look sees it whole.
		return nil, nil, err
	}
	return dbs, colls, nil
}

// ChangelogEntry is one config.changelog document: {_id, server, clientAddr, time,
// what, ns, details}, written by the config server for each metadata change.
type ChangelogEntry struct {
	Time    time.Time
	What    string
	NS      string
	Details bson.Raw
}

// changelogNewest bounds how many of config.changelog's newest entries Changelog
// reads; changelogBatch is how many it asks for at once.
const (
	changelogNewest = 500
	changelogBatch  = 16
)

// Changelog reads, of config.changelog's newest entries, those written after since
// whose what is one of whats, oldest first. config.changelog is capped and has no
// index on time: it is read backwards in natural order, in small batches, and the
// read stops at the first entry not after since (or after the newest
// changelogNewest: entries past those are left out, and a caller that must not
// miss a change reads the chunk map too). A look at a changelog that did not grow
// costs one batch.
func Changelog(ctx context.Context, client *mongo.Client, timeout time.Duration, since time.Time, whats []string) ([]ChangelogEntry, error) {
	fctx, cancel := context.WithTimeout(ctx, timeout)
	cur, err := client.Database("config").Collection("changelog").Find(fctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "$natural", Value: -1}}).SetLimit(changelogNewest).SetBatchSize(changelogBatch))
	cancel()
	if err != nil {
		return nil, fmt.Errorf("read config.changelog: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		_ = cur.Close(cctx)
	}()
	var out []ChangelogEntry
	for {
		nctx, cancel := context.WithTimeout(ctx, timeout)
		ok := cur.Next(nctx)
		cancel()
		if !ok {
			break
		}
		d := cur.Current
		e := ChangelogEntry{What: str(d, "what"), NS: str(d, "ns")}
		if t, ok := d.Lookup("time").DateTimeOK(); ok {
			e.Time = time.UnixMilli(t).UTC()
		}
		if !e.Time.After(since) {
			break
		}
		if !slices.Contains(whats, e.What) {
			continue
		}
		if det, ok := d.Lookup("details").DocumentOK(); ok {
			e.Details = cloneRaw(det)
		}
		out = append(out, e)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("read config.changelog: %w", err)
	}
	slices.SortStableFunc(out, func(a, b ChangelogEntry) int { return a.Time.Compare(b.Time) })
	return out, nil
}
