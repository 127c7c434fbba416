package prepare

import (
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/shardkey"
)

// Unowned finds the documents a shard's chunk migrations bring it that it did not
// own at its T0: the move watcher's cross-check of the replay's fromMigrate
// inserts. A chunk migration's recipient logs the documents it receives as
// fromMigrate inserts, which the replay skips (the donor's copy or replay has
// them). An insert into a range the shard did not own at its T0 is a move into
// it: unless the watcher saw that move, its documents would be skipped by both
// shards. Not safe for concurrent use (one replay's reader calls it).
type Unowned struct {
	shard string
	own   Ownership
	keys  map[string]*shardkey.Pattern // tracked collections' patterns, parsed once
}

// NewUnowned checks documents against what shard owned at its T0 (own).
func NewUnowned(shard string, own Ownership) *Unowned {
	return &Unowned{shard: shard, own: own, keys: map[string]*shardkey.Pattern{}}
}

// Range returns, when the shard did not own doc of ns (db.coll) at its T0, the
// range that holds it in words ("shop.orders [{k: 600}, {k: MaxKey})"), and ""
// when it did. A collection or database created since T0 is the replay's DDL, not
// a move: its documents count as owned. doc is an insert's document.
func (u *Unowned) Range(ns string, doc bson.Raw) (string, error) {
	db, _, _ := strings.Cut(ns, ".")
	oc, tracked := u.own.collection(ns)
	if !tracked {
		primary, known := u.own.Primaries[db]
		if !known || primary == u.shard {
			return "", nil
		}
		return fmt.Sprintf("%s (unsharded; its database's primary shard at T0 was %s)", ns, primary), nil
	}
	p, ok := u.keys[ns]
	if !ok {
		var err error
		if p, err = shardkey.ParsePattern(oc.Key); err != nil {
			return "", fmt.Errorf("the shard key of %s at T0: %w", ns, err)
		}
		u.keys[ns] = p
	}
	key, err := p.Extract(doc)
	if err != nil {
		return "", fmt.Errorf("a fromMigrate insert into %s: %w", ns, err)
	}
	// The ranges are sorted and disjoint: the gap holding key lies between the
	// last range starting at or before it and the next one.
	lo, hi := bound(p, primitive.MinKey{}), bound(p, primitive.MaxKey{})
	for _, r := range oc.Ranges {
		if shardkey.CompareKeys(shardkey.Key(r.Min), key) > 0 {
			hi = r.Min
			break
		}
		if shardkey.CompareKeys(key, shardkey.Key(r.Max)) < 0 {
			return "", nil
		}
		lo = r.Max
	}
	return fmt.Sprintf("%s [%s, %s)", ns, lo, hi), nil
}

// bound is the pattern's key with every field at v (MinKey or MaxKey).
func bound(p *shardkey.Pattern, v any) bson.Raw {
	var d bson.D
	for _, f := range p.Fields() {
		d = append(d, bson.E{Key: f, Value: v})
	}
	raw, _ := bson.Marshal(d)
	return raw
}
