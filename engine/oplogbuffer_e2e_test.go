package engine

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/initialsync"
	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
)

// heldCopies are the real clusters whose shard copies wait, once started, until
// the test lets them go: a copy as long as the test needs, without timing luck.
type heldCopies struct {
	Clusters
	release chan struct{}
	held    atomic.Int32 // copies waiting
}

func (h *heldCopies) NewCopier(ctx context.Context, shard string, t0 primitive.Timestamp, own prepare.Ownership, saved map[string]initialsync.PartitionProgress, sink initialsync.CheckpointSink) (Copier, error) {
	c, err := h.Clusters.NewCopier(ctx, shard, t0, own, saved, sink)
	if err != nil {
		return nil, err
	}
	return heldCopier{Copier: c, h: h}, nil
}

type heldCopier struct {
	Copier
	h *heldCopies
}

func (c heldCopier) Copy(ctx context.Context) error {
	c.h.held.Add(1)
	select {
	case <-c.h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return c.Copier.Copy(ctx)
}

// oplogOldest reads the oldest entry of a source shard's oplog, on the shard itself.
func (e *e2e) oplogOldest(shard string) primitive.Timestamp {
	e.t.Helper()
	for _, sh := range e.srcBox.Shards() {
		if sh.Name != shard {
			continue
		}
		ctx := context.Background()
		c, err := topology.Connect(ctx, topology.Endpoint{URI: "mongodb://" + sh.Addr + "/?directConnection=true", Timeout: 30 * time.Second})
		if err != nil {
			e.t.Fatal(err)
		}
		defer c.Disconnect(ctx)
		raw, err := c.Database("local").Collection("oplog.rs").FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: 1}})).Raw()
		if err != nil {
			e.t.Fatal(err)
		}
		t, i := raw.Lookup("ts").Timestamp()
		return primitive.Timestamp{T: t, I: i}
	}
	e.t.Fatalf("no source shard %s", shard)
	return primitive.Timestamp{}
}

// A copy that outlasts its shard's oplog window: while the copies are held, the
// source's oplogs shrink to 2 MiB and 4 MiB go to one shard, whose oplog rolls
// past its T0. Without the buffer that shard fails on the gap once its copy ends;
// with it, the fetcher has buffered the oplog from T0 on, Shardlift is killed and
// started again (the buffers are reused), and the migration ends verified.
func TestSandboxCopyOutlastingTheOplogWindowEndsVerified(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		name := "without the buffer the shard fails on the gap"
		if buffered {
			name = "with the buffer the migration ends verified"
		}
		t.Run(name, func(t *testing.T) {
			e := startE2EWith(t, 1000, "an oplog that rolls over during the copy", func(*sandbox.Options) {})
			e.startLoad(50)
			cp := newMemCheckpoints("e2e")
			held := &heldCopies{release: make(chan struct{})}
			cfg := Config{ID: "e2e", Source: e.src, Destination: e.dst, PollEvery: 100 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
			if buffered {
				cfg.OplogBufferDir = t.TempDir()
			}
			migration := func() *Migration {
				m, err := New(cfg, cp, WithConnector(func(ctx context.Context, cfg Config, relaxed RelaxSink) (Clusters, error) {
					c, err := NewMongoClusters(ctx, cfg, relaxed)
					held.Clusters = c
					return held, err
				}))
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			m := migration()
			r := run(m, StartOptions{WipeDestination: true})
			shards := len(e.srcBox.Shards())
			await(t, m, 3*time.Minute, "every copy started and held", func(s Snapshot) bool {
				select {
				case err := <-r.done:
					t.Fatalf("Run ended before the copies: %v", err)
				default:
				}
				return int(held.held.Load()) == shards && (!buffered || !anyShard(s, func(p ShardProgress) bool { return p.Buffer == nil || p.Buffer.FetchedUpTo.IsZero() }))
			})

			rolled := e.rollOverAShard()
			_, shardCPs, err := cp.Load()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range shardCPs {
				if c.Shard == rolled {
					if oldest := e.oplogOldest(rolled); !c.T0.Before(oldest) {
						t.Fatalf("the oplog of %s still holds its T0 %v (oldest entry %v): the test needs it rolled past", rolled, c.T0, oldest)
					}
				}
			}
			if buffered {
				// Shardlift is killed with the oplog from T0 on in the buffers only,
				// and started again: the buffers are reused, not fetched again from
				// T0 (which would be the gap). The state file keeps what each
				// buffer holds (nothing is applied yet: every entry counts), and the
				// resumed migration shows it before its fetchers open the buffers.
				var kept BufferedOplog
				deadline := time.Now().Add(time.Minute)
				for kept.Bytes < 3<<20 || kept.Entries < 40 {
					if time.Now().After(deadline) {
						t.Fatalf("the checkpoint of %s keeps its buffer as %+v a minute after the burst: want its 40 entries of 100 KiB at least", rolled, kept)
					}
					time.Sleep(100 * time.Millisecond)
					_, saved, err := cp.Load()
					if err != nil {
						t.Fatal(err)
					}
					for _, c := range saved {
						if c.Shard == rolled {
							kept = c.Buffered
						}
					}
				}
				if err := r.kill(); !errors.Is(err, context.Canceled) {
					t.Fatalf("kill: %v", err)
				}
				m = migration()
				for _, p := range m.Snapshot().Shards {
					if p.Name == rolled && (p.Buffer == nil || p.Buffer.Held() == "") {
						t.Fatalf("resumed, %s's row shows no buffer before its fetcher runs: %+v", rolled, p.Buffer)
					}
				}
				r = run(m, StartOptions{})
			}
			close(held.release)

			if !buffered {
				s := await(t, m, 3*time.Minute, "failed shard "+rolled, func(s Snapshot) bool {
					return anyShard(s, func(p ShardProgress) bool { return p.Name == rolled && p.Phase == ShardFailed })
				})
				for _, p := range s.Shards {
					if p.Name == rolled && !strings.Contains(p.Error, "no longer reaches back to") {
						t.Fatalf("shard %s failed with %q, want the oplog gap", p.Name, p.Error)
					}
				}
				if err := r.kill(); !errors.Is(err, context.Canceled) {
					t.Fatalf("kill: %v", err)
				}
				return
			}
			s := await(t, m, 8*time.Minute, "ready", func(s Snapshot) bool {
				if anyShard(s, func(p ShardProgress) bool { return p.Phase == ShardFailed }) {
					t.Fatalf("a shard failed: %+v", s.Shards)
				}
				return s.State == Ready
			})
			for _, p := range s.Shards {
				t.Logf("shard %s: %s", p.Name, p.Buffer)
			}
			s = e.finish(m)
			if err := <-r.done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if s.State != Done || !s.Verification.OK() {
				t.Fatalf("state %s verification %+v", s.State, s.Verification)
			}
			t.Logf("%d documents equal on both sides", e.sameEverything())
			if _, err := os.Stat(cfg.OplogBufferDir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the oplog buffers outlived the migration: %v", err)
			}
		})
	}
}
