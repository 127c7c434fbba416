package faults

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/shardkey"
)

// Diff is what a comparison of two clusters found.
type Diff struct {
	Namespaces int
	// Documents counts the source's documents compared.
	Documents int64
	// Lost: on the source, not on the destination.
	Lost int64
	// Duplicated: extra copies of one _id on the destination (a document on two shards).
	Duplicated int64
	// Different: on both sides with the same _id, not the same bytes.
	Different int64
	// Extra: on the destination, not on the source (a delete never applied, or a
	// leftover of Shardlift's own).
	Extra int64
	// Samples describe the first differences, for the failure message.
	Samples []string
}

// OK is true when the destination holds exactly the source's documents.
func (d Diff) OK() bool { return d.Lost == 0 && d.Duplicated == 0 && d.Different == 0 && d.Extra == 0 }

const maxSamples = 10

func (d *Diff) sample(format string, a ...any) {
	if len(d.Samples) < maxSamples {
		d.Samples = append(d.Samples, fmt.Sprintf(format, a...))
	}
}

// Compare reads every user namespace of both clusters through their routers, sorted
// by _id, and compares them document by document, exact BSON (field order included).
// A namespace on only one side is compared with an empty one, so a collection the
// migration forgot is lost documents and one it left behind is extra documents.
func Compare(ctx context.Context, src, dst *mongo.Client) (Diff, error) {
	var d Diff
	a, err := userNamespaces(ctx, src)
	if err != nil {
		return d, fmt.Errorf("list the source's namespaces: %w", err)
	}
	b, err := userNamespaces(ctx, dst)
	if err != nil {
		return d, fmt.Errorf("list the destination's namespaces: %w", err)
	}
	all := slices.Concat(a, b)
	slices.Sort(all)
	all = slices.Compact(all)
	for _, ns := range all {
		db, coll, _ := strings.Cut(ns, ".")
		if err := compareNamespace(ctx, src, dst, db, coll, &d); err != nil {
			return d, fmt.Errorf("compare %s: %w", ns, err)
		}
		d.Namespaces++
	}
	return d, nil
}

// userNamespaces lists "db.coll" of every collection a migration carries (views aside).
func userNamespaces(ctx context.Context, c *mongo.Client) ([]string, error) {
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, db := range dbs {
		if !namespaces.UserDatabase(db) {
			continue
		}
		specs, err := c.Database(db).ListCollectionSpecifications(ctx, bson.D{})
		if err != nil {
			return nil, fmt.Errorf("list the collections of %s: %w", db, err)
		}
		for _, s := range specs {
			if !namespaces.Migrated(db, s.Name) || s.Type == "view" {
				continue
			}
			out = append(out, db+"."+s.Name)
		}
	}
	return out, nil
}

// scan is one side's _id-sorted documents, one at a time.
type scan struct {
	cur  *mongo.Cursor
	doc  bson.Raw
	done bool
}

func openScan(ctx context.Context, c *mongo.Client, db, coll string) (*scan, error) {
	cur, err := c.Database(db).Collection(coll).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, err
	}
	s := &scan{cur: cur}
	return s, s.advance(ctx)
}

func (s *scan) advance(ctx context.Context) error {
	if s.cur.Next(ctx) {
		s.doc = append(s.doc[:0:0], s.cur.Current...)
		return nil
	}
	s.done, s.doc = true, nil
	return s.cur.Err()
}

func (s *scan) id() bsoncore.Value {
	v := s.doc.Lookup("_id")
	return bsoncore.Value{Type: v.Type, Data: v.Value}
}

func compareNamespace(ctx context.Context, src, dst *mongo.Client, db, coll string, d *Diff) error {
	a, err := openScan(ctx, src, db, coll)
	if err != nil {
		return fmt.Errorf("read the source: %w", err)
	}
	defer a.cur.Close(ctx)
	b, err := openScan(ctx, dst, db, coll)
	if err != nil {
		return fmt.Errorf("read the destination: %w", err)
	}
	defer b.cur.Close(ctx)
	ns := db + "." + coll
	var lastDst bson.Raw // the destination's previous document, to see duplicates
	advanceDst := func() error {
		lastDst = b.doc
		if err := b.advance(ctx); err != nil {
			return fmt.Errorf("read the destination: %w", err)
		}
		for !b.done && lastDst != nil && shardkey.Compare(b.id(), idOf(lastDst)) == 0 {
			d.Duplicated++
			d.sample("%s: _id %s is on the destination more than once", ns, b.doc.Lookup("_id"))
			if err := b.advance(ctx); err != nil {
				return fmt.Errorf("read the destination: %w", err)
			}
		}
		return nil
	}
	for !a.done || !b.done {
		c := 0
		switch {
		case a.done:
			c = 1
		case b.done:
			c = -1
		default:
			c = shardkey.Compare(a.id(), b.id())
		}
		switch {
		case c < 0:
			d.Documents++
			d.Lost++
			d.sample("%s: _id %s is on the source only", ns, a.doc.Lookup("_id"))
			if err := a.advance(ctx); err != nil {
				return fmt.Errorf("read the source: %w", err)
			}
		case c > 0:
			d.Extra++
			d.sample("%s: _id %s is on the destination only", ns, b.doc.Lookup("_id"))
			if err := advanceDst(); err != nil {
				return err
			}
		default:
			d.Documents++
			if !bytes.Equal(a.doc, b.doc) {
				d.Different++
				d.sample("%s: _id %s differs:\n  source      %s\n  destination %s", ns, a.doc.Lookup("_id"), a.doc, b.doc)
			}
			if err := a.advance(ctx); err != nil {
				return fmt.Errorf("read the source: %w", err)
			}
			if err := advanceDst(); err != nil {
				return err
			}
		}
	}
	return nil
}

func idOf(doc bson.Raw) bsoncore.Value {
	v := doc.Lookup("_id")
	return bsoncore.Value{Type: v.Type, Data: v.Value}
}
