package router

import (
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/release"
)

// The config database's documents as each release writes them. The catalog keeps one
// model; these render it. Field order follows each release's serializer
// (src/mongo/s/catalog/type_*.cpp and type_*.idl).

func renderShard(rel release.Release, s ShardDoc) bson.D {
	d := bson.D{{Key: "_id", Value: s.ID}, {Key: "host", Value: s.Host}}
	if len(s.Tags) > 0 {
		d = append(d, bson.E{Key: "tags", Value: s.Tags})
	}
	d = append(d, bson.E{Key: "state", Value: s.State})
	if rel.TopologyTime() {
		d = append(d, bson.E{Key: "topologyTime", Value: s.TopologyTime})
	}
	return d
}

func renderDatabase(rel release.Release, db DatabaseDoc) bson.D {
	d := bson.D{{Key: "_id", Value: db.ID}, {Key: "primary", Value: db.Primary},
		{Key: "partitioned", Value: db.Partitioned && rel.PartitionedByEnableSharding()}}
	if rel.DatabaseVersion() {
		d = append(d, bson.E{Key: "version", Value: renderDatabaseVersion(rel, db.Version)})
	}
	return d
}

func renderDatabaseVersion(rel release.Release, v DatabaseVersion) bson.D {
	d := bson.D{{Key: "uuid", Value: v.UUID}}
	if rel.DatabaseTimestamp() {
		d = append(d, bson.E{Key: "timestamp", Value: v.Timestamp})
	}
	return append(d, bson.E{Key: "lastMod", Value: v.LastMod})
}

func renderCollection(rel release.Release, coll *CollectionDoc) bson.D {
	d := bson.D{{Key: "_id", Value: coll.ID}, {Key: "lastmodEpoch", Value: coll.LastmodEpoch}, {Key: "lastmod", Value: coll.Lastmod}}
	if rel.CollectionDropped() {
		d = append(d, bson.E{Key: "dropped", Value: false}, bson.E{Key: "key", Value: coll.Key},
			bson.E{Key: "unique", Value: coll.Unique}, bson.E{Key: "uuid", Value: coll.UUID})
		if coll.NoBalance {
			d = append(d, bson.E{Key: "noBalance", Value: true})
		}
		return d
	}
	d = append(d, bson.E{Key: "timestamp", Value: coll.Timestamp}, bson.E{Key: "uuid", Value: coll.UUID},
		bson.E{Key: "key", Value: coll.Key}, bson.E{Key: "unique", Value: coll.Unique})
	if coll.ID == SessionsNS {
		maxSize, noAutoSplit := rel.SessionsChunkSettings()
		if maxSize {
			d = append(d, bson.E{Key: "maxChunkSizeBytes", Value: int64(200000)})
		}
		if noAutoSplit {
			d = append(d, bson.E{Key: "noAutoSplit", Value: true})
		}
	}
	return append(d, bson.E{Key: "noBalance", Value: coll.NoBalance})
}

// initialLastmod is what config.collections' lastmod holds until 4.4: the collection
// version after sharding (1|chunks-1), stored as if it were a date.
func initialLastmod(chunks int) primitive.DateTime {
	return primitive.DateTime(int64(1)<<32 | int64(chunks-1))
}

func renderChunk(rel release.Release, coll *CollectionDoc, ch ChunkDoc) bson.D {
	var id any = ch.ID
	if !rel.ChunkObjectIDs() {
		id = chunkName(coll.ID, ch.Min)
	}
	d := bson.D{{Key: "_id", Value: id}}
	if rel.ChunksByUUID() {
		d = append(d, bson.E{Key: "uuid", Value: coll.UUID})
	} else {
		d = append(d, bson.E{Key: "ns", Value: coll.ID})
	}
	d = append(d, bson.E{Key: "min", Value: ch.Min}, bson.E{Key: "max", Value: ch.Max},
		bson.E{Key: "shard", Value: ch.Shard}, bson.E{Key: "lastmod", Value: ch.Lastmod})
	if !rel.ChunksByUUID() {
		d = append(d, bson.E{Key: "lastmodEpoch", Value: coll.LastmodEpoch})
	}
	if rel.OnCurrentShardSince() {
		d = append(d, bson.E{Key: "onCurrentShardSince", Value: ch.OnCurrentShardSince})
	}
	if rel.ChunkHistory() {
		d = append(d, bson.E{Key: "history", Value: renderHistory(ch.History)})
	}
	return d
}

func renderHistory(h []ChunkHistory) bson.A {
	out := bson.A{}
	for _, e := range h {
		out = append(out, bson.D{{Key: "validAfter", Value: e.ValidAfter}, {Key: "shard", Value: e.Shard}})
	}
	return out
}

// chunkName is a chunk's _id until 4.2: "<ns>-" then "<field>_<value>" for each bound
// field (ChunkType::genID, values as BSONElement::toString prints them).
func chunkName(ns string, min bson.Raw) string {
	var b strings.Builder
	b.WriteString(ns + "-")
	elems, _ := min.Elements()
	for _, e := range elems {
		b.WriteString(e.Key() + "_" + valueString(e.Value()))
	}
	return b.String()
}

func valueString(v bson.RawValue) string {
	switch v.Type {
	case bsontype.MinKey:
		return "MinKey"
	case bsontype.MaxKey:
		return "MaxKey"
	case bsontype.String:
		return strconv.Quote(v.StringValue())
	case bsontype.Int32:
		return strconv.Itoa(int(v.Int32()))
	case bsontype.Int64:
		return strconv.FormatInt(v.Int64(), 10)
	case bsontype.Double:
		s := strconv.FormatFloat(v.Double(), 'g', -1, 64)
		if !strings.ContainsAny(s, ".eEn") {
			s += ".0"
		}
		return s
	case bsontype.ObjectID:
		return "ObjectId('" + v.ObjectID().Hex() + "')"
	case bsontype.Boolean:
		return strconv.FormatBool(v.Boolean())
	case bsontype.Null:
		return "null"
	}
	return v.String()
}

func renderVersion(rel release.Release, v VersionDoc) bson.D {
	if rel.ConfigVersionLegacyFields() {
		return bson.D{{Key: "_id", Value: v.ID}, {Key: "minCompatibleVersion", Value: int32(5)},
			{Key: "currentVersion", Value: int32(6)}, {Key: "clusterId", Value: v.ClusterID}}
	}
	return bson.D{{Key: "_id", Value: v.ID}, {Key: "clusterId", Value: v.ClusterID}}
}

func renderTag(rel release.Release, t TagDoc) bson.D {
	var id any = t.ID
	if !rel.TagObjectIDs() {
		id = bson.D{{Key: "ns", Value: t.NS}, {Key: "min", Value: t.Min}}
	}
	return bson.D{{Key: "_id", Value: id}, {Key: "ns", Value: t.NS}, {Key: "min", Value: t.Min},
		{Key: "max", Value: t.Max}, {Key: "tag", Value: t.Tag}}
}

func renderPlacement(p PlacementDoc) bson.D {
	d := bson.D{{Key: "_id", Value: p.ID}, {Key: "nss", Value: p.NSS}}
	if p.UUID != nil {
		d = append(d, bson.E{Key: "uuid", Value: *p.UUID})
	}
	return append(d, bson.E{Key: "timestamp", Value: p.Timestamp}, bson.E{Key: "shards", Value: p.Shards})
}

// chunkVersionString is a collection version as the changelog and errors print it.
func chunkVersionString(v primitive.Timestamp, epoch primitive.ObjectID) string {
	return fmt.Sprintf("%d|%d||%s", v.T, v.I, epoch.Hex())
}
