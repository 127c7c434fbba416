package topology

import (
	"errors"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

func rawDoc(t *testing.T, d bson.D) bson.Raw {
	t.Helper()
	b, err := bson.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Rule "majority bound": the commit point is read from hello (isMaster) as every
// release from 3.6 to 8.0 reports it, from replSetGetStatus when hello has none,
// and a one-member set that reports neither is told apart from a larger one.
func TestMajorityBound_CommitPointFromHelloOrReplSetGetStatus(t *testing.T) {
	last := primitive.Timestamp{T: 1700000100, I: 3}
	committed := primitive.Timestamp{T: 1700000090, I: 1}
	opTime := func(ts primitive.Timestamp) bson.D {
		return bson.D{{Key: "ts", Value: ts}, {Key: "t", Value: int64(4)}}
	}
	three := bson.A{"a:27017", "b:27017", "c:27017"}
	hello := func(hosts bson.A, lastWrite bson.D) bson.D {
		d := bson.D{{Key: "isWritablePrimary", Value: true}, {Key: "setName", Value: "rs0"}, {Key: "hosts", Value: hosts}}
		if lastWrite != nil {
			d = append(d, bson.E{Key: "lastWrite", Value: lastWrite})
		}
		return d
	}
	status := func(ts primitive.Timestamp) func() (bson.Raw, error) {
		return func() (bson.Raw, error) {
			return rawDoc(t, bson.D{{Key: "set", Value: "rs0"}, {Key: "optimes", Value: bson.D{{Key: "lastCommittedOpTime", Value: opTime(ts)}}}}), nil
		}
	}
	refused := func() (bson.Raw, error) {
		return nil, errors.New("not authorized on admin to execute command { replSetGetStatus: 1 }")
	}
	for _, c := range []struct {
		name   string
		hello  bson.D
		status func() (bson.Raw, error)
		want   primitive.Timestamp
		term   int64
		err    string
		one    bool
	}{
		{"hello lastWrite.majorityOpTime (3.6 to 8.0)", hello(three, bson.D{
			{Key: "opTime", Value: opTime(last)}, {Key: "majorityOpTime", Value: opTime(committed)},
		}), refused, committed, 4, "", false},
		{"replSetGetStatus of protocol version 0 (3.6): a bare timestamp", hello(three, bson.D{{Key: "opTime", Value: opTime(last)}}),
			func() (bson.Raw, error) {
				return rawDoc(t, bson.D{{Key: "optimes", Value: bson.D{{Key: "lastCommittedOpTime", Value: committed}}}}), nil
			}, committed, 0, "", false},
		{"no committed snapshot yet: replSetGetStatus", hello(three, bson.D{
			{Key: "opTime", Value: opTime(last)}, {Key: "majorityOpTime", Value: opTime(primitive.Timestamp{})},
		}), status(committed), committed, 4, "", false},
		{"one member reporting none", hello(bson.A{"a:27017"}, bson.D{{Key: "opTime", Value: opTime(last)}}), refused, primitive.Timestamp{}, 0, "", true},
		{"three members reporting none", hello(three, nil), refused, primitive.Timestamp{}, 0, "reports no majority commit point", false},
		{"not a replica set", bson.D{{Key: "isWritablePrimary", Value: true}}, refused, primitive.Timestamp{}, 0, "not a replica set member", false},
	} {
		got, term, err := commitPointOf(rawDoc(t, c.hello), c.status)
		switch {
		case c.one:
			if !errors.Is(err, ErrOneMember) {
				t.Errorf("%s: %v, %v; want ErrOneMember", c.name, got, err)
			}
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, %v; want an error saying %q", c.name, got, err, c.err)
			}
			if replSet := c.hello.Map()["setName"] != nil; replSet != errors.Is(err, ErrNoCommitPoint) {
				t.Errorf("%s: %v is ErrNoCommitPoint: %v, want %v (a replica set that may report one soon)", c.name, err, !replSet, replSet)
			}
		case err != nil || got != c.want || term != c.term:
			t.Errorf("%s: %v of term %d, %v; want %v of term %d", c.name, got, term, err, c.want, c.term)
		}
	}
}
