package router

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/sysdb"
)

// config.system.sessions: every sharded cluster since 3.6 has it, sharded on {_id: 1}
// (SessionsCollectionConfigServer::setupSessionsCollection), split by the balancer into
// Release.SessionsChunks chunks spread evenly over the shards, with the session records
// of the cluster's clients on the shards that own their ranges. Its routing is derived
// from the cluster's identity (clusterId) and shards, so it is the same after every
// restart without taking room in the catalog file.

// SessionsNS is the sessions collection.
const SessionsNS = "config.system.sessions"

// sessionRecord is one logical session's record: {_id: {id, uid}, lastUse}.
type sessionRecord struct {
	id      primitive.Binary
	lastUse time.Time
}

func (s sessionRecord) key(uid primitive.Binary) bson.D {
	return bson.D{{Key: "id", Value: s.id}, {Key: "uid", Value: uid}}
}

// derived is a deterministic stream of bytes from the cluster's identity, so that what
// is derived from it (uuids, session ids) survives restarts unchanged.
func (c *Catalog) derived(label string) *rand.ChaCha8 {
	seed := sha256.Sum256(append(c.mu.version.ClusterID[:], label...))
	return rand.NewChaCha8(seed)
}

func randomBytes(r *rand.ChaCha8, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

// addSessionsLocked installs the sessions collection's routing and records.
func (c *Catalog) addSessionsLocked() error {
	created := c.mu.version.ClusterID.Timestamp()
	ts := primitive.Timestamp{T: uint32(created.Unix()), I: 2}
	r := c.derived("sessions")
	epoch := primitive.ObjectID{}
	binary.BigEndian.PutUint32(epoch[:4], uint32(created.Unix()))
	copy(epoch[4:], randomBytes(r, 8))
	lastmod := primitive.NewDateTimeFromTime(created)
	if c.rel.CollectionDropped() {
		lastmod = initialLastmod(1)
	}
	coll := CollectionDoc{
		ID: SessionsNS, LastmodEpoch: epoch, Lastmod: lastmod,
		Timestamp: ts, UUID: sysdb.UUIDFrom(randomBytes(r, 16)),
		Key: sysdb.Raw(bson.D{{Key: "_id", Value: int32(1)}}),
	}
	chunks := c.sessionsChunksLocked(c.rel.SessionsChunks(), ts)
	for i := range chunks {
		binary.BigEndian.PutUint32(chunks[i].ID[:4], uint32(created.Unix()))
		copy(chunks[i].ID[4:], randomBytes(r, 8))
		chunks[i].UUID = coll.UUID
	}
	rt, err := c.newRoutingLocked(coll, chunks)
	if err != nil {
		return fmt.Errorf("the sessions collection: %w", err)
	}
	c.mu.routing[SessionsNS] = rt
	c.mu.sessions = nil
	for i := range 4 + 2*len(c.mu.shards) {
		c.mu.sessions = append(c.mu.sessions, sessionRecord{
			id: sysdb.UUIDFrom(randomBytes(r, 16)), lastUse: created.Add(time.Duration(i) * time.Second),
		})
	}
	return nil
}

// sessionsChunksLocked splits {_id: 1}'s key space into n ranges of _id.id (n a power
// of two: the balancer's split points are the UUIDs whose first bits count from 1 to
// n-1, the rest zero) and gives each shard an even, contiguous run of them, as the
// balancer's moves leave it. One chunk lives on the first shard.
func (c *Catalog) sessionsChunksLocked(n int, ts primitive.Timestamp) []ChunkDoc {
	minKey := sysdb.Raw(bson.D{{Key: "_id", Value: primitive.MinKey{}}})
	maxKey := sysdb.Raw(bson.D{{Key: "_id", Value: primitive.MaxKey{}}})
	bounds := []bson.Raw{minKey}
	bits := 0
	for 1<<bits < n {
		bits++
	}
	for i := 1; i < n; i++ {
		u := make([]byte, 16)
		binary.BigEndian.PutUint32(u[:4], uint32(i)<<(32-bits))
		bounds = append(bounds, sysdb.Raw(bson.D{{Key: "_id", Value: bson.D{{Key: "id", Value: primitive.Binary{Subtype: 4, Data: u}}}}}))
	}
	bounds = append(bounds, maxKey)
	shards := len(c.mu.shards)
	out := make([]ChunkDoc, n)
	moved := uint32(0)
	for i := range n {
		owner := c.mu.shards[i*shards/n].ID
		lastmod := primitive.Timestamp{T: 1, I: uint32(i)}
		if owner != c.mu.shards[0].ID {
			moved++
			lastmod = primitive.Timestamp{T: 1 + moved, I: 0}
		}
		out[i] = ChunkDoc{
			Min: bounds[i], Max: bounds[i+1], Shard: owner, Lastmod: lastmod,
			OnCurrentShardSince: ts, History: []ChunkHistory{{ValidAfter: ts, Shard: owner}},
		}
	}
	return out
}

// sessionDocsLocked are the session records the shard holds: those whose _id falls in
// its chunks of the sessions collection.
func (c *Catalog) sessionDocsLocked(shard string) []bson.Raw {
	rt := c.mu.routing[SessionsNS]
	user := ""
	if c.auth != nil {
		user = c.auth.User
	}
	uid := sysdb.SessionUID(user)
	var out []bson.Raw
	for _, s := range c.mu.sessions {
		doc := sysdb.Raw(bson.D{{Key: "_id", Value: s.key(uid)}, {Key: "lastUse", Value: primitive.NewDateTimeFromTime(s.lastUse)}})
		key, err := rt.Pattern.Extract(doc)
		if err != nil {
			continue
		}
		if i := rt.ChunkFor(key); i >= 0 && rt.Chunks[i].Shard == shard {
			out = append(out, doc)
		}
	}
	return out
}
