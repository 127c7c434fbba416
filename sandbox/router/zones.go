package router

import (
	"context"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Zones: addShardToZone, removeShardFromZone and updateZoneKeyRange, with the checks
// and errors of ShardingCatalogManager's zone operations
// (src/mongo/db/s/config/sharding_catalog_manager_zone_operations.cpp). Zones are kept
// in config.shards' tags and config.tags; the sandbox's balancer does not move chunks
// for them.

func errShardNotFound(shard string) error {
	return &wire.Error{Code: 70, Name: "ShardNotFound", Msg: fmt.Sprintf("shard %s does not exist", shard)}
}

// AddShardToZone adds zone to the shard's tags ($addToSet).
func (c *Catalog) AddShardToZone(shard, zone string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.shardIndexLocked(shard)
	if i < 0 {
		return errShardNotFound(shard)
	}
	if !slices.Contains(c.mu.shards[i].Tags, zone) {
		c.mu.shards[i].Tags = append(c.mu.shards[i].Tags, zone)
	}
	return c.saveLocked()
}

// RemoveShardFromZone removes zone from the shard's tags ($pull), unless the shard is
// the zone's last and a range still uses the zone.
func (c *Catalog) RemoveShardFromZone(shard, zone string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.shardIndexLocked(shard)
	if i < 0 {
		return errShardNotFound(shard)
	}
	others := 0
	for j, s := range c.mu.shards {
		if j != i && slices.Contains(s.Tags, zone) {
			others++
		}
	}
	if others == 0 && slices.ContainsFunc(c.mu.tags, func(t TagDoc) bool { return t.Tag == zone }) {
		return &wire.Error{Code: 163, Name: "ZoneStillInUse", Msg: "cannot remove a shard from zone if a chunk range is associated with it"}
	}
	c.mu.shards[i].Tags = slices.DeleteFunc(c.mu.shards[i].Tags, func(t string) bool { return t == zone })
	return c.saveLocked()
}

func (c *Catalog) shardIndexLocked(name string) int {
	return slices.IndexFunc(c.mu.shards, func(s ShardDoc) bool { return s.ID == name })
}

// UpdateZoneKeyRange assigns [min, max) of ns to zone, or removes the range when zone
// is nil. On a sharded collection the bounds must be prefixes of its shard key and are
// extended to the whole key with MinKey.
func (c *Catalog) UpdateZoneKeyRange(ns string, min, max bson.Raw, zone *string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if zone != nil && !slices.ContainsFunc(c.mu.shards, func(s ShardDoc) bool { return slices.Contains(s.Tags, *zone) }) {
		return &wire.Error{Code: 177, Name: "ZoneNotFound", Msg: fmt.Sprintf("zone %s does not exist", *zone)}
	}
	if r, ok := c.mu.routing[ns]; ok {
		var err error
		if min, err = extendBound(r.Pattern, ns, "min", min); err != nil {
			return err
		}
		if max, err = extendBound(r.Pattern, ns, "max", max); err != nil {
			return err
		}
		if zone != nil {
			if err := checkHashedBounds(r.Pattern, min, max); err != nil {
				return err
			}
		}
	}
	if shardkey.CompareKeys(shardkey.Key(min), shardkey.Key(max)) >= 0 {
		return wire.FailedToParse(fmt.Sprintf("min: %s should be less than max: %s", min, max))
	}
	same := func(t TagDoc) bool {
		return t.NS == ns && shardkey.CompareKeys(shardkey.Key(t.Min), shardkey.Key(min)) == 0 &&
			shardkey.CompareKeys(shardkey.Key(t.Max), shardkey.Key(max)) == 0
	}
	if zone == nil {
		c.mu.tags = slices.DeleteFunc(c.mu.tags, same)
		return c.saveLocked()
	}
	for _, t := range c.mu.tags {
		if t.NS != ns {
			continue
		}
		if same(t) && t.Tag == *zone {
			return nil
		}
		if shardkey.CompareKeys(shardkey.Key(t.Min), shardkey.Key(max)) < 0 && shardkey.CompareKeys(shardkey.Key(min), shardkey.Key(t.Max)) < 0 {
			return &wire.Error{Code: 178, Name: "RangeOverlapConflict", Msg: fmt.Sprintf(
				"Zone range: %s -->> %s on %s is overlapping with existing: %s -->> %s on %s", min, max, *zone, bson.Raw(t.Min), bson.Raw(t.Max), t.Tag)}
		}
	}
	c.mu.tags = append(c.mu.tags, TagDoc{ID: primitive.NewObjectID(), NS: ns, Min: min, Max: max, Tag: *zone})
	return c.saveLocked()
}

// dropTagsLocked forgets the zone ranges of a dropped collection.
func (c *Catalog) dropTagsLocked(ns string) {
	c.mu.tags = slices.DeleteFunc(c.mu.tags, func(t TagDoc) bool { return t.NS == ns })
}

// extendBound checks that bound's fields are a prefix of the shard key and fills the
// rest with MinKey (ShardKeyPattern::extendRangeBound).
func extendBound(p *shardkey.Pattern, ns, which string, bound bson.Raw) (bson.Raw, error) {
	elems, _ := bound.Elements()
	fields := p.Fields()
	notPrefix := &wire.Error{Code: 61, Name: "ShardKeyNotFound", Msg: fmt.Sprintf(
		"%s: %s is not a prefix of the shard key %s of ns: %s", which, bound, bson.Raw(p.Raw()), ns)}
	if len(elems) == 0 || len(elems) > len(fields) {
		return nil, notPrefix
	}
	idx, out := bsoncore.AppendDocumentStart(nil)
	for i, f := range fields {
		if i < len(elems) {
			if elems[i].Key() != f {
				return nil, notPrefix
			}
			out = bsoncore.AppendValueElement(out, f, core(elems[i].Value()))
			continue
		}
		out = bsoncore.AppendMinKeyElement(out, f)
	}
	out, _ = bsoncore.AppendDocumentEnd(out, idx)
	return bson.Raw(out), nil
}

// checkHashedBounds: a zone range on a hashed field is given in hashed values
// (NumberLong) or MinKey/MaxKey.
func checkHashedBounds(p *shardkey.Pattern, min, max bson.Raw) error {
	if !p.IsHashed() {
		return nil
	}
	h := p.HashedField()
	for _, b := range []bson.Raw{min, max} {
		switch b.Lookup(h).Type {
		case bsontype.Int64, bsontype.MinKey, bsontype.MaxKey:
		default:
			return &wire.Error{Code: 72, Name: "InvalidOptions", Msg: fmt.Sprintf(
				"there exists a field in the range %s -->> %s not of type NumberLong, MinKey, or MaxKey which corresponds to a hashed field in the shard key pattern %s",
				min, max, bson.Raw(p.Raw()))}
		}
	}
	return nil
}

func (r *Router) addShardToZone(_ context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	shard, zone, err := shardAndZone(cmd)
	if err != nil {
		return nil, err
	}
	if err := r.cat.AddShardToZone(shard, zone); err != nil {
		return nil, err
	}
	return wire.OK(), nil
}

func (r *Router) removeShardFromZone(_ context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	shard, zone, err := shardAndZone(cmd)
	if err != nil {
		return nil, err
	}
	if err := r.cat.RemoveShardFromZone(shard, zone); err != nil {
		return nil, err
	}
	return wire.OK(), nil
}

func shardAndZone(cmd *wire.Command) (string, string, error) {
	if err := adminCommand(cmd); err != nil {
		return "", "", err
	}
	shard, ok := cmd.Lookup(cmd.Name).StringValueOK()
	zone, zok := cmd.Lookup("zone").StringValueOK()
	if !ok || !zok || shard == "" || zone == "" {
		return "", "", wire.BadValue(cmd.Name + " takes a shard name and a zone: {" + cmd.Name + ": <shard>, zone: <zone>}")
	}
	return shard, zone, nil
}

func (r *Router) updateZoneKeyRange(_ context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	if err := adminCommand(cmd); err != nil {
		return nil, err
	}
	ns, _, _, err := nsArg(cmd)
	if err != nil {
		return nil, err
	}
	min, okMin := cmd.Lookup("min").DocumentOK()
	max, okMax := cmd.Lookup("max").DocumentOK()
	if !okMin || !okMax {
		return nil, wire.BadValue("updateZoneKeyRange needs min and max documents")
	}
	var zone *string
	switch v := cmd.Lookup("zone"); v.Type {
	case bsontype.Null:
	case bsontype.String:
		z := v.StringValue()
		zone = &z
	default:
		return nil, wire.BadValue("updateZoneKeyRange needs zone: a zone name, or null to remove the range")
	}
	if err := r.cat.UpdateZoneKeyRange(ns, min, max, zone); err != nil {
		return nil, err
	}
	return wire.OK(), nil
}

// adminCommand refuses an admin-only command sent to another database.
func adminCommand(cmd *wire.Command) error {
	if cmd.DB != "admin" {
		return wire.Unauthorized(cmd.Name + " may only be run against the admin database.")
	}
	return nil
}

// SetNoBalance keeps the balancer off a sharded collection, or lets it back on: the
// noBalance field of its config.collections document, which sh.disableBalancing and
// sh.enableBalancing set through mongos. found is false when ns is not sharded.
func (c *Catalog) SetNoBalance(ns string, noBalance bool) (found, changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.mu.routing[ns]
	if !ok {
		return false, false, nil
	}
	if r.Coll.NoBalance == noBalance {
		return true, false, nil
	}
	coll := *r.Coll
	coll.NoBalance = noBalance
	nr, err := c.newRoutingLocked(coll, r.Chunks)
	if err != nil {
		return true, false, err
	}
	c.mu.routing[ns] = nr
	return true, true, c.saveLocked()
}
