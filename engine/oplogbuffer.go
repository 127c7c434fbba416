package engine

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"

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
	m.mu.Lock()
	sh.fetcher = f
	m.mu.Unlock()
	go func() {
		defer close(done)
		defer store.Close()
		if err := f.Run(fctx); err != nil {
			cancel(err)
		}
	}()
	saved := make(chan struct{})
	go func() {
		defer close(saved)
		m.saveBufferSize(fctx, sh)
	}()
	stop = func() {
		cancel(nil)
		<-done
		<-saved
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

// stampBuffer records in a shard's next checkpoint what its running fetcher's
// buffer holds (kept as it was when none runs).
func (m *Migration) stampBuffer(sh *shardState, next *ShardCheckpoint) {
	m.mu.Lock()
	f := sh.fetcher
	m.mu.Unlock()
	if f != nil {
		p := f.Snapshot()
		next.Buffered = BufferedOplog{Bytes: p.Bytes, Entries: p.Entries}
	}
}

// bufferSaveEvery is how often a shard's checkpoint takes what its buffer holds
// when nothing else saved it (a copy or replay that waits): the size a resumed
// migration shows before its fetcher opens the buffer.
const bufferSaveEvery = 5 * time.Second

// saveBufferSize saves the shard's checkpoint whenever its buffer changed since
// the checkpoint last took it, until ctx ends.
func (m *Migration) saveBufferSize(ctx context.Context, sh *shardState) {
	tick := time.NewTicker(bufferSaveEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		m.mu.Lock()
		f, last := sh.fetcher, sh.buffered
		m.mu.Unlock()
		if f == nil {
			continue
		}
		if p := f.Snapshot(); (BufferedOplog{Bytes: p.Bytes, Entries: p.Entries}) == last {
			continue
		}
		if err := m.saveShard(sh, func(*ShardCheckpoint) {}); err != nil {
			m.log.Warn("oplog buffer: save its size in the checkpoint", "shard", sh.name, "err", err)
		}
	}
}

// bufferRow is a shard's buffer for its progress row: its fetcher's, else what the
// checkpoint last saved of it (a resumed migration, before its fetcher opens the
// buffer). Called with Migration.mu held.
func (sh *shardState) bufferRow(row *ShardProgress) {
	if sh.fetcher == nil {
		if sh.buffered != (BufferedOplog{}) {
			row.Buffer = &OplogBuffer{Bytes: sh.buffered.Bytes, Entries: sh.buffered.Entries}
		}
		return
	}
	p := sh.fetcher.Snapshot()
	row.Buffer = &OplogBuffer{Bytes: p.Bytes, Limit: p.Limit, Entries: p.Entries, Full: p.Full}
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

// Held says what the buffer holds, "buffered 1.2 GiB (340,000 entries)", "" when
// nothing (for the shard row).
func (b *OplogBuffer) Held() string {
	if b == nil || (b.Bytes == 0 && b.Entries == 0) {
		return ""
	}
	return b.held()
}

func (b *OplogBuffer) held() string {
	return fmt.Sprintf("buffered %s (%s entries)", units.Bytes(b.Bytes), humanize.Comma(b.Entries))
}

// String says in a few words how far a shard's buffer is, for the CLI line.
func (b *OplogBuffer) String() string {
	if b == nil {
		return ""
	}
	s := b.held()
	if b.Limit > 0 {
		s += " of " + units.Bytes(b.Limit)
	}
	if !b.FetchedUpTo.IsZero() {
		s += ", fetched to " + b.FetchedUpTo.Format("15:04:05")
	}
	return s
}
