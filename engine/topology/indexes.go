package topology

import (
	"context"
)

// indexesOf lists a collection's index specifications (listIndexes through the
// router, which asks a shard holding the collection).
func (d *discovery) indexesOf(ctx context.Context, ns *Namespace) {
	lctx, cancel := context.WithTimeout(ctx, d.e.timeout())
	cur, err := d.client.Database(ns.DB).Collection(ns.Collection).Indexes().List(lctx)
	cancel()
	if err == nil {
		ns.Indexes, err = drain(ctx, cur, d.e.timeout())
	}
	if err != nil {
		d.problem(ctx, PartIndexes+" of "+ns.Name(), err)
	}
}
