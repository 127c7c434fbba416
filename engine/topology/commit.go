package topology

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
	"go.mongodb.org/mongo-driver/mongo/readconcern"

	"github.com/shardlift/shardlift/engine/mongoerr"
)

// What a shard's replica set has committed, and the transactions it holds open:
// where a shard's copy and replay may start (docs/correctness.md).

// ErrOneMember: a one-member replica set reports no majority commit point (none
// needs one): every entry it wrote is committed, so its newest entry is the point.
var ErrOneMember = errors.New("a one-member replica set: its newest entry is its majority commit point")

// ErrNoCommitPoint: a member of a replica set of several members reports no
// majority commit point (one elected a moment ago may not have one yet).
var ErrNoCommitPoint = errors.New("no majority commit point reported")

// MajorityCommitPoint reads the majority commit point of the replica set whose
// member client reaches (its primary, or a direct connection to a member): the
// newest entry a majority of the set has written, which no failover rolls back.
//
// Every release from 3.6 to 8.0 reports it in hello's (isMaster's before 4.4.2)
// lastWrite.majorityOpTime; replSetGetStatus's optimes.lastCommittedOpTime is read
// when hello has none (a member without a committed snapshot yet). A member that
// reports neither is ErrOneMember when its set has one member, else an error: the
// replay could not know what may still be rolled back. term is the point's term
// (0 where the server reports a bare timestamp: 3.6's protocol version 0).
func MajorityCommitPoint(ctx context.Context, client *mongo.Client) (ts primitive.Timestamp, term int64, err error) {
	hello, err := helloOf(ctx, client, DefaultTimeout)
	if err != nil {
		return primitive.Timestamp{}, 0, fmt.Errorf("read the majority commit point (hello): %w", err)
	}
	return commitPointOf(hello, func() (bson.Raw, error) {
		return runCommand(ctx, client, DefaultTimeout, "admin", bson.D{{Key: "replSetGetStatus", Value: 1}})
	})
}

// commitPointOf reads the commit point from a hello reply, asking status (the
// replSetGetStatus reply) only when hello has none.
func commitPointOf(hello bson.Raw, status func() (bson.Raw, error)) (primitive.Timestamp, int64, error) {
	if ts, term, ok := opTimeAt(hello, "lastWrite", "majorityOpTime"); ok {
		return ts, term, nil
	}
	if str(hello, "setName") == "" {
		return primitive.Timestamp{}, 0, errors.New("the shard's member is not a replica set member (hello reports no setName): it has no oplog to replay")
	}
	st, statusErr := status()
	if statusErr == nil {
		if ts, term, ok := opTimeAt(st, "optimes", "lastCommittedOpTime"); ok {
			return ts, term, nil
		}
	}
	if dataMembers(hello) == 1 {
		return primitive.Timestamp{}, 0, ErrOneMember
	}
	msg := "the shard's primary reports no majority commit point (hello lastWrite.majorityOpTime, replSetGetStatus optimes.lastCommittedOpTime)"
	if statusErr != nil {
		return primitive.Timestamp{}, 0, fmt.Errorf("%s, and replSetGetStatus failed (grant the clusterMonitor role: %v): %w", msg, statusErr, ErrNoCommitPoint)
	}
	return primitive.Timestamp{}, 0, fmt.Errorf("%s: wait until its replica set has elected a primary and replicated, then retry: %w", msg, ErrNoCommitPoint)
}

// opTimeAt reads the ts and term of the optime at path in doc: {ts, t}, or a bare
// Timestamp (replSetGetStatus's optimes under 3.6's protocol version 0: term 0). A
// zero ts is none (a member without a committed snapshot yet reports Timestamp(0, 0)).
func opTimeAt(doc bson.Raw, path ...string) (ts primitive.Timestamp, term int64, ok bool) {
	v := doc.Lookup(path...)
	if v.Type == bsontype.EmbeddedDocument {
		term, _ = v.Document().Lookup("t").AsInt64OK()
		v = v.Document().Lookup("ts")
	}
	t, i, ok := v.TimestampOK()
	if !ok || t == 0 && i == 0 {
		return primitive.Timestamp{}, 0, false
	}
	return primitive.Timestamp{T: t, I: i}, max(term, 0), true
}

