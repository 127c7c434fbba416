package replay

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// silentLink is a source behind a link that drops packets: the tail waits without an
// error while every other read times out.
type silentLink struct {
	*fakeOplog
	down atomic.Bool
}

func (s *silentLink) Newest(ctx context.Context) (primitive.Timestamp, error) {
	if s.down.Load() {
		return primitive.Timestamp{}, errors.New("read tcp: i/o timeout")
	}
	return s.fakeOplog.Newest(ctx)
}

// A shard whose tail waits silently on a dead link must not look synced: its row says
// the source does not answer until it does again (issue 9, scenario 2).
func TestUnreachableSourceShowsInTheProgressEvenWhileTheTailWaits(t *testing.T) {
	var entries []bson.Raw
	for i := 1; i <= 10; i++ {
		entries = append(entries, insertOp(at(uint32(i)), ns, doc(i, 0)))
	}
	src := &silentLink{fakeOplog: newFakeOplog(entries...)}
	s := testShard(t, Config{Source: src, Destination: newFakeDest(), Resume: at(1)})
	wait := start(t, context.Background(), s)
	eventually(t, "the entries applied", func() bool { return s.Snapshot().Applied == at(10) })
	src.down.Store(true)
	eventually(t, "the dead link reported", func() bool {
		return strings.Contains(s.Snapshot().Retrying, "has not answered since")
	})
	src.down.Store(false)
	eventually(t, "the report cleared", func() bool { return s.Snapshot().Retrying == "" })
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}
