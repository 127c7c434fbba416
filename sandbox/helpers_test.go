package sandbox

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// startCluster starts a cluster in a test directory and closes it at cleanup.
func startCluster(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := Start(context.Background(), "source", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close the cluster: %v", err)
		}
	})
	return c
}

// connect opens a driver client on a URI, closed at cleanup.
func connect(t testing.TB, opts *options.ClientOptions) *mongo.Client {
	t.Helper()
	if opts.ServerSelectionTimeout == nil {
		opts.SetServerSelectionTimeout(5 * time.Second)
	}
	opts.SetConnectTimeout(5 * time.Second)
	cl, err := mongo.Connect(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Disconnect(context.Background()) })
	return cl
}

// routerClient connects to the cluster's router through its URI.
func routerClient(t testing.TB, c *Cluster) *mongo.Client {
	t.Helper()
	return connect(t, options.Client().ApplyURI(c.URI()))
}

// shardClient connects directly to one shard, as the engine does.
func shardClient(t testing.TB, c *Cluster, s ShardInfo) *mongo.Client {
	t.Helper()
	opts := options.Client().SetHosts([]string{s.Addr}).SetDirect(true)
	if a := c.opts.Auth; a != nil {
		opts.SetAuth(options.Credential{Username: a.User, Password: a.Password})
	}
	if ca := c.CAFile(); ca != "" {
		opts.SetTLSConfig(tlsTo(t, ca))
	}
	return connect(t, opts)
}

// configClientOptions reach the config server directly.
func configClientOptions(c *Cluster) *options.ClientOptions {
	opts := options.Client().SetHosts([]string{c.ConfigAddr()}).SetDirect(true)
	if a := c.opts.Auth; a != nil {
		opts.SetAuth(options.Credential{Username: a.User, Password: a.Password})
	}
	return opts
}

func tlsTo(t testing.TB, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool}
}

func run(t testing.TB, cl *mongo.Client, db string, cmd bson.D) bson.Raw {
	t.Helper()
	raw, err := cl.Database(db).RunCommand(context.Background(), cmd).Raw()
	if err != nil {
		t.Fatalf("%v: %v", cmd[0].Key, err)
	}
	return raw
}

func findAll(t testing.TB, coll *mongo.Collection, filter any, opts ...*options.FindOptions) []bson.Raw {
	t.Helper()
	ctx := context.Background()
	cur, err := coll.Find(ctx, filter, opts...)
	if err != nil {
		t.Fatalf("find on %s: %v", coll.Name(), err)
	}
	defer cur.Close(ctx)
	var out []bson.Raw
	for cur.Next(ctx) {
		out = append(out, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil {
		t.Fatalf("find on %s: %v", coll.Name(), err)
	}
	return out
}

// chunkMap reads a collection's routing table through the router's config database.
func chunkMap(t testing.TB, cl *mongo.Client, ns string) (*shardkey.Pattern, *shardkey.ChunkMap) {
	t.Helper()
	ctx := context.Background()
	var coll struct {
		Key  bson.Raw         `bson:"key"`
		UUID primitive.Binary `bson:"uuid"`
	}
	if err := cl.Database("config").Collection("collections").FindOne(ctx, bson.D{{Key: "_id", Value: ns}}).Decode(&coll); err != nil {
		t.Fatalf("config.collections %s: %v", ns, err)
	}
	p, err := shardkey.ParsePattern(coll.Key)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []shardkey.Chunk
	for _, d := range findAll(t, cl.Database("config").Collection("chunks"), bson.D{{Key: "uuid", Value: coll.UUID}}) {
		chunks = append(chunks, shardkey.Chunk{
			Min:   shardkey.Key(d.Lookup("min").Document()),
			Max:   shardkey.Key(d.Lookup("max").Document()),
			Shard: d.Lookup("shard").StringValue(),
		})
	}
	m, err := shardkey.NewChunkMap(chunks)
	if err != nil {
		t.Fatal(err)
	}
	return p, m
}

// oplog reads a shard's oplog entries for one namespace (ns "" for all).
func oplog(t testing.TB, sc *mongo.Client, ns string) []bson.Raw {
	t.Helper()
	var out []bson.Raw
	for _, e := range findAll(t, sc.Database("local").Collection("oplog.rs"), bson.D{}) {
		if ns == "" || e.Lookup("ns").StringValue() == ns {
			out = append(out, e)
		}
	}
	return out
}

func commandCode(err error) int32 {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var we mongo.WriteException
	if errors.As(err, &we) && len(we.WriteErrors) > 0 {
		return int32(we.WriteErrors[0].Code)
	}
	return 0
}

// str reads a string value, "" for anything else.
func str(v bson.RawValue) string {
	s, _ := v.StringValueOK()
	return s
}

// values lists an array's values, none for anything else.
func values(v bson.RawValue) []bson.RawValue {
	arr, ok := v.ArrayOK()
	if !ok {
		return nil
	}
	vals, _ := arr.Values()
	return vals
}
