package router

import (
	"os"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/sysdb"
)

// What the config database records about the cluster's history: config.changelog
// (metadata changes), config.placementHistory (7.0+: which shards held a namespace
// when) and config.mongos (the routers that pinged).

// logChangeLocked appends a config.changelog entry, as the config server writes one
// for each metadata change: _id "<host>-<time>-<ObjectId>" (ShardingLogging::_log).
func (c *Catalog) logChangeLocked(what, ns string, details bson.D) {
	host, _ := os.Hostname()
	now := time.Now().UTC()
	c.mu.changelog = append(c.mu.changelog, ChangeDoc{
		ID:     host + "-" + now.Format("2006-01-02T15:04:05.000Z07:00") + "-" + primitive.NewObjectID().Hex(),
		Server: host, ClientAddr: "", Time: primitive.NewDateTimeFromTime(now),
		What: what, NS: ns, Details: sysdb.Raw(details),
	})
	if n := len(c.mu.changelog); n > changelogCap {
		c.mu.changelog = c.mu.changelog[n-changelogCap:]
	}
}

// initPlacementLocked writes the two markers a 7.0 config server leaves when it
// initializes config.placementHistory: nss "" at Timestamp(0, 1), and nss "" at the
// initialization time.
func (c *Catalog) initPlacementLocked() {
	c.mu.placement = append(c.mu.placement,
		PlacementDoc{ID: primitive.NewObjectID(), NSS: "", Timestamp: primitive.Timestamp{T: 0, I: 1}, Shards: []string{}},
		PlacementDoc{ID: primitive.NewObjectID(), NSS: "", Timestamp: c.nextTimestampLocked(), Shards: []string{}},
	)
}

// placeLocked records a namespace's set of shards from ts on (7.0+).
func (c *Catalog) placeLocked(nss string, uuid *primitive.Binary, ts primitive.Timestamp, shards []string) {
	if !c.rel.PlacementHistory() {
		return
	}
	c.mu.placement = append(c.mu.placement, PlacementDoc{ID: primitive.NewObjectID(), NSS: nss, UUID: uuid, Timestamp: ts, Shards: shards})
}

// mongosEntry is a router that registered itself.
type mongosEntry struct {
	started time.Time
}

// RegisterMongos records a router in config.mongos, as a mongos does at start-up and
// on every ping.
func (c *Catalog) RegisterMongos(addr string, started time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.mongos[addr] = mongosEntry{started: started}
}
