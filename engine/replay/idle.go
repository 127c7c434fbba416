package replay

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readpref"

	"github.com/shardlift/shardlift/engine/mongoerr"
)

// Idle shards. A DDL one shard read at ts waits until every other replaying shard
// has read past ts (DDLOnce.behind): until then that shard may still hold an entry
// before ts on the DDL's namespaces. A shard without writes reads nothing past its
// last entry, so its position stays there until its primary's next entry: the
// periodic no-op a primary writes after 10 quiet seconds. A busy shard's DDL beside
// an idle one would wait up to those 10 s. So DDLOnce asks such a shard's primary
// for an entry past ts, the way a primary serves a read whose afterClusterTime it has
// not reached: appendOplogNote with maxClusterTime ts, which writes a no-op only when
// the oplog ends before ts, with a cluster time at or past ts gossiped first (that of
// the shard that read the DDL), so that the no-op comes after ts even when the idle
// shard's own clock is behind. Once the tail reads it, the shard's position passes ts.

// Advancer asks shard's primary for an oplog entry after ts where its oplog ends
// before ts; from is a shard that read an entry at ts ("" for none), whose cluster
// time, gossiped, moves the idle shard's clock past ts.
type Advancer func(ctx context.Context, shard, from string, ts primitive.Timestamp) error

const (
	// advanceAfter is how long a DDL waits for a shard's position before the shard
	// is asked for an entry past it: a busy shard passes by itself.
	advanceAfter = 200 * time.Millisecond
	// advanceEvery is the least time between two asks of one shard.
	advanceEvery = time.Second
)

// idleShards is DDLOnce's record of its asks.
type idleShards struct {
	mu       sync.Mutex
	advance  Advancer
	inFlight map[string]bool
	last     map[string]time.Time
	failing  map[string]bool // the last ask failed (logged once until one works)
}

// AdvanceIdleShards makes o ask the shards its DDL wait for, when their oplog ends
// before the DDL, for an entry past it (see Advancer). Call it before Run.
func (o *DDLOnce) AdvanceIdleShards(a Advancer) {
	o.idle.mu.Lock()
	defer o.idle.mu.Unlock()
	o.idle.advance = a
	o.idle.inFlight, o.idle.last, o.idle.failing = map[string]bool{}, map[string]time.Time{}, map[string]bool{}
}

// advanceWanted is, for each shard a DDL has waited on for advanceAfter, the
// newest ts it must pass and a shard that read that ts.
func (o *DDLOnce) advanceWanted(now time.Time) map[string]advanceAsk {
	o.mu.Lock()
	defer o.mu.Unlock()
	want := map[string]advanceAsk{}
	ask := func(shard, from string, ts primitive.Timestamp) {
		if w, ok := want[shard]; !ok || w.ts.Before(ts) {
			want[shard] = advanceAsk{ts: ts, from: from}
		}
	}
	for _, g := range o.mu.groups {
		if g.state != groupWaiting || now.Sub(g.handed) < advanceAfter {
			continue
		}
		for s, pos := range o.mu.positions {
			if !slices.Contains(g.shards, s) && pos.Before(g.first) {
				ask(s, g.shards[0], g.first)
			}
		}
	}
	for _, sd := range o.mu.scheduled {
		for s, pos := range o.mu.positions {
			if !sd.ts.Before(pos) {
				ask(s, "", sd.ts)
			}
		}
	}
	return want
}

type advanceAsk struct {
	ts   primitive.Timestamp
	from string
}

// askIdleShards asks each shard a DDL waits for, at most once per advanceEvery and
// one ask at a time, for an entry past the DDL; the asks run on running.
func (o *DDLOnce) askIdleShards(ctx context.Context, running *sync.WaitGroup) {
	o.idle.mu.Lock()
	advance := o.idle.advance
	o.idle.mu.Unlock()
	if advance == nil {
		return
	}
	now := time.Now()
	for shard, w := range o.advanceWanted(now) {
		o.idle.mu.Lock()
		due := !o.idle.inFlight[shard] && now.Sub(o.idle.last[shard]) >= advanceEvery
		if due {
			o.idle.inFlight[shard], o.idle.last[shard] = true, now
		}
		o.idle.mu.Unlock()
		if !due {
			continue
		}
		running.Go(func() {
			err := advance(ctx, shard, w.from, w.ts)
			o.idle.mu.Lock()
			defer o.idle.mu.Unlock()
			o.idle.inFlight[shard] = false
			switch {
			case err == nil:
				o.idle.failing[shard] = false
			case ctx.Err() != nil:
			case !o.idle.failing[shard]:
				o.idle.failing[shard] = true
				o.log.Warn("could not ask an idle shard for an oplog entry past a DDL; the DDL waits for the shard's next entry (its periodic no-op comes within 10 s)",
					"shard", shard, "ts", tsString(w.ts), "err", err)
			}
		})
	}
}

// ClusterTimeOf is the $clusterTime a server gossips now, as it signed it (a ping's
// reply); nil from a server that gossips none.
func ClusterTimeOf(ctx context.Context, c *mongo.Client) (bson.Raw, error) {
	sess, err := c.StartSession()
	if err != nil {
		return nil, err
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	if err := primaryAdmin(c).RunCommand(mongo.NewSessionContext(ctx, sess), bson.D{{Key: "ping", Value: 1}}).Err(); err != nil {
		return nil, fmt.Errorf("read the cluster time: %w", err)
	}
	return sess.ClusterTime(), nil
}

// AdvancePast asks the primary c reaches for an oplog entry after ts if its oplog
// ends before ts (appendOplogNote with maxClusterTime; see Advancer), gossiping
// clusterTime (nil: none) first. An oplog already past ts is not an error.
func AdvancePast(ctx context.Context, c *mongo.Client, ts primitive.Timestamp, clusterTime bson.Raw) error {
	sess, err := c.StartSession()
	if err != nil {
		return err
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	if clusterTime != nil {
		if err := sess.AdvanceClusterTime(clusterTime); err != nil {
			return err
		}
	}
	err = primaryAdmin(c).RunCommand(mongo.NewSessionContext(ctx, sess), bson.D{
		{Key: "appendOplogNote", Value: 1},
		{Key: "maxClusterTime", Value: ts},
		{Key: "data", Value: bson.D{{Key: "msg", Value: "shardlift: position past " + tsString(ts)}}},
	}).Err()
	if mongoerr.HasCode(err, codeStaleClusterTime) {
		return nil
	}
	return err
}

// primaryAdmin is the admin database on the primary, whatever read preference the
// source's connection string gives the client: only a primary writes the no-op, and
// only the primary of the shard that read a DDL is sure to be past it.
func primaryAdmin(c *mongo.Client) *mongo.Database {
	return c.Database("admin", options.Database().SetReadPreference(readpref.Primary()))
}

// codeStaleClusterTime: appendOplogNote's maxClusterTime is not after the last entry.
const codeStaleClusterTime = 209
