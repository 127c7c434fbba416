package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Shard names one shard front the router talks to.
type Shard struct {
	Name string // shard name, e.g. "source-shard0"
	Addr string // host:port of its primary
	// SetName is its replica set's name when it differs from Name (the config shard).
	SetName string
	// Members are its replica set members' host:port when it has more than one (Addr
	// is one of them): the router then follows the set's primary, as a mongos does.
	Members []string
}

// Host is the shard's host string as config.shards and listShards show it.
func (s Shard) Host() string {
	hosts := s.Addr
	if len(s.Members) > 0 {
		hosts = strings.Join(s.Members, ",")
	}
	return s.setName() + "/" + hosts
}

func (s Shard) setName() string {
	if s.SetName != "" {
		return s.SetName
	}
	return s.Name
}

// backend is the router's driver client for one shard.
type backend struct {
	Shard
	client *mongo.Client
}

func connectBackend(s Shard, base func() *options.ClientOptions) (*backend, error) {
	opts := options.Client()
	if base != nil {
		opts = base()
	}
	if len(s.Members) > 1 {
		opts.SetHosts(s.Members).SetReplicaSet(s.setName())
	} else {
		opts.SetHosts([]string{s.Addr}).SetDirect(true)
	}
	opts.SetRetryWrites(false).
		SetRetryReads(false).
		SetServerSelectionTimeout(2 * time.Second).
		SetConnectTimeout(2 * time.Second).
		SetAppName(wire.RouterAppName)
	c, err := mongo.Connect(context.Background(), opts)
	if err != nil {
		return nil, fmt.Errorf("connect to shard %s at %s: %w", s.Name, s.Addr, err)
	}
	return &backend{Shard: s, client: c}, nil
}

// run sends a command to the shard and returns its reply. A reply with ok: 0 is
// returned as the error (a mongo.CommandError keeping the shard's code); a failure
// to reach the shard becomes a wire.Error naming it.
func (b *backend) run(ctx context.Context, db string, cmd any) (bson.Raw, error) {
	raw, err := b.client.Database(db).RunCommand(ctx, cmd).Raw()
	if b.primaryChanged(err) {
		raw, err = b.client.Database(db).RunCommand(ctx, cmd).Raw()
	}
	var we mongo.WriteException
	if errors.As(err, &we) && len(raw) > 0 {
		// Write errors are part of a write command's reply, not a failure of it:
		// the router reports them per statement.
		return raw, nil
	}
	if err != nil {
		return raw, b.classify(err)
	}
	return raw, nil
}

// cursor runs a cursor-returning command (find, aggregate, listCollections...).
func (b *backend) cursor(ctx context.Context, db string, cmd any) (*mongo.Cursor, error) {
	c, err := b.client.Database(db).RunCommandCursor(ctx, cmd)
	if b.primaryChanged(err) {
		c, err = b.client.Database(db).RunCommandCursor(ctx, cmd)
	}
	if err != nil {
		return nil, b.classify(err)
	}
	return c, nil
}

// all runs a cursor command and reads every document.
func (b *backend) all(ctx context.Context, db string, cmd any) ([]bson.Raw, error) {
	c, err := b.cursor(ctx, db, cmd)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var out []bson.Raw
	for c.Next(ctx) {
		out = append(out, copyRaw(c.Current))
	}
	if err := c.Err(); err != nil {
		return nil, b.classify(err)
	}
	return out, nil
}

// primaryChanged reports an error by which a replica set shard's member says it is no
// longer primary (a stepdown): it changed nothing, and a mongos sends the command
// again, to the new primary the driver finds through hello.
func (b *backend) primaryChanged(err error) bool {
	var ce mongo.CommandError
	if len(b.Members) < 2 || !errors.As(err, &ce) {
		return false
	}
	switch ce.Code {
	case 10107, 13435, 13436, 11602, 189: // NotWritablePrimary, NotPrimaryNoSecondaryOk, NotPrimaryOrSecondary, InterruptedDueToReplStateChange, PrimarySteppedDown
		return true
	}
	return false
}

// classify turns a driver error into what mongos would answer: the shard's own
// command error unchanged, or a network failure as HostUnreachable /
// NetworkInterfaceExceededTimeLimit with the shard's name, so a DBA sees which
// shard is down.
func (b *backend) classify(err error) error {
	var ce mongo.CommandError
	if errors.As(err, &ce) && !ce.HasErrorLabel("NetworkError") {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	if mongo.IsTimeout(err) || errors.Is(err, context.DeadlineExceeded) {
		return &wire.Error{Code: 202, Name: "NetworkInterfaceExceededTimeLimit",
			Msg: fmt.Sprintf("shard %s (%s) did not answer in time: %v", b.Name, b.Addr, err)}
	}
	return &wire.Error{Code: 6, Name: "HostUnreachable",
		Msg: fmt.Sprintf("shard %s (%s) is unreachable: %v", b.Name, b.Addr, err)}
}

// isCode reports whether err is a server error with the given code.
func isCode(err error, code int32) bool {
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return ce.Code == code
	}
	var we *wire.Error
	return errors.As(err, &we) && we.Code == code
}

const codeNamespaceNotFound = 26
