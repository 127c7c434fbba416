package topology

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
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

// Changelog reads the config.changelog entries written after since whose what is
// one of whats, oldest first. A real config.changelog is capped: old entries go.
func Changelog(ctx context.Context, client *mongo.Client, timeout time.Duration, since time.Time, whats []string) ([]ChangelogEntry, error) {
	filter := bson.D{{Key: "time", Value: bson.D{{Key: "$gt", Value: primitive.NewDateTimeFromTime(since)}}}, {Key: "what", Value: bson.D{{Key: "$in", Value: whats}}}}
	docs, err := readAll(ctx, client.Database("config").Collection("changelog"), timeout, filter, options.Find().SetSort(bson.D{{Key: "time", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("read config.changelog: %w", err)
	}
	out := make([]ChangelogEntry, 0, len(docs))
	for _, d := range docs {
		e := ChangelogEntry{What: str(d, "what"), NS: str(d, "ns")}
		if t, ok := d.Lookup("time").DateTimeOK(); ok {
			e.Time = time.UnixMilli(t).UTC()
		}
		if det, ok := d.Lookup("details").DocumentOK(); ok {
			e.Details = cloneRaw(det)
		}
		out = append(out, e)
	}
	return out, nil
}
