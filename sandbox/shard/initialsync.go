package shard

import (
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// initialSync gives a new member (its oplog empty) a copy of src's data and src's
// newest entry as its first, as MongoDB's initial sync does; src takes no write
// meanwhile (the set is opening).
func (n *node) initialSync(src *node) error {
	ctx := n.ctx
	reply, err := src.be.run(ctx, "admin", bson.D{{Key: "listDatabases", Value: 1}, {Key: "nameOnly", Value: true}})
	if err != nil {
		return fmt.Errorf("list the primary's databases: %w", err)
	}
	for _, d := range values(reply.Lookup("databases")) {
		db := str(document(d).Lookup("name"))
		if db == "local" {
			continue
		}
		r, err := src.be.run(ctx, db, bson.D{{Key: "listCollections", Value: 1}})
		if err != nil {
			return err
		}
		colls, err := src.be.drain(ctx, db, r)
		if err != nil {
			return err
		}
		for _, c := range colls {
			if err := n.cloneCollection(src, db, str(c.Lookup("name"))); err != nil {
				return fmt.Errorf("copy %s.%s: %w", db, str(c.Lookup("name")), err)
			}
		}
	}
	last, _ := src.oplog.last()
	es, _ := src.oplog.since(primitive.Timestamp{}, 1<<30)
	for _, e := range es {
		if e.ts == last {
			return n.oplog.appendEntries([]entry{e})
		}
	}
	return fmt.Errorf("the primary's newest entry %v is missing", last)
}

// cloneBatch is how many documents a clone inserts at once.
const cloneBatch = 1000

func (n *node) cloneCollection(src *node, db, coll string) error {
	ctx := n.ctx
	if err := n.applyCommand(ctx, db, mustMarshal(bson.D{{Key: "create", Value: coll}}), src); err != nil {
		return err
	}
	r, err := src.be.run(ctx, db, bson.D{{Key: "listIndexes", Value: coll}})
	if err != nil {
		return err
	}
	specs, err := src.be.drain(ctx, db, r)
	if err != nil {
		return err
	}
	var build bson.A
	for _, s := range specs {
		if str(s.Lookup("name")) != "_id_" {
			build = append(build, s)
		}
	}
	if err := n.buildIndexes(ctx, db, coll, build); err != nil {
		return err
	}
	r, err = src.be.run(ctx, db, bson.D{{Key: "find", Value: coll}, {Key: "batchSize", Value: int32(cloneBatch)}})
	if err != nil {
		return err
	}
	docs, err := src.be.drain(ctx, db, r)
	if err != nil {
		return err
	}
	for len(docs) > 0 {
		k := min(cloneBatch, len(docs))
		batch := make(bson.A, k)
		for i := range k {
			batch[i] = docs[i]
		}
		reply, err := n.be.run(ctx, db, bson.D{{Key: "insert", Value: coll}, {Key: "documents", Value: batch}})
		if err != nil {
			return err
		}
		if err := firstWriteError(reply); err != nil {
			return err
		}
		docs = docs[k:]
	}
	return nil
}
