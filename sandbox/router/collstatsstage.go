package router

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// $collStats, the first stage of an aggregation on a collection, is how MongoDB 6.2
// and later, and mongosh's db.coll.stats() on any version, read a collection's
// statistics (the collStats command is deprecated). Through a mongos it gives one
// document per shard holding the collection (db/pipeline/document_source_coll_stats.cpp
// and jstests/sharding/collstats_returns_shard_and_hostname.js): ns, shard, host (the
// shard member that answered), localTime, then what was asked: storageStats, the
// shard's collStats figures, and count, its document count. The router asks each
// shard for its collStats, as it does for the command. It keeps no latency or query
// execution statistics, and says so rather than answer zeros.

// collStatsOptions are the fields a $collStats specification may hold.
var collStatsOptions = map[string]bool{"storageStats": true, "count": true, "latencyStats": true, "queryExecStats": true}

// collStatsStage splits a leading $collStats off a pipeline; ok is false when the
// pipeline does not open with one.
func collStatsStage(pipeline bson.Raw) (spec bson.Raw, rest bson.Raw, ok bool, err error) {
	vals, _ := pipeline.Values()
	if len(vals) == 0 {
		return nil, nil, false, nil
	}
	first, isDoc := vals[0].DocumentOK()
	if !isDoc {
		return nil, nil, false, nil
	}
	elems, _ := first.Elements()
	if len(elems) != 1 || elems[0].Key() != "$collStats" {
		return nil, nil, false, nil
	}
	if spec, ok = elems[0].Value().DocumentOK(); !ok {
		return nil, nil, false, &wire.Error{Code: 5447000, Name: "Location5447000", Msg: "$collStats must take a nested object but found: " + elems[0].Value().String()}
	}
	opts, _ := spec.Elements()
	for _, o := range opts {
		switch {
		case !collStatsOptions[o.Key()]:
			return nil, nil, false, &wire.Error{Code: 40415, Name: "Location40415", Msg: "BSON field '$collStats." + o.Key() + "' is an unknown field."}
		case o.Key() == "latencyStats" || o.Key() == "queryExecStats":
			return nil, nil, false, wire.BadValue("$collStats: the sandbox keeps no " + o.Key() + "; ask for storageStats or count")
		}
		if _, isDoc := o.Value().DocumentOK(); !isDoc {
			return nil, nil, false, &wire.Error{Code: 14, Name: "TypeMismatch", Msg: "BSON field '$collStats." + o.Key() + "' is the wrong type '" + o.Value().Type.String() + "', expected type 'object'"}
		}
	}
	for _, v := range vals[1:] {
		if d, isDoc := v.DocumentOK(); isDoc {
			if es, _ := d.Elements(); len(es) == 1 && es[0].Key() == "$collStats" {
				return nil, nil, false, &wire.Error{Code: 40602, Name: "Location40602", Msg: "$collStats is only valid as the first stage in a pipeline"}
			}
		}
	}
	arr := bson.A{}
	for _, v := range vals[1:] {
		arr = append(arr, v)
	}
	_, rest, _ = bson.MarshalValue(arr)
	return spec, rest, true, nil
}

// collStatsDocs are $collStats's documents for db.coll: one per shard holding it.
func (r *Router) collStatsDocs(ctx context.Context, db, coll string, spec bson.Raw) ([]bson.Raw, error) {
	ns := db + "." + coll
	rt, ok := r.cat.Route(ns)
	if !ok {
		return nil, wire.NamespaceNotFound("Unable to retrieve storageStats in $collStats stage :: caused by :: Collection [" + ns + "] not found.")
	}
	holders, err := r.holders(ctx, rt, db, coll)
	if err != nil {
		return nil, err
	}
	storage, wantStorage := spec.Lookup("storageStats").DocumentOK()
	_, wantCount := spec.Lookup("count").DocumentOK()
	cmd := bson.D{{Key: "collStats", Value: coll}}
	if scale := storage.Lookup("scale"); wantStorage && scale.Type != 0 {
		cmd = append(cmd, bson.E{Key: "scale", Value: scale})
	}
	var out []bson.Raw
	for _, b := range holders {
		d := bson.D{{Key: "ns", Value: ns}, {Key: "shard", Value: b.Name}}
		hello, err := b.run(ctx, "admin", bson.D{{Key: "hello", Value: 1}})
		if err != nil {
			return nil, err
		}
		host, _ := hello.Lookup("me").StringValueOK()
		d = append(d, bson.E{Key: "host", Value: host}, bson.E{Key: "localTime", Value: time.Now()})
		if wantStorage || wantCount {
			stats, err := b.run(ctx, db, cmd)
			if err != nil {
				return nil, err
			}
			if wantStorage {
				d = append(d, bson.E{Key: "storageStats", Value: storageStats(stats)})
			}
			if wantCount {
				d = append(d, bson.E{Key: "count", Value: stats.Lookup("count")})
			}
		}
		out = append(out, rawDoc(d))
	}
	return out, nil
}

// storageStats is a shard's collStats reply without the command's own fields.
func storageStats(reply bson.Raw) bson.D {
	elems, _ := reply.Elements()
	var d bson.D
	for _, e := range elems {
		switch e.Key() {
		case "ok", "ns", "$clusterTime", "operationTime", "$gleStats", "lastCommittedOpTime", "$configServerState", "$topologyTime":
			continue
		}
		d = append(d, bson.E{Key: e.Key(), Value: e.Value()})
	}
	return d
}
