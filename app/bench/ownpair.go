package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox"
)

// ownPair is the source and destination sandboxes a figure starts for itself, in
// a temporary folder (where the figure keeps its other files too), with a client
// of the source.
type ownPair struct {
	dir      string
	src, dst *sandbox.Cluster
	srcC     *mongo.Client
}

// startOwnPair starts a source and a destination sandbox, each with opts (Dir set
// to a folder of its own), in a temporary folder named after figure, and connects
// to the source. On an error it stops what it started; otherwise stop ends it all.
// logf tells a cluster that fails to stop.
func startOwnPair(ctx context.Context, figure string, opts sandbox.Options, logf func(string, ...any)) (*ownPair, error) {
	dir, err := os.MkdirTemp("", "shardlift-bench-"+figure+"-")
	if err != nil {
		return nil, err
	}
	p := &ownPair{dir: dir}
	for _, name := range []string{"source", "destination"} {
		o := opts
		o.Dir = filepath.Join(dir, name)
		c, err := sandbox.Start(ctx, name, o)
		if err != nil {
			p.stop(ctx, logf)
			return nil, fmt.Errorf("start the %s sandbox: %w", name, err)
		}
		if p.src == nil {
			p.src = c
		} else {
			p.dst = c
		}
	}
	if p.srcC, err = topology.Connect(ctx, topology.Endpoint{URI: p.src.URI(), Timeout: time.Minute}); err != nil {
		p.stop(ctx, logf)
		return nil, fmt.Errorf("connect to the source: %w", err)
	}
	return p, nil
}

// stop disconnects from the source, stops both sandboxes and removes the folder.
func (p *ownPair) stop(ctx context.Context, logf func(string, ...any)) {
	if p.srcC != nil {
		p.srcC.Disconnect(context.WithoutCancel(ctx))
	}
	for _, c := range []*sandbox.Cluster{p.src, p.dst} {
		if c == nil {
			continue
		}
		if err := c.Close(); err != nil {
			logf("stop a sandbox cluster: %v", err)
		}
	}
	os.RemoveAll(p.dir)
}
