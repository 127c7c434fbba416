package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

func TestShardCheckpointRoundTrip(t *testing.T) {
	s, _ := openTemp(t)
	mustSave(t, s, sampleMigration("m1"))
	var want []ShardCheckpoint
	for _, shard := range []string{"shard02", "shard00", "shard01"} {
		cp := realisticCheckpoint(shard, 50, 7)
		cp.Error = "E11000 on " + shard
		if err := s.SaveShardCheckpoint("m1", cp); err != nil {
			t.Fatal(err)
		}
		want = append(want, cp)
	}
	got, err := s.ShardCheckpoints("m1")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Shard != "shard00" || got[1].Shard != "shard01" || got[2].Shard != "shard02" {
		t.Fatalf("checkpoints not ordered by shard: %v", got)
	}
	for _, g := range got {
		if g.UpdatedAt.IsZero() {
			t.Fatalf("shard %s: UpdatedAt not set", g.Shard)
		}
		for _, w := range want {
			if w.Shard != g.Shard {
				continue
			}
			g.UpdatedAt = time.Time{}
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("shard %s read back\n%+v\nwant\n%+v", g.Shard, g, w)
			}
		}
	}
}

func TestCheckpointWriteLeavesOtherShardsAlone(t *testing.T) {
	s, _ := openTemp(t)
	mustSave(t, s, sampleMigration("m1"))
	for _, shard := range []string{"shard00", "shard01"} {
		if err := s.SaveShardCheckpoint("m1", realisticCheckpoint(shard, 5, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveShardCheckpoint("m1", realisticCheckpoint("shard00", 5, 2)); err != nil {
		t.Fatal(err)
	}
	cps, err := s.ShardCheckpoints("m1")
	if err != nil {
		t.Fatal(err)
	}
	if cps[0].Applied.T != 2 || cps[1].Applied.T != 1 {
		t.Fatalf("applied rounds %d, %d; want 2, 1", cps[0].Applied.T, cps[1].Applied.T)
	}
}

func TestCheckpointOfUnknownMigrationIsRefused(t *testing.T) {
	s, _ := openTemp(t)
	if err := s.SaveShardCheckpoint("nope", realisticCheckpoint("shard00", 1, 1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SaveShardCheckpoint for a missing migration: %v, want ErrNotFound", err)
	}
	mustSave(t, s, sampleMigration("m1"))
	if err := s.SaveShardCheckpoint("m1", realisticCheckpoint("", 1, 1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SaveShardCheckpoint without a shard name: %v, want ErrInvalid", err)
	}
}

// A writer killed with SIGKILL at any moment (most of a checkpoint's time is spent in
// bbolt's commit) leaves a file that opens and passes bbolt's check, in which every
// shard's checkpoint is whole and none older than one already reported saved.
func TestCrashDuringCheckpointWritesLeavesWholeCheckpoints(t *testing.T) {
	path := t.TempDir() + "/state.db"
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, sampleMigration(crashMigration))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	rng := rand.New(rand.NewPCG(3, 4))
	for kill := range 4 {
		cmd, out := startHelper(t, "checkpoint-loop", path)
		saved := map[string]uint32{}
		for lines := 30 + rng.IntN(120); lines > 0 && out.Scan(); lines-- {
			shard, round, ok := strings.Cut(out.Text(), " ")
			n, err := strconv.ParseUint(round, 10, 32)
			if !ok || err != nil {
				t.Fatalf("helper printed %q", out.Text())
			}
			saved[shard] = uint32(n)
		}
		if len(saved) == 0 {
			t.Fatalf("kill %d: the writer saved nothing (%v)", kill, out.Err())
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("kill %d: reopen after SIGKILL: %v", kill, err)
		}
		cps, err := s.ShardCheckpoints(crashMigration)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		lo, hi := uint32(1<<31), uint32(0)
		for _, cp := range cps {
			checkWhole(t, cp)
			if cp.Applied.T < saved[cp.Shard] {
				t.Fatalf("kill %d: shard %s at round %d, but round %d was reported saved", kill, cp.Shard, cp.Applied.T, saved[cp.Shard])
			}
			lo, hi = min(lo, cp.Applied.T), max(hi, cp.Applied.T)
		}
		// The writer saves the shards in turn, so they are never two rounds apart.
		if len(cps) != crashShards || hi-lo > 1 {
			t.Fatalf("kill %d: %d shards at rounds %d..%d, want %d shards at most one round apart", kill, len(cps), lo, hi, crashShards)
		}
	}
}

// BenchmarkSaveShardCheckpoint measures one shard's checkpoint write (a shard copying
// 50 partitions), the write made every second per shard during a sync.
func BenchmarkSaveShardCheckpoint(b *testing.B) {
	s, _ := openTemp(b)
	mustSave(b, s, sampleMigration("bench"))
	var cps [crashShards]ShardCheckpoint
	for i := range cps {
		cps[i] = realisticCheckpoint(fmt.Sprintf("shard%02d", i), crashParts, 1)
	}
	v, err := encode([]byte(cps[0].Shard), cps[0])
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		cp := cps[i%len(cps)]
		cp.Applied.T = uint32(i)
		if err := s.SaveShardCheckpoint("bench", cp); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// A checkpoint saved before the term of the applied entry and the replay's
// TxnStart were kept reads back without them: the shard resumes on its ts alone.
func TestCheckpointSavedBeforeTermsReadsBackWithoutOne(t *testing.T) {
	s, _ := openTemp(t)
	mustSave(t, s, sampleMigration("m1"))
	type legacy struct { // the record as it was: no appliedTerm, no txnStart
		Shard     string              `bson:"shard"`
		Phase     string              `bson:"phase"`
		T0        primitive.Timestamp `bson:"t0"`
		Applied   primitive.Timestamp `bson:"applied"`
		UpdatedAt time.Time           `bson:"updatedAt"`
	}
	old := legacy{Shard: "rs0", Phase: "synced", T0: primitive.Timestamp{T: 10, I: 1}, Applied: primitive.Timestamp{T: 20, I: 2}, UpdatedAt: time.Now()}
	v, err := encode([]byte(old.Shard), old)
	if err != nil {
		t.Fatal(err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(bucketCheckpoints).CreateBucketIfNotExists([]byte("m1"))
		if err != nil {
			return err
		}
		return b.Put([]byte(old.Shard), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	cps, err := s.ShardCheckpoints("m1")
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 1 || cps[0].Applied != old.Applied || cps[0].AppliedTerm != 0 || !cps[0].TxnStart.IsZero() {
		t.Fatalf("read back %+v, want applied %v with no term and no TxnStart", cps, old.Applied)
	}
}
