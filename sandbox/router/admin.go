package router

import (
	"context"
	"os"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

func (r *Router) serverStatus(context.Context, *wire.Session, *wire.Command) (bson.Raw, error) {
	host, _ := os.Hostname()
	up := time.Since(r.started)
	return wire.OK(
		bson.E{Key: "host", Value: host},
		bson.E{Key: "version", Value: r.cfg.Identity.Version},
		bson.E{Key: "process", Value: "mongos"},
		bson.E{Key: "pid", Value: int64(os.Getpid())},
		bson.E{Key: "uptime", Value: up.Seconds()},
		bson.E{Key: "uptimeMillis", Value: up.Milliseconds()},
		bson.E{Key: "uptimeEstimate", Value: int64(up.Seconds())},
		bson.E{Key: "localTime", Value: time.Now()},
		bson.E{Key: "sharding", Value: shardingSection(r.cat)},
	), nil
}

func (r *Router) getShardMap(context.Context, *wire.Session, *wire.Command) (bson.Raw, error) {
	m, hosts, conn := bson.D{}, bson.D{}, bson.D{}
	for _, s := range r.cat.Shards() {
		if s.ID == "config" {
			continue // a config shard: listed once, as the config server, below
		}
		m = append(m, bson.E{Key: s.ID, Value: s.Host})
		conn = append(conn, bson.E{Key: s.Host, Value: s.ID})
		_, addrs, _ := strings.Cut(s.Host, "/")
		for _, a := range strings.Split(addrs, ",") {
			hosts = append(hosts, bson.E{Key: a, Value: s.ID})
		}
	}
	cfgString := r.cat.ConfigServers()
	m = append(m, bson.E{Key: "config", Value: cfgString})
	conn = append(conn, bson.E{Key: cfgString, Value: "config"})
	cfgHosts := cfgString
	if _, after, ok := strings.Cut(cfgHosts, "/"); ok {
		cfgHosts = after
	}
	for _, a := range strings.Split(cfgHosts, ",") {
		hosts = append(hosts, bson.E{Key: a, Value: "config"})
	}
	return wire.OK(
		bson.E{Key: "map", Value: m},
		bson.E{Key: "hosts", Value: hosts},
		bson.E{Key: "connStrings", Value: conn},
	), nil
}

func (r *Router) listShards(context.Context, *wire.Session, *wire.Command) (bson.Raw, error) {
	arr := bson.A{}
	for _, s := range r.cat.Shards() {
		arr = append(arr, renderShard(r.cat.Release(), s))
	}
	return wire.OK(bson.E{Key: "shards", Value: arr}), nil
}

func (r *Router) balancerStart(context.Context, *wire.Session, *wire.Command) (bson.Raw, error) {
	if err := r.cat.SetBalancer(true); err != nil {
		return nil, err
	}
	r.log.Info("balancer started")
	return wire.OK(), nil
}

func (r *Router) balancerStop(context.Context, *wire.Session, *wire.Command) (bson.Raw, error) {
	if err := r.cat.SetBalancer(false); err != nil {
		return nil, err
	}
	r.log.Info("balancer stopped")
	return wire.OK(), nil
}

// balancerStatus reports the setting; the sandbox's balancer never runs a round
// (chunks move only by moveChunk), so inBalancerRound is always false.
func (r *Router) balancerStatus(context.Context, *wire.Session, *wire.Command) (bson.Raw, error) {
	b := r.cat.Balancer()
	return wire.OK(
		bson.E{Key: "mode", Value: b.Mode},
		bson.E{Key: "inBalancerRound", Value: false},
		bson.E{Key: "numBalancerRounds", Value: int64(0)},
	), nil
}

func (r *Router) enableSharding(_ context.Context, _ *wire.Session, cmd *wire.Command) (bson.Raw, error) {
	db, ok := cmd.Lookup(cmd.Name).StringValueOK()
	if !ok {
		return nil, wire.BadValue("enableSharding takes a database name")
	}
	primary, _ := cmd.Lookup("primaryShard").StringValueOK()
	if err := checkWritable(db); err != nil {
		return nil, err
	}
	if _, err := r.cat.EnableSharding(db, primary); err != nil {
		return nil, err
	}
	return wire.OK(), nil
}
