package initialsync

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/prepare"
)

// samplesPerPartition is how many _ids $sample draws per partition wanted: the
// boundaries are quantiles of the sample, so each partition's share is within a
// few tenths of its due on average, and the sample stays far below the 5% of a
// large collection under which MongoDB draws it with a random cursor.
const samplesPerPartition = 32

// rangeSep joins a namespace and a partition's index in the partition's id
// ("shop.orders$3"): MongoDB collection names cannot hold a '$', so the id of a
// partition never reads as another collection's.
const rangeSep = "$"

// namespace is one namespace's copy: one scan of the whole collection, or
// several _id ranges scanned in parallel.
type namespace struct {
	ns *prepare.ShardNamespace
	id string
	mu struct {
		sync.Mutex
		// parts is nil until the copy of a namespace to split chooses its ranges.
		parts []*partition
	}
	// docs and bytes count what is written (an earlier run's saved progress
	// included); done is set once every partition is, after their last addition.
	docs, bytes atomic.Int64
	done        atomic.Bool
}

// partition is one scan: the whole namespace, or the _ids in [min, max).
type partition struct {
	ns      *prepare.ShardNamespace
	owner   *namespace
	id      string
	ranged  bool
	min     bson.RawValue // zero: from the lowest _id (every type class below max)
	max     bson.RawValue // zero: to the highest _id (every type class above min)
	tracker *tracker
}

func (n *namespace) partitions() []*partition {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mu.parts
}

func (n *namespace) setPartitions(parts []*partition) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.parts = parts
}

// wholePartition scans the whole namespace from saved.
func (n *namespace) wholePartition(saved PartitionProgress) *partition {
	return &partition{ns: n.ns, owner: n, id: n.id, tracker: newTracker(saved)}
}

// rangePartitions are the partitions between consecutive bounds (the split points
// in ascending _id order), the first and last open-ended.
func (n *namespace) rangePartitions(bounds []bson.RawValue) []*partition {
	parts := make([]*partition, len(bounds)+1)
	for i := range parts {
		var prog PartitionProgress
		if i > 0 {
			prog.Min = bounds[i-1]
		}
		if i < len(bounds) {
			prog.Max = bounds[i]
		}
		parts[i] = n.rangePartition(i, prog)
	}
	return parts
}

func (n *namespace) rangePartition(i int, saved PartitionProgress) *partition {
	return &partition{ns: n.ns, owner: n, id: n.id + rangeSep + strconv.Itoa(i), ranged: true,
		min: saved.Min, max: saved.Max, tracker: newTracker(saved)}
}

// restore rebuilds the namespace's partitions from the saved progress: the
// whole-namespace entry (every checkpoint before partitioned copies had only
// that), or the ranged ones, whose bounds must tile the whole _id range. It
// removes what it used from rest.
func (n *namespace) restore(saved, rest map[string]PartitionProgress) error {
	whole, hasWhole := saved[n.id]
	delete(rest, n.id)
	ranged := map[int]*partition{}
	for key, prog := range saved {
		idx, ok := strings.CutPrefix(key, n.id+rangeSep)
		if !ok {
			continue
		}
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || strconv.Itoa(i) != idx {
			return fmt.Errorf("the checkpoint names a partition %q of %s that this version does not know: restart the shard", key, n.id)
		}
		delete(rest, key)
		ranged[i] = n.rangePartition(i, prog)
	}
	switch {
	case hasWhole && len(ranged) > 0:
		return fmt.Errorf("the checkpoint holds %s both whole and in %d partitions: restart the shard", n.id, len(ranged))
	case hasWhole:
		n.setPartitions([]*partition{n.wholePartition(whole)})
	case len(ranged) > 0:
		parts, err := tiled(ranged)
		if err != nil {
			return fmt.Errorf("the checkpoint's partitions of %s %v: restart the shard", n.id, err)
		}
		n.setPartitions(parts)
	}
	return nil
}

// tiled orders the partitions by index and checks that they cover the whole _id
// range once: numbered from 0, open at both ends, each starting where the
// previous one ends.
func tiled(byIndex map[int]*partition) ([]*partition, error) {
	parts := make([]*partition, len(byIndex))
	for i := range parts {
		p, ok := byIndex[i]
		if !ok {
			return nil, fmt.Errorf("lack partition %d", i)
		}
		if i > 0 && (p.min.Type == 0 || !sameID(p.min, parts[i-1].max)) {
			return nil, fmt.Errorf("leave a gap before partition %d", i)
		}
		parts[i] = p
	}
	if parts[0].min.Type != 0 || parts[len(parts)-1].max.Type != 0 {
		return nil, fmt.Errorf("do not reach both ends of the _id range")
	}
	return parts, nil
}

func sameID(a, b bson.RawValue) bool {
	return a.Type == b.Type && compareIDs(a, b) == 0
}

// splits reports whether a namespace is worth several cursors: it is large, and
// its _id order is the bytewise one the copier checks (a collection with a default
// collation orders string _ids by it, and capped ones are read in natural order).
func (c *Copier) splits(ns *prepare.ShardNamespace) bool {
	if c.cfg.Partitions < 2 || ns.Capped || ns.DefaultCollation() != nil {
		return false
	}
	return ns.Docs >= c.cfg.PartitionDocs || ns.Bytes >= c.cfg.PartitionBytes
}

// split chooses the namespace's partitions from a $sample of its _ids. A sample
// that cannot be drawn leaves the namespace whole: one cursor is slower, never wrong.
func (c *Copier) split(ctx context.Context, n *namespace) {
	ids, err := c.cfg.Source.SampleIDs(ctx, n.ns.DB, n.ns.Name, c.cfg.Partitions*samplesPerPartition)
	if err != nil {
		c.log.Warn("cannot sample the _ids to split the copy: copying it with one cursor", "ns", n.id, "err", err)
		n.setPartitions([]*partition{n.wholePartition(PartitionProgress{})})
		return
	}
	bounds := splitPoints(ids, c.cfg.Partitions)
	if len(bounds) == 0 {
		n.setPartitions([]*partition{n.wholePartition(PartitionProgress{})})
		return
	}
	n.setPartitions(n.rangePartitions(bounds))
	c.log.Info("copying in partitions", "ns", n.id, "partitions", len(bounds)+1)
}

// splitPoints are the boundaries that cut the sampled _ids into parts runs of
// about equal size: at most parts-1 distinct values in ascending _id order
// (MongoDB's, across type classes). A sample may repeat a document and may hold
// fewer _ids than parts: repeated quantiles are kept once, so no partition is
// empty by construction; an empty sample gives none (the namespace stays whole).
func splitPoints(sample []bson.RawValue, parts int) []bson.RawValue {
	sorted := slices.Clone(sample)
	slices.SortFunc(sorted, compareIDs)
	var bounds []bson.RawValue
	for k := 1; k < parts && len(sorted) > 0; k++ {
		b := sorted[k*len(sorted)/parts]
		if len(bounds) > 0 && compareIDs(bounds[len(bounds)-1], b) == 0 {
			continue
		}
		bounds = append(bounds, cloneValue(b))
	}
	return bounds
}

// inRange reports whether id lies in the partition: min <= id < max in MongoDB's order.
func (p *partition) inRange(id bson.RawValue) bool {
	return (p.min.Type == 0 || compareIDs(id, p.min) >= 0) && (p.max.Type == 0 || compareIDs(id, p.max) < 0)
}
