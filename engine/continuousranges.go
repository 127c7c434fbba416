package engine

import (
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/shardkey"
	"github.com/shardlift/shardlift/engine/verify"
)

// The continuous verification's unit of comparison (docs/correctness.md,
// "Continuous verification"): for a sharded collection, a run of adjacent chunks,
// at most continuousRangeChunks of them, compared on its own
// (verify.CompareRange: both sides scanned by shard key bounds on the shard key
// index, a hashed key's in hash space). Why 16 chunks: a chunk holds at most
// 128 MB on 7.0 (64 MB before 6.0), so a unit is at most about 2 GB, which is
// what a kill can throw away; 50,000 chunks make about 3,100 units, whose 1 s
// pauses add under an hour to scans that take many on such a cluster, where one
// unit per chunk would add 14 hours of pauses and as many oplog passes. A run
// does not stop where the chunks' shard changes: a find bounded by min and max
// is not targeted by them (the mongos sends it to every shard, each walking its
// own index between the bounds), so a run across shards costs each shard only
// its own documents, and a balancer's moves leave the units as they were. (The
// session 8 runs stopped at each change of shard: on a sandbox whose chunks
// alternate between shards, one unit per chunk, each a read of the whole
// collection there: sandbox/shard/keybounds.go.) An unsharded collection has no
// index bounds both clusters share: it is compared whole (verify.Run), as before.
const continuousRangeChunks = 16

// verifyUnit is one step's comparison: a shard key range of Chunks chunks, or a
// namespace whole.
type verifyUnit struct {
	shardkey.Range
	Chunks int
	Whole  bool
}

// unitsOf are n's units in key order, runs of at most perUnit chunks; whole
// makes it one unit.
func unitsOf(n verify.Namespace, whole bool, perUnit int) []verifyUnit {
	if n.Pattern == nil || len(n.Chunks) == 0 || whole {
		return []verifyUnit{{Whole: true, Chunks: 1}}
	}
	var out []verifyUnit
	for _, c := range n.Chunks {
		if k := len(out) - 1; k >= 0 && out[k].Chunks < perUnit && shardkey.CompareKeys(out[k].Max, c.Min) == 0 {
			out[k].Max = c.Max
			out[k].Chunks++
			continue
		}
		out = append(out, verifyUnit{Range: shardkey.Range{Min: c.Min, Max: c.Max}, Chunks: 1})
	}
	return out
}

// rangeKey names a range by its bounds.
func rangeKey(min, max shardkey.Key) string { return string(min) + "\x00" + string(max) }

// comparedSet are the ranges a namespace holds compared.
func comparedSet(cn *ComparedNamespace) map[string]bool {
	out := make(map[string]bool, len(cn.Units))
	for _, u := range cn.Units {
		out[rangeKey(u.Min, u.Max)] = true
	}
	return out
}

// keyChange is where an oplog write's document is, as far as the entry tells:
// the shard key ranges a namespace compared by range must be compared again in
// when it has more changes than can be rechecked one by one.
type keyChange struct {
	op    byte     // 'i', 'u' or 'd'
	o, o2 bson.Raw // the entry's
}

// rangeLocator finds the compared ranges that oplog writes fall in, for the
// namespaces compared by range.
type rangeLocator struct {
	compared func(ns string) (*ComparedNamespace, *shardkey.Pattern)
	cache    map[string]*locatedNS
}

type locatedNS struct {
	pattern *shardkey.Pattern
	units   []ComparedRange // sorted by Min
}

