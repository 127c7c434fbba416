package sysdb

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/release"
)

// The uid of an unauthenticated session, as a real config.system.sessions record
// quoted in DOCS-13583 shows it.
func TestSessionUIDIsTheSHA256OfTheUser(t *testing.T) {
	if got := base64.StdEncoding.EncodeToString(SessionUID("").Data); got != "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=" {
		t.Errorf("uid without a user: %s", got)
	}
	if a, b := SessionUID("dba"), SessionUID(""); string(a.Data) == string(b.Data) || len(a.Data) != 32 {
		t.Error("a user's uid is not its own SHA-256")
	}
}

func TestIndexSpecsCarryNsUntil44(t *testing.T) {
	c := Collection{DB: "config", Name: "chunks", Indexes: []bson.D{Index(bson.D{{Key: "ns", Value: 1}}, "ns_1")}}
	old, now := c.IndexSpecs(release.V42), c.IndexSpecs(release.V44)
	if len(old) != 2 || Raw(old[1]).Lookup("ns").StringValue() != "config.chunks" || Raw(old[0]).Lookup("name").StringValue() != "_id_" {
		t.Errorf("4.2 index specs: %v", old)
	}
	if _, err := Raw(now[1]).LookupErr("ns"); err == nil {
		t.Errorf("4.4 index specs carry ns: %v", now)
	}
	if entry := Raw(c.ListEntry(release.V70, false)); entry.Lookup("idIndex", "name").StringValue() != "_id_" || entry.Lookup("type").StringValue() != "collection" {
		t.Errorf("listCollections entry %s", entry)
	}
}

func TestNodeDocuments(t *testing.T) {
	started := time.Date(2020, 9, 23, 2, 41, 55, 821e6, time.UTC)
	n := Node{Release: release.V44, Host: "127.0.0.1:27018", SetName: "rs0", ClusterRole: "shardsvr", Started: started}
	log := Raw(n.StartupLog())
	if id := log.Lookup("_id").StringValue(); !strings.HasSuffix(id, "-1600828915821") {
		t.Errorf("startup_log _id %q, want <hostname>-<ms>", id)
	}
	if got := log.Lookup("startTime").Time(); !got.Equal(started.Truncate(time.Second)) {
		t.Errorf("startTime %v", got)
	}
	cfg44 := Raw(n.ReplSetConfig())
	if cfg44.Lookup("term").Type == 0 || cfg44.Lookup("members").Array().Index(0).Value().Document().Lookup("slaveDelay").Type == 0 {
		t.Errorf("4.4 replica set config %s", cfg44)
	}
	n.Release = release.V50
	if m := Raw(n.ReplSetConfig()).Lookup("members").Array().Index(0).Value().Document(); m.Lookup("secondaryDelaySecs").Type == 0 || m.Lookup("slaveDelay").Type != 0 {
		t.Errorf("5.0 member %s", m)
	}
	n.Release = release.V42
	if Raw(n.ReplSetConfig()).Lookup("term").Type != 0 {
		t.Error("a 4.2 replica set config has a term")
	}
}