// dataMembers counts the data-bearing members hello lists: hosts and passives.
func dataMembers(hello bson.Raw) int {
	n := 0
	for _, key := range []string{"hosts", "passives"} {
		if arr, ok := hello.Lookup(key).ArrayOK(); ok {
			vals, _ := arr.Values()
			n += len(vals)
		}
	}
	return n
}

// OldestOpenTransaction reads the shard's config.transactions for the transactions
// still open (state prepared or inProgress, 4.2 and later; a 4.0 transaction is
// one applyOps entry and is never open across entries) and returns the first
// oplog entry (startOpTime) of the oldest, ok false when none is open. This is
// where MongoDB's own initial sync starts fetching the oplog.
//
// It reads what the majority committed as of after or later (MajorityReadsAfter):
// a transaction it sees ended did so at or before the majority commit point read
// after it, and one that began after after is not seen.
func OldestOpenTransaction(ctx context.Context, client *mongo.Client, after primitive.Timestamp) (start primitive.Timestamp, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	sess, err := MajorityReadsAfter(client, after)
	if err != nil {
		return start, false, fmt.Errorf("read the open transactions in config.transactions: %w", err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	ctx = mongo.NewSessionContext(ctx, sess)
	filter := bson.D{
		{Key: "state", Value: bson.D{{Key: "$in", Value: bson.A{"prepared", "inProgress"}}}},
		{Key: "startOpTime", Value: bson.D{{Key: "$exists", Value: true}}},
	}
	opts := options.Find().SetSort(bson.D{{Key: "startOpTime.ts", Value: 1}}).SetProjection(bson.D{{Key: "startOpTime", Value: 1}}).SetLimit(1)
	cur, err := client.Database("config").Collection("transactions", MajorityRead()).Find(ctx, filter, opts)
	if err != nil {
		return start, false, fmt.Errorf("read the open transactions in config.transactions: %w", MajorityReadError(err))
	}
	defer cur.Close(context.WithoutCancel(ctx))
	if !cur.Next(ctx) {
		if err := cur.Err(); err != nil {
			return start, false, fmt.Errorf("read the open transactions in config.transactions: %w", err)
		}
		return start, false, nil
	}
	start, _, ok = opTimeAt(cur.Current, "startOpTime")
	if !ok {
		return start, false, fmt.Errorf("config.transactions: an open transaction has no startOpTime timestamp: %s", cur.Current)
	}
	return start, true, nil
}

// MajorityReadsAfter starts a session whose reads, on collections opened with
// MajorityRead, see what the replica set's majority has committed, as of after or
// later: read concern majority with afterClusterTime (3.6 and later; the member
// waits until its majority-committed snapshot reaches after). Such a read never
// returns a write a failover can roll back, nor misses one committed by after. The
// caller ends the session.
func MajorityReadsAfter(client *mongo.Client, after primitive.Timestamp) (mongo.Session, error) {
	sess, err := client.StartSession(options.Session().SetCausalConsistency(true))
	if err != nil {
		return nil, err
	}
	if !after.IsZero() {
		if err := sess.AdvanceOperationTime(&after); err != nil {
			sess.EndSession(context.Background())
			return nil, err
		}
	}
	return sess, nil
}

// MajorityRead opens a collection for MajorityReadsAfter's reads.
func MajorityRead() *options.CollectionOptions {
	return options.Collection().SetReadConcern(readconcern.Majority())
}

// codeReadConcernMajorityNotEnabled: a member started with
// enableMajorityReadConcern=false (possible from 3.6 to 4.4).
const codeReadConcernMajorityNotEnabled = 148

// MajorityReadError explains a refused majority read, or returns err.
func MajorityReadError(err error) error {
	if mongoerr.HasCode(err, codeReadConcernMajorityNotEnabled) {
		return fmt.Errorf("the shard refuses read concern majority (its members run with enableMajorityReadConcern: false): Shardlift reads only what a majority committed, so that a failover can never leave on the destination a write the source lost; enable it on the shard's members (the default) and restart this shard: %w", err)
	}
	return err
}
