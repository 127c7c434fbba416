package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
	"golang.org/x/sync/errgroup"
)

// The benchmark's data set on the source: one collection hashed on _id, so that
// its documents spread evenly over the shards.
const (
	benchDB   = "bench"
	docsColl  = "docs"
	docBytes  = 1024 // the size of every document of docsColl
	insertMax = 1000 // documents per insertMany
)

// objectID is a fixed ObjectId of the given kind (a byte of its own per use, so
// that the copy's, the load's and the backlog's documents never collide) and number.
func objectID(kind byte, n int) primitive.ObjectID {
	var id primitive.ObjectID
	binary.BigEndian.PutUint32(id[:4], 0x65a0c0ff)
	binary.BigEndian.PutUint64(id[4:], uint64(kind)<<56|uint64(n))
	return id
}

// Kinds of ObjectIds.
const (
	idSeed    byte = 1 // the documents of docsColl seeded on the source
	idLoad    byte = 2 // the documents the lag benchmark's load inserts
	idBacklog byte = 3 // the documents of the replay backlog
)

// padding is the text the documents are filled with; each document starts at
// its own offset so that they differ.
const padding = "Shardlift copies every document a source shard owns into the destination, then replays its oplog. "

// benchDoc is document n of docsColl: exactly docBytes of BSON.
func benchDoc(n int) bson.Raw {
	return docOfSize(objectID(idSeed, n), n, docBytes)
}

// docOfSize builds {_id, n, at, status, pad} of exactly size bytes.
func docOfSize(id primitive.ObjectID, n, size int) bson.Raw {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second)
	status := [...]string{"new", "paid", "shipped", "archived"}[n%4]
	head := func(pad string) []byte {
		return bsoncore.NewDocumentBuilder().
			AppendObjectID("_id", id).AppendInt64("n", int64(n)).
			AppendDateTime("at", at.UnixMilli()).AppendString("status", status).
			AppendString("pad", pad).Build()
	}
	fixed := len(head(""))
	want := max(size-fixed, 0)
	pad := make([]byte, want)
	for i := range pad {
		pad[i] = padding[(n+i)%len(padding)]
	}
	return bson.Raw(head(string(pad)))
}

// insertDocs inserts the documents gen(lo..hi-1) into coll with conns
// goroutines, in unordered batches of insertMax.
func insertDocs(ctx context.Context, coll *mongo.Collection, lo, hi, conns int, gen func(int) bson.Raw) error {
	g, gctx := errgroup.WithContext(ctx)
	starts := make(chan int)
	g.Go(func() error {
		defer close(starts)
		for s := lo; s < hi; s += insertMax {
			select {
			case starts <- s:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range conns {
		g.Go(func() error {
			batch := make([]any, 0, insertMax)
			for s := range starts {
				batch = batch[:0]
				for n := s; n < min(s+insertMax, hi); n++ {
					batch = append(batch, gen(n))
				}
				_, err := coll.InsertMany(gctx, batch, options.InsertMany().SetOrdered(false).SetBypassDocumentValidation(true))
				if err != nil {
					return fmt.Errorf("insert documents %d to %d into %s: %w", s, s+len(batch)-1, coll.Name(), err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// shardHashed creates db.coll sharded on {_id: "hashed"} through a mongos.
func shardHashed(ctx context.Context, client *mongo.Client, db, coll string) error {
	admin := client.Database("admin")
	if err := admin.RunCommand(ctx, bson.D{{Key: "enableSharding", Value: db}}).Err(); err != nil {
		return fmt.Errorf("enableSharding %s: %w", db, err)
	}
	cmd := bson.D{{Key: "shardCollection", Value: db + "." + coll}, {Key: "key", Value: bson.D{{Key: "_id", Value: "hashed"}}}}
	if err := admin.RunCommand(ctx, cmd).Err(); err != nil {
		return fmt.Errorf("shardCollection %s.%s: %w", db, coll, err)
	}
	return nil
}
