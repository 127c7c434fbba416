package shard

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
)

// indexes lists db.coll's indexes as FerretDB has them (none when the collection
// does not exist).
func (b *backend) indexes(ctx context.Context, db, coll string) ([]bson.Raw, error) {
	reply, err := b.run(ctx, db, bson.D{{Key: "listIndexes", Value: coll}})
	if err != nil {
		if be, ok := err.(*backendError); ok {
			if code, _, _ := be.parts(); code == 26 {
				return nil, nil
			}
		}
		return nil, err
	}
	return b.drain(ctx, db, reply)
}

// createIndexes builds specs (as FerretDB takes them) on db.coll, all or none, as
// MongoDB's createIndexes does. Two ways FerretDB v1.24.2 failed where MongoDB
// builds the index ("SQL logic error: index <table>_<name> already exists"; I'm
// done's rebuild of a relaxed unique index failed once in make test):
//
//   - It builds a batch's SQLite indexes one after another and records them in its
//     metadata once all are built: when one fails (a unique index over
//     duplicates) or the record cannot be written (the command cut short by a
//     stop), those it built stay in SQLite, unknown to it. listIndexes omits them,
//     a leftover unique index refuses writes, and a later build of the name fails.
//     The leftovers named as specs are dropped before the build (one cut short
//     earlier, even before a restart) and after a failed one.
//   - It runs SQL on a pool of SQLite connections, each with its own copy of the
//     schema, which SQLite refreshes when the connection next reads or writes but
//     not before it checks the name of an index to create: a connection that last
//     ran before another dropped the index still has it. A build refused so (no
//     such index is left: its leftovers were just dropped) is tried again after a
//     read, which refreshes the connection the pool hands out next (the one that
//     just failed, the most recently used).
func (b *backend) createIndexes(ctx context.Context, db, coll string, specs []bson.Raw) error {
	if err := b.dropLeftoverIndexes(ctx, db, coll, specs); err != nil {
		return err
	}
	list := make(bson.A, len(specs))
	for i, s := range specs {
		list[i] = s
	}
	cmd := bson.D{{Key: "createIndexes", Value: coll}, {Key: "indexes", Value: list}}
	_, err := b.run(ctx, db, cmd)
	for try := 1; try < staleSchemaTries && staleSchema(err); try++ {
		if _, errRead := b.run(ctx, db, bson.D{{Key: "find", Value: coll}, {Key: "limit", Value: 1}, {Key: "singleBatch", Value: true}}); errRead != nil {
			break
		}
		_, err = b.run(ctx, db, cmd)
	}
	if err != nil {
		if errDrop := b.dropLeftoverIndexes(context.WithoutCancel(ctx), db, coll, specs); errDrop != nil {
			return fmt.Errorf("%w (and the indexes FerretDB left half built could not be dropped: %v)", err, errDrop)
		}
	}
	return err
}

// staleSchemaTries bounds the builds createIndexes tries when a connection's copy
// of the schema still has a dropped index: one read refreshes the connection that
// failed unless another command's connection came back to the pool meanwhile.
const staleSchemaTries = 20

// staleSchema reports whether FerretDB refused an index build for an SQLite index of
// that name (which createIndexes has just dropped, if it was there).
func staleSchema(err error) bool {
	var be *backendError
	if !errors.As(err, &be) {
		return false
	}
	_, _, msg := be.parts()
	return strings.Contains(msg, "SQL logic error: index ") && strings.Contains(msg, " already exists")
}

// dropLeftoverIndexes drops the SQLite indexes of db.coll named as specs (FerretDB
// names them <table>_<index name>) that FerretDB does not list.
func (b *backend) dropLeftoverIndexes(ctx context.Context, db, coll string, specs []bson.Raw) error {
	listed, err := b.indexes(ctx, db, coll)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, s := range listed {
		known[specName(s)] = true
	}
	conn, table, err := b.files.table(ctx, db, coll)
	if err != nil || table == "" {
		return err // no table: no index either
	}
	defer b.gens.wrote(db, coll)
	for _, s := range specs {
		if name := specName(s); !known[name] {
			if _, err := conn.ExecContext(ctx, fmt.Sprintf(`DROP INDEX IF EXISTS %q`, table+"_"+name)); err != nil {
				return fmt.Errorf("drop the SQLite index FerretDB left of %s.%s's %s: %w", db, coll, name, err)
			}
		}
	}
	return nil
}