// locate returns the indexes in units (sorted by Min) of the ranges the write
// touches, keyed by their bounds; ok is false when its place cannot be told
// (the namespace is not compared by range, or the entry does not hold the shard
// key, or an update may have changed it): the namespace is compared again.
func (l *rangeLocator) locate(ns string, k keyChange) (touched []string, ok bool) {
	at, cached := l.cache[ns]
	if !cached {
		cn, pattern := l.compared(ns)
		if cn != nil && cn.ByRange && pattern != nil {
			at = &locatedNS{pattern: pattern, units: slices.SortedFunc(slices.Values(cn.Units), func(a, b ComparedRange) int { return shardkey.CompareKeys(a.Min, b.Min) })}
		}
		l.cache[ns] = at
	}
	if at == nil {
		return nil, false
	}
	var keys []shardkey.Key
	switch k.op {
	case 'i':
		key, err := at.pattern.Extract(k.o) // the whole document
		if err != nil {
			return nil, false
		}
		keys = append(keys, key)
	case 'd', 'u':
		docKey := k.o
		if k.op == 'u' {
			docKey = k.o2
		}
		key, ok := documentKey(at.pattern, docKey)
		if !ok {
			return nil, false
		}
		keys = append(keys, key)
		if k.op == 'u' {
			fields, replacement := updatedFields(k.o)
			switch {
			case replacement:
				// The new document: its key may differ (4.2 and later update a key
				// in place when the document stays on its shard).
				key, err := at.pattern.Extract(k.o)
				if err != nil {
					return nil, false
				}
				keys = append(keys, key)
			case touchesKey(at.pattern, fields):
				return nil, false
			}
		}
	default:
		return nil, false
	}
	for _, key := range keys {
		i, found := slices.BinarySearchFunc(at.units, key, func(u ComparedRange, key shardkey.Key) int { return shardkey.CompareKeys(u.Min, key) })
		if !found {
			i--
		}
		if i >= 0 && shardkey.CompareKeys(key, at.units[i].Max) < 0 {
			touched = append(touched, rangeKey(at.units[i].Min, at.units[i].Max))
		}
	}
	return touched, true
}

// documentKey is the shard key of a document key ({_id, <shard key fields>},
// an update's o2 or a delete's o), when it holds every field of the key: a
// document key written before its collection was sharded holds the _id only.
func documentKey(p *shardkey.Pattern, docKey bson.Raw) (shardkey.Key, bool) {
	for _, f := range p.Fields() {
		if _, err := docKey.LookupErr(f); err != nil {
			return nil, false
		}
	}
	key, err := p.ExtractDocumentKey(docKey)
	return key, err == nil
}

// updatedFields are the top-level fields an update's o changes; replacement
// says o is the whole new document instead.
func updatedFields(o bson.Raw) (fields []string, replacement bool) {
	elems, _ := o.Elements()
	if v, ok := o.Lookup("$v").AsInt64OK(); ok && v == 2 {
		diff, _ := o.Lookup("diff").DocumentOK()
		sections, _ := diff.Elements()
		for _, s := range sections {
			switch name := s.Key(); {
			case name == "u" || name == "i" || name == "d":
				inner, _ := s.Value().DocumentOK()
				changed, _ := inner.Elements()
				for _, c := range changed {
					fields = append(fields, c.Key())
				}
			case strings.HasPrefix(name, "s"):
				fields = append(fields, name[1:])
			default:
				fields = append(fields, "") // not understood: as if every field changed
			}
		}
		return fields, false
	}
	modifier := false
	for _, e := range elems {
		if strings.HasPrefix(e.Key(), "$") {
			modifier = true
		}
	}
	if !modifier {
		return nil, true
	}
	for _, e := range elems {
		if e.Key() == "$v" {
			continue
		}
		inner, ok := e.Value().DocumentOK()
		if !ok {
			return []string{""}, false
		}
		changed, _ := inner.Elements()
		for _, c := range changed {
			fields = append(fields, c.Key())
		}
	}
	return fields, false
}

// touchesKey reports whether a change to fields (paths, top-level or dotted)
// may change a shard key field's value.
func touchesKey(p *shardkey.Pattern, fields []string) bool {
	for _, f := range fields {
		top, _, _ := strings.Cut(f, ".")
		for _, k := range p.Fields() {
			kt, _, _ := strings.Cut(k, ".")
			if f == "" || top == kt {
				return true
			}
		}
	}
	return false
}
