package prepare

import (
	"bytes"
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/topology"
)

// joinZones adds each destination twin to its source shard's zones
// (addShardToZone, 3.4+; adding a shard to a zone it is in changes nothing).
func joinZones(ctx context.Context, client *mongo.Client, plan *Plan) error {
	for _, s := range plan.Shards {
		for _, zone := range s.Zones {
			cmd := bson.D{{Key: "addShardToZone", Value: s.Destination}, {Key: "zone", Value: zone}}
			if err := client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
				return fmt.Errorf("add destination shard %s (the twin of %s) to zone %s: %w", s.Destination, s.Source, zone, err)
			}
		}
	}
	return nil
}

// zoneRanges are the destination's zone key ranges (config.tags), to tell which
// of the source's are already there.
type zoneRanges []topology.ZoneRange

func destinationZones(ctx context.Context, client *mongo.Client) (zoneRanges, error) {
	cur, err := client.Database("config").Collection("tags").Find(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("read config.tags on the destination: %w", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out zoneRanges
	for cur.Next(ctx) {
		ns, _ := cur.Current.Lookup("ns").StringValueOK()
		zone, _ := cur.Current.Lookup("tag").StringValueOK()
		lo, _ := cur.Current.Lookup("min").DocumentOK()
		hi, _ := cur.Current.Lookup("max").DocumentOK()
		if namespaces.MigratedNS(ns) {
			out = append(out, topology.ZoneRange{Namespace: ns, Zone: zone, Min: bytes.Clone(lo), Max: bytes.Clone(hi)})
		}
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("read config.tags on the destination: %w", err)
	}
	return out, nil
}

// has reports whether the exact range is assigned to the same zone.
func (zs zoneRanges) has(z topology.ZoneRange) bool {
	for _, d := range zs {
		if d.Namespace == z.Namespace && d.Zone == z.Zone && bytes.Equal(d.Min, z.Min) && bytes.Equal(d.Max, z.Max) {
			return true
		}
	}
	return false
}

// assignZoneRanges gives ns the source's zone key ranges on the destination
// (updateZoneKeyRange, 3.4+; for a collection not sharded yet, 4.0.2+), leaving
// alone those already there. A destination range that overlaps one of them
// differently makes the server refuse, which validation reports beforehand.
func assignZoneRanges(ctx context.Context, client *mongo.Client, ranges []topology.ZoneRange, ns string, existing zoneRanges) error {
	for _, z := range ranges {
		if z.Namespace != ns || existing.has(z) {
			continue
		}
		cmd := bson.D{{Key: "updateZoneKeyRange", Value: z.Namespace}, {Key: "min", Value: z.Min}, {Key: "max", Value: z.Max}, {Key: "zone", Value: z.Zone}}
		if err := client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
			return fmt.Errorf("assign the range [%s, %s) of %s to zone %s on the destination: %w", z.Min, z.Max, z.Namespace, z.Zone, err)
		}
	}
	return nil
}

// disableBalancing keeps the destination's balancer off a collection, as the
// source's is (noBalance). MongoDB 8.1 added configureCollectionBalancing's
// enableBalancing; before it (3.6 to 8.0: configureCollectionBalancing, 5.3+,
// has no such field) the supported way, which sh.disableBalancing takes, is to
// set noBalance in the collection's config.collections document through mongos.
func disableBalancing(ctx context.Context, client *mongo.Client, ns, destinationVersion string) error {
	if c, ok := topology.CompareVersions(destinationVersion, "8.1"); ok && c >= 0 {
		cmd := bson.D{{Key: "configureCollectionBalancing", Value: ns}, {Key: "enableBalancing", Value: false}}
		if err := client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
			return fmt.Errorf("keep the destination's balancer off %s, as on the source (configureCollectionBalancing): %w", ns, err)
		}
		return nil
	}
	res, err := client.Database("config").Collection("collections").UpdateOne(ctx,
		bson.D{{Key: "_id", Value: ns}}, bson.D{{Key: "$set", Value: bson.D{{Key: "noBalance", Value: true}}}})
	if err == nil && res.MatchedCount == 0 {
		err = fmt.Errorf("config.collections has no %s", ns)
	}
	if err != nil {
		return fmt.Errorf("keep the destination's balancer off %s, as on the source (noBalance in config.collections): %w", ns, err)
	}
	return nil
}
