package initialsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
	"golang.org/x/sync/errgroup"

	"github.com/shardlift/shardlift/engine/mongoerr"
	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/shardkey"
)

// Index conflicts createIndexes reports when an index with the same name or key
// already exists with other options.
const (
	codeIndexOptionsConflict  = 85
	codeIndexKeySpecsConflict = 86
)

// IndexBuilds lets the copiers of every shard build each namespace's indexes once:
// a sharded collection's indexes are listed by each shard holding it, and
// concurrent createIndexes of the same indexes through mongos only cost time (or,
// on the sandbox, fail). Share one value among the copiers of a migration.
type IndexBuilds struct {
	mu sync.Mutex
	ns map[string]*nsBuilds
}

// nsBuilds is one namespace's builds: one builder at a time (a channel, so that a
// waiting copier can give up with its context) and the indexes already built.
type nsBuilds struct {
	turn  chan struct{}
	built map[string]bool
}

// NewIndexBuilds returns an empty registry.
func NewIndexBuilds() *IndexBuilds { return &IndexBuilds{ns: map[string]*nsBuilds{}} }

// claim waits for the namespace's turn; release hands it on.
func (b *IndexBuilds) claim(ctx context.Context, ns string) (*nsBuilds, error) {
	b.mu.Lock()
	n := b.ns[ns]
	if n == nil {
		n = &nsBuilds{turn: make(chan struct{}, 1), built: map[string]bool{}}
		b.ns[ns] = n
	}
	b.mu.Unlock()
	select {
	case n.turn <- struct{}{}:
		return n, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (n *nsBuilds) release() { <-n.turn }

// BuildIndexes builds, on the destination, the indexes the source shard has on
// each of its namespaces, as the destination takes them (oplog.DestinationIndexSpec:
// no index version, ns or background leftovers) and relaxed for the sync by
// oplog.RelaxIndexForSync (unique
// built non-unique, TTL with a huge expiry); an index another shard's copier
// already built (Config.IndexBuilds) is not built again. The original of every
// index that was relaxed goes to the IndexSink before the index is built, so no
// interruption can lose it. Hashed, compound, partial, sparse, text, wildcard and
// collation options are kept as they are. An index on the shard key that
// shardCollection already made on the destination is left as it is.
func (c *Copier) BuildIndexes(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.cfg.Namespaces)
	for _, p := range c.spaces {
		g.Go(func() error {
			if err := c.buildIndexes(gctx, p); err != nil {
				return fmt.Errorf("indexes of %s: %w", p.id, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("index builds of shard %s: %w", c.cfg.Shard.Source, err)
	}
	return nil
}

func (c *Copier) buildIndexes(ctx context.Context, p *namespace) error {
	var specs []bson.Raw
	err := c.retrying(ctx, p.id, func() error {
		var err error
		specs, err = c.cfg.Source.ListIndexes(ctx, p.ns.DB, p.ns.Name)
		return err
	})
	if err != nil {
		return fmt.Errorf("list the source shard's indexes: %w", err)
	}
	builds, err := c.builds.claim(ctx, p.id)
	if err != nil {
		return err
	}
	defer builds.release()
	var build []bson.Raw
	for _, spec := range specs {
		relaxed, original, err := oplog.RelaxIndexForSync(oplog.DestinationIndexSpec(spec))
		if err != nil {
			return err
		}
		if isIDIndex(relaxed) || builds.built[indexName(relaxed)] {
			continue
		}
		if !bytes.Equal(relaxed, original) {
			if err := c.cfg.Indexes.RelaxedIndex(p.id, original); err != nil {
				return fmt.Errorf("record the original of index %s: %w", indexName(spec), err)
			}
		}
		build = append(build, relaxed)
	}
	if len(build) == 0 {
		return nil
	}
	err = c.createIndexes(ctx, p, build)
	if err != nil && conflict(err) {
		// One of them exists already with other options: build them one by one, to
		// tell the shard key index shardCollection made from a real conflict.
		err = nil
		for _, spec := range build {
			err = c.createIndexes(ctx, p, []bson.Raw{spec})
			if err != nil && conflict(err) && p.ns.Pattern != nil && sameKey(spec, p.ns.Key) {
				err = nil
			}
			if err != nil {
				err = fmt.Errorf("index %s %s: %w", indexName(spec), spec.Lookup("key"), err)
				break
			}
		}
	}
	if err != nil {
		return err
	}
	for _, spec := range build {
		builds.built[indexName(spec)] = true
	}
	return nil
}

func (c *Copier) createIndexes(ctx context.Context, p *namespace, specs []bson.Raw) error {
	return c.retrying(ctx, p.id, func() error {
		return c.cfg.Destination.CreateIndexes(ctx, p.ns.DB, p.ns.Name, specs)
	})
}

// retrying runs op until it succeeds, fails for good, or the retry policy gives up.
func (c *Copier) retrying(ctx context.Context, what string, op func() error) error {
	for failures := 0; ; failures++ {
		err := op()
		if err == nil && failures > 0 {
			c.setRetrying("")
		}
		if err == nil || ctx.Err() != nil || !transient(err) || failures >= c.retry.attempts {
			return err
		}
		c.log.Warn("retrying", "ns", what, "attempt", failures+1, "err", err)
		c.setRetrying(fmt.Sprintf("retrying (attempt %d): %s: %v", failures+1, what, err))
		if werr := c.retry.wait(ctx, failures+1); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

func conflict(err error) bool {
	return mongoerr.HasCode(err, codeIndexOptionsConflict, codeIndexKeySpecsConflict)
}

// sameKey reports whether an index spec's key is the shard key pattern: same
// fields in the same order, same values ("hashed" or a direction).
func sameKey(spec bson.Raw, pattern bson.Raw) bool {
	key, ok := spec.Lookup("key").DocumentOK()
	if !ok {
		return false
	}
	ke, err1 := key.Elements()
	pe, err2 := pattern.Elements()
	if err1 != nil || err2 != nil || len(ke) != len(pe) {
		return false
	}
	for i := range ke {
		if ke[i].Key() != pe[i].Key() {
			return false
		}
		a, b := ke[i].Value(), pe[i].Value()
		if shardkey.Compare(bsoncore.Value{Type: a.Type, Data: a.Value}, bsoncore.Value{Type: b.Type, Data: b.Value}) != 0 {
			return false
		}
	}
	return true
}

// isIDIndex reports the _id index, which every collection has already. An index
// {_id: "hashed"} (a hashed shard key on _id) is another index.
func isIDIndex(spec bson.Raw) bool {
	if indexName(spec) == "_id_" {
		return true
	}
	key, ok := spec.Lookup("key").DocumentOK()
	if !ok {
		return false
	}
	elems, err := key.Elements()
	if err != nil || len(elems) != 1 || elems[0].Key() != "_id" {
		return false
	}
	_, isString := elems[0].Value().StringValueOK()
	return !isString
}

func indexName(spec bson.Raw) string {
	name, _ := spec.Lookup("name").StringValueOK()
	return name
}
