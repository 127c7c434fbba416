package sandbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// The router follows a shard's stepdown as a mongos does, and the shards are listed
// with all their members.
func TestRouterFollowsAShardStepDown(t *testing.T) {
	c := startCluster(t, Options{Shards: 1, Members: 3})
	sh := c.Shards()[0]
	if got := strings.Count(sh.Host, ","); got != 2 {
		t.Errorf("shard host %q, want its 3 members", sh.Host)
	}
	cl := routerClient(t, c)
	ctx := context.Background()
	coll := cl.Database("app").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	rep, err := c.StepDown(sh.Name, false)
	if err != nil {
		t.Fatal(err)
	}
	if rep.NewPrimary == sh.Addr {
		t.Fatalf("stepdown report %+v: the primary did not change", rep)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatalf("insert through the router after the stepdown: %v", err)
	}
	if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 2 {
		t.Errorf("count after the stepdown: %d (%v), want 2", n, err)
	}
	ms, err := c.ShardMembers(sh.Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if (m.Addr == rep.NewPrimary) != (m.State == "PRIMARY") {
			t.Errorf("member %+v after the stepdown to %s", m, rep.NewPrimary)
		}
	}
}

// The control API steps a shard down, lags it, stops and starts it, and says what it did.
func TestControlAPIDrivesTheFaultHooks(t *testing.T) {
	c := startCluster(t, Options{Shards: 1, Members: 3})
	srv := httptest.NewServer(Control(map[string]*Cluster{"source": c}))
	defer srv.Close()
	sh := c.Shards()[0]
	post := func(path string, wantStatus int) map[string]any {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != wantStatus {
			t.Fatalf("POST %s: %d %s, want %d", path, resp.StatusCode, body, wantStatus)
		}
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("POST %s: %v in %s", path, err, body)
		}
		return out
	}
	base := "/source/shards/" + sh.Name
	cl := routerClient(t, c)
	// The collection exists before the drill: the sandbox does not roll back DDL.
	if err := cl.Database("app").CreateCollection(context.Background(), "c"); err != nil {
		t.Fatal(err)
	}
	waitLevel(t, c, sh.Name)
	out := post(base+"/lag?seconds=-1", http.StatusOK)
	if out["action"] != "lag" {
		t.Errorf("lag answered %v", out)
	}
	if _, err := cl.Database("app").Collection("c").InsertOne(context.Background(), bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	out = post(base+"/stepdown?rollback=true", http.StatusOK)
	result, _ := out["result"].(map[string]any)
	if result["rolledBack"].(float64) < 1 {
		t.Errorf("stepdown with rollback answered %v: the held insert should be rolled back", out)
	}
	if n, err := cl.Database("app").Collection("c").CountDocuments(context.Background(), bson.D{}); err != nil || n != 0 {
		t.Errorf("after the rollback the cluster counts %d (%v), want 0", n, err)
	}
	post(base+"/lag?seconds=0", http.StatusOK)
	if out := post(base+"/stop", http.StatusOK); out["state"] != "stopped" {
		t.Errorf("stop answered %v", out)
	}
	if out := post(base+"/start", http.StatusOK); out["members"] == nil || out["note"] != nil {
		t.Errorf("start answered %v", out)
	}
	if out := post(base+"/start", http.StatusOK); out["note"] == nil {
		t.Errorf("start on a running shard answered %v, want a note that nothing changed", out)
	}
	if out := post("/source/shards/nope/stepdown", http.StatusNotFound); !strings.Contains(out["error"].(string), sh.Name) {
		t.Errorf("an unknown shard: %v, want the shards named", out)
	}
	if out := post(base+"/lag", http.StatusBadRequest); !strings.Contains(out["error"].(string), "seconds") {
		t.Errorf("lag without seconds: %v", out)
	}
}

// mongosh's rs.status() shows a 3-member shard's set from its primary and a secondary.
func TestMongoshShowsAThreeMemberSet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mongosh")
	}
	bin := mongoshFor(t, "7.0")
	c := startCluster(t, Options{Shards: 1, Members: 3})
	ms, err := c.ShardMembers(c.Shards()[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms[:2] {
		out, err := mongoshRun(bin, t.TempDir(), "mongodb://"+m.Addr+"/?directConnection=true",
			`print("### rs.status"); print(rs.status()); print("### hello"); print(db.hello());`)
		if err != nil {
			t.Fatal(err)
		}
		status := section(out, "rs.status")
		if strings.Count(status, "stateStr: 'PRIMARY'") != 1 || strings.Count(status, "stateStr: 'SECONDARY'") != 2 {
			t.Errorf("rs.status() on %s (%s) should show 1 primary and 2 secondaries:\n%s", m.Addr, m.State, status)
		}
		for _, other := range ms {
			if !strings.Contains(status, "name: '"+other.Addr+"'") {
				t.Errorf("rs.status() on %s lacks member %s", m.Addr, other.Addr)
			}
		}
		if hello := section(out, "hello"); !strings.Contains(hello, "me: '"+m.Addr+"'") {
			t.Errorf("db.hello() on %s:\n%s", m.Addr, hello)
		}
	}
}

// waitLevel waits until every member of the shard has applied the primary's last entry.
func waitLevel(t *testing.T, c *Cluster, shardName string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms, err := c.ShardMembers(shardName)
		if err != nil {
			t.Fatal(err)
		}
		level := true
		for _, m := range ms {
			level = level && m.Applied.TS == ms[0].Applied.TS
		}
		if level {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the members of %s did not catch up: %+v", shardName, ms)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A secondary builds the indexes its primary built (an index build logged on a
// collection with documents, and on an empty one): after a stepdown the new primary
// serves them. Before, each member's FerretDB refused the logged spec's "v" and the
// new primary listed only _id (fault scenario 9 then found "only on the destination"
// for every index the finalize compared).
func TestIndexesSurviveAStepDown(t *testing.T) {
	c := startCluster(t, Options{Shards: 1, Members: 3})
	sh := c.Shards()[0]
	cl := routerClient(t, c)
	ctx := context.Background()
	full, empty := cl.Database("app").Collection("full"), cl.Database("app").Collection("empty")
	if _, err := full.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}, {Key: "e", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	for _, cc := range []*mongo.Collection{full, empty} {
		if _, err := cc.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "e", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.StepDown(sh.Name, false); err != nil { // the new primary catches up first
		t.Fatal(err)
	}
	for _, cc := range []*mongo.Collection{full, empty} {
		cur, err := cc.Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var specs []bson.M
		if err := cur.All(ctx, &specs); err != nil {
			t.Fatal(err)
		}
		if len(specs) != 2 || specs[1]["name"] != "e_1" || specs[1]["unique"] != true {
			t.Errorf("%s's indexes on the new primary: %v, want _id_ and e_1 (unique)", cc.Name(), specs)
		}
	}
}
