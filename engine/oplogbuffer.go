package engine

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/shardlift/shardlift/engine/oplogbuf"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/internal/units"
)

// bufferOplog starts the shard's oplog fetcher when the migration buffers the
// oplog (Config.OplogBufferDir): from the replay's first entry on, beside the copy
// and the index builds and then ahead of the replay, until stop. The context it
// returns ends when the fetcher fails, with the failure as its cause; buffered is
// the source the replay reads (nil: the source's oplog, without a buffer).
func (m *Migration) bufferOplog(ctx context.Context, c Clusters, sh *shardState, from ReplayStart) (fctx context.Context, buffered replay.Source, stop func(), err error) {
	if m.cfg.OplogBufferDir == "" {
		return ctx, nil, func() {}, nil
	}
	src, err := c.OplogSource(sh.name)
	if err != nil {
		return nil, nil, nil, err
	}
	dir := bufferFolder(m.cfg.OplogBufferDir, sh.name)
	store, opened, err := oplogbuf.Open(dir, oplogbuf.Options{})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("oplog buffer of shard %s (%s): %w", sh.name, dir, err)
	}
	if opened.Dropped > 0 {
		m.log.Warn("oplog buffer: a torn or corrupt tail was cut (a crash in the middle of a write); it is fetched again",
			"shard", sh.name, "bytes", opened.Dropped, "after", tsText(opened.DroppedAt.TS))
	}
	limit := bufferLimit(m.cfg.OplogBufferLimit, store.Size(), dir, len(m.shardList()))
	f, err := replay.NewFetcher(replay.FetcherConfig{
		Shard: sh.name, Source: src, Store: store, Limit: limit, Logger: m.log,
		From: replay.FirstRead(replay.Config{Resume: from.Resume.TS, ResumeTerm: from.Resume.Term, T0: from.T0, TxnStart: from.TxnStart}),
	})
	if err != nil {
		store.Close()
		return nil, nil, nil, err
	}
	fctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer store.Close()
		if err := f.Run(fctx); err != nil {
			cancel(err)
		}
	}()
	m.mu.Lock()
	sh.fetcher = f
	m.mu.Unlock()
	stop = func() {
		cancel(nil)
		<-done
	}
	return fctx, f.Source(), stop, nil
}

// oplogBuffer is each shard's buffer limit as validation judges it: 0 without a
// buffer.
func (c Config) oplogBuffer() int64 {
	if c.OplogBufferDir == "" {
		return 0
	}
	return bufferLimit(c.OplogBufferLimit, 0, c.OplogBufferDir, 1)
}

// removeBuffers deletes the shards' oplog buffers once the migration ended (done or
// cancelled; the sync is stopped, so no fetcher runs): nothing replays them again.
func (m *Migration) removeBuffers() {
	if m.cfg.OplogBufferDir == "" {
		return
	}
	if err := oplogbuf.Remove(m.cfg.OplogBufferDir); err != nil {
		m.log.Warn("the migration ended, but its oplog buffers stay on disk: delete them by hand", "dir", m.cfg.OplogBufferDir, "err", err)
	}
}

// bufferFolder is the folder of one shard's buffer: the shard's name escaped, so
// that any name is one folder.
func bufferFolder(dir, shard string) string {
	return filepath.Join(dir, url.PathEscape(shard))
}

// bufferLimit is a shard's buffer limit: the configured one (or the default),
// at most what it holds plus its share of the free disk, less a tenth kept free.
func bufferLimit(configured, held int64, dir string, shards int) int64 {
	limit := configured
	if limit <= 0 {
		limit = replay.DefaultBufferLimit
	}
	if free, ok := oplogbuf.FreeBytes(dir); ok {
		limit = min(limit, held+free*9/10/int64(max(shards, 1)))
	}
	return max(limit, oplogbuf.DefaultSegmentBytes)
}

// bufferRow is a shard's buffer for its progress row. Called with Migration.mu held.
func (sh *shardState) bufferRow(row *ShardProgress) {
	if sh.fetcher == nil {
		return
	}
	p := sh.fetcher.Snapshot()
	row.Buffer = &OplogBuffer{Bytes: p.Bytes, Limit: p.Limit, Full: p.Full}
	if !p.Fetched.IsZero() {
		row.Buffer.FetchedUpTo = time.Unix(int64(p.Fetched.T), 0).UTC()
	}
	if row.Retrying == "" && p.Retrying != "" {
		row.Retrying = "oplog fetch " + p.Retrying
	}
	if p.Waiting != "" {
		if row.Waiting != "" {
			row.Waiting += "; "
		}
		row.Waiting += p.Waiting
	}
}

// String says in a few words how far a shard's buffer is, for the CLI line.
func (b *OplogBuffer) String() string {
	if b == nil {
		return ""
	}
	s := fmt.Sprintf("buffer %s of %s", units.Bytes(b.Bytes), units.Bytes(b.Limit))
	if !b.FetchedUpTo.IsZero() {
		s += ", fetched to " + b.FetchedUpTo.Format("15:04:05")
	}
	return s
}
