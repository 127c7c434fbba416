package oplog

// PartitionKey returns a hash that routes a write to an applier: the same for
// every write to one document of one collection, so that the document's writes
// are applied in oplog order by a single applier. It hashes the namespace and
// the _id of the document key (type byte and value bytes) with 64-bit FNV-1a;
// within one shard's oplog an _id names one document at a time, even when a
// shard key change gives the document a new key. It does not allocate.
func PartitionKey(w *Write) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	add := func(b byte) { h = (h ^ uint64(b)) * prime }
	for i := 0; i < len(w.NS.DB); i++ {
		add(w.NS.DB[i])
	}
	add(0)
	for i := 0; i < len(w.NS.Coll); i++ {
		add(w.NS.Coll[i])
	}
	add(0)
	t, v, ok := idValue(w.Filter)
	if !ok {
		v = w.Filter
	}
	add(byte(t))
	for _, b := range v {
		add(b)
	}
	return h
}
