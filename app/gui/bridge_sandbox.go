package gui

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
	"github.com/shardlift/shardlift/sandbox/wire"
	"github.com/shardlift/shardlift/ui"
)

// "Try with sandbox clusters": two local sandbox clusters owned by the bridge,
//
//	start source, destination (SCRAM user with a generated password, TLS with their CAs)
//	  ─► seed the source (a small data set) ─► write load in the background
//	  ─► the two ui.Connection values that fill the forms
//
// They run until the app exits (bridge.Close). The load stands for the applications:
// it stops when a migration from the sandbox starts its cutover.

// sandboxUser is the sandbox's SCRAM user; its password is generated at each start.
const sandboxUser = "shardlift"

// sandboxOptions shape the sandbox of "Try with sandbox clusters".
type sandboxOptions struct {
	Shards int  // per cluster (2)
	Docs   int  // seeded into the source (5,000)
	Rate   int  // writes per second of the load (20)
	NoTLS  bool // serve plain TCP instead of TLS
}

func (o sandboxOptions) withDefaults() sandboxOptions {
	if o.Shards <= 0 {
		o.Shards = 2
	}
	if o.Docs <= 0 {
		o.Docs = 5000
	}
	if o.Rate <= 0 {
		o.Rate = 20
	}
	return o
}

// sandboxPair is the running sandbox.
type sandboxPair struct {
	src, dst *sandbox.Cluster
	client   *mongo.Client // on the source router, for the load
	password string
	stats    load.Stats
	stopLoad context.CancelFunc
	loadDone chan struct{}
}

func (b *bridge) sandboxPair() *sandboxPair {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mu.sandbox
}

// StartSandbox implements ui.Backend. A second call returns the running sandbox.
func (b *bridge) StartSandbox(ctx context.Context) (src, dst ui.Connection, err error) {
	b.sandboxMu.Lock()
	defer b.sandboxMu.Unlock()
	if p := b.sandboxPair(); p != nil {
		src, dst = p.connections()
		return src, dst, nil
	}
	began := time.Now()
	var raw [12]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return src, dst, fmt.Errorf("make the sandbox password: %w", err)
	}
	p := &sandboxPair{password: hex.EncodeToString(raw[:])}
	b.secrets.Add(p.password)
	ok := false
	defer func() {
		if !ok {
			if cerr := p.close(b.log); cerr != nil {
				b.log.Warn("stop the sandbox that did not start", "err", cerr)
			}
		}
	}()
	creds := &wire.Credentials{User: sandboxUser, Password: p.password}
	// The sandbox's own logs go to the app's log from warnings up: its start-up
	// lines would crowd the migration's out of the diagnostics.
	quiet := slog.New(minLevel{h: b.log.Handler(), min: slog.LevelWarn})
	for _, side := range []struct {
		name string
		c    **sandbox.Cluster
	}{{"source", &p.src}, {"destination", &p.dst}} {
		c, err := sandbox.Start(ctx, side.name, sandbox.Options{
			Shards: b.sbOpts.Shards, Auth: creds, TLS: !b.sbOpts.NoTLS, Logger: quiet.With("sandbox", side.name),
		})
		if err != nil {
			return src, dst, fmt.Errorf("start the %s sandbox cluster: %w", side.name, err)
		}
		*side.c = c
	}
	if p.client, err = p.src.Connect(ctx); err != nil {
		return src, dst, fmt.Errorf("connect to the source sandbox cluster: %w", err)
	}
	sum, err := seed.Populate(ctx, p.client, b.sbOpts.Docs, mrand.New(mrand.NewPCG(seed.Source[0], seed.Source[1])))
	if err != nil {
		return src, dst, fmt.Errorf("seed the source sandbox cluster: %w", err)
	}
	loadCtx, stopLoad := context.WithCancel(b.ctx)
	p.stopLoad, p.loadDone = stopLoad, make(chan struct{})
	rate := b.sbOpts.Rate
	b.mu.Lock()
	if b.mu.closed {
		b.mu.Unlock()
		stopLoad()
		return src, dst, errors.New("Shardlift is closing")
	}
	b.mu.sandbox = p
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(p.loadDone)
		err := load.Run(loadCtx, p.client, rate, mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 0)), &p.stats)
		if err != nil && loadCtx.Err() == nil {
			b.log.Warn("the sandbox write load stopped", "err", err)
		}
	}()
	b.mu.Unlock()
	ok = true
	b.log.Info("sandbox clusters started", "source", p.src.RouterAddr(), "destination", p.dst.RouterAddr(),
		"docs", sum.Docs(), "collections", len(sum.Collections), "load", fmt.Sprintf("%d writes/s", rate),
		"elapsed", time.Since(began).Round(time.Millisecond))
	src, dst = p.connections()
	return src, dst, nil
}

// connections are what the forms are filled with.
func (p *sandboxPair) connections() (src, dst ui.Connection) {
	conn := func(c *sandbox.Cluster) ui.Connection {
		return ui.Connection{Hosts: c.RouterAddr(), Username: sandboxUser, Password: p.password, TLS: c.CAFile() != "", CAFile: c.CAFile()}
	}
	return conn(p.src), conn(p.dst)
}

// isSandboxSource reports whether e is this process's sandbox source router.
func (b *bridge) isSandboxSource(e topology.Endpoint) bool {
	p := b.sandboxPair()
	return p != nil && p.src != nil && slices.Contains(e.Hosts, p.src.RouterAddr())
}

// stopSandboxLoad stops the sandbox's write load and waits for its writes in flight.
func (b *bridge) stopSandboxLoad(why string) {
	p := b.sandboxPair()
	if p == nil || p.stopLoad == nil {
		return
	}
	p.stopLoad()
	<-p.loadDone
	b.log.Info("sandbox write load stopped: "+why, "writes", p.stats.String())
}

// close stops the load and both clusters; parts that did not start are skipped.
func (p *sandboxPair) close(log *slog.Logger) error {
	var errs []error
	if p.stopLoad != nil {
		p.stopLoad()
		<-p.loadDone
	}
	if p.client != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.client.Disconnect(ctx)
	}
	for _, c := range []*sandbox.Cluster{p.src, p.dst} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	log.Info("sandbox clusters stopped")
	return errors.Join(errs...)
}

// minLevel passes on the records of h from min up.
type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min}
}
func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h: m.h.WithGroup(name), min: m.min}
}
