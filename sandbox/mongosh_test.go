package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/release"
)

// A real client accepts every personality: mongosh runs the shell helpers a DBA
// starts with against the router and a shard, and what they print shows the
// release's shards, chunks, balancer state and FCV.
//
// `make deps-test` installs mongosh under /opt/shardlift-tools: 2.12.0, and 1.10.6
// for the releases before 4.4, which mongosh 2.12's driver refuses (it needs wire
// version 9) as it refuses real servers of those releases. `make test` checks 3.6,
// 7.0 and 8.0; `make test-matrix` (SHARDLIFT_MONGOSH_ALL=1) every release.

const mongoshTools = "/opt/shardlift-tools"

// mongoshFor is the mongosh that speaks to a release: $SHARDLIFT_MONGOSH (2.x) or
// $SHARDLIFT_MONGOSH_LEGACY (1.x, before 4.4) when set, else the installed one.
func mongoshFor(t *testing.T, version string) string {
	t.Helper()
	env, pinned := "SHARDLIFT_MONGOSH", "mongosh-2.12.0"
	if !atLeast(version, "4.4") {
		env, pinned = "SHARDLIFT_MONGOSH_LEGACY", "mongosh-1.10.6"
	}
	path := os.Getenv(env)
	if path == "" {
		path = filepath.Join(mongoshTools, pinned, "bin", "mongosh")
	}
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("no %s at %s: run `make deps-test` (or set %s)", pinned, path, env)
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and " + msg)
		}
		t.Skip(msg)
	}
	return path
}

// mongoshRun runs a script and returns what it printed; an error thrown (mongosh
// stops there) or printed is returned with that output.
func mongoshRun(bin, home, uri, script string) (string, error) {
	cmd := exec.Command(bin, "--quiet", "--norc", uri, "--eval", script)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mongosh %s: %v\n%s", uri, err, out.String())
	}
	if strings.Contains(out.String(), "Error") {
		return "", fmt.Errorf("mongosh %s printed an error:\n%s", uri, out.String())
	}
	return out.String(), nil
}

// section is what the script printed between "### name" and the next "### ".
func section(out, name string) string {
	_, after, ok := strings.Cut(out, "### "+name+"\n")
	if !ok {
		return ""
	}
	body, _, _ := strings.Cut(after, "### ")
	return body
}

const routerScript = `
print("### sh.status"); print(sh.status());
print("### listShards"); printjson(db.adminCommand({listShards: 1}));
print("### show dbs"); print(show("dbs"));
`

const shardScript = `
print("### rs.status"); print(rs.status());
print("### rs.printReplicationInfo"); print(rs.printReplicationInfo());
print("### fcv"); print(db.adminCommand({getParameter: 1, featureCompatibilityVersion: 1}));
`

func TestMongoshAcceptsEveryPersonality(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster per release and runs mongosh")
	}
	versions := []string{"3.6", "7.0", "8.0"}
	if os.Getenv("SHARDLIFT_MONGOSH_ALL") == "1" {
		versions = nil
		for _, p := range personalities {
			versions = append(versions, p.version)
		}
	}
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			bin := mongoshFor(t, v)
			rel, _ := release.Parse(v)
			c := startCluster(t, Options{MongoDBVersion: v})
			shards := c.Shards()
			cl := routerClient(t, c)
			ctx := context.Background()
			// app.items: two chunks, one moved to the second shard; the balancer stopped.
			for _, cmd := range []bson.D{
				{{Key: "enableSharding", Value: "app"}},
				{{Key: "shardCollection", Value: "app.items"}, {Key: "key", Value: bson.D{{Key: "k", Value: 1}}}},
				{{Key: "split", Value: "app.items"}, {Key: "middle", Value: bson.D{{Key: "k", Value: 10}}}},
				{{Key: "moveChunk", Value: "app.items"}, {Key: "find", Value: bson.D{{Key: "k", Value: 20}}}, {Key: "to", Value: shards[1].Name}},
				{{Key: "balancerStop", Value: 1}},
			} {
				run(t, cl, "admin", cmd)
			}
			if _, err := cl.Database("app").Collection("items").InsertMany(ctx, []any{bson.D{{Key: "k", Value: 1}}, bson.D{{Key: "k", Value: 50}}}); err != nil {
				t.Fatal(err)
			}

			var shardOut string
			var shardErr error
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				shardOut, shardErr = mongoshRun(bin, t.TempDir(), "mongodb://"+shards[0].Addr+"/?directConnection=true", shardScript)
			}()
			routerOut, routerErr := mongoshRun(bin, t.TempDir(), c.URI(), routerScript)
			wg.Wait()
			if routerErr != nil || shardErr != nil {
				t.Fatalf("on %s:\n%v\n%v", v, routerErr, shardErr)
			}
			t.Logf("mongosh on the %s router:\n%s\nmongosh on shard %s:\n%s", v, routerOut, shards[0].Name, shardOut)

			status := section(routerOut, "sh.status")
			for _, want := range []string{
				"host: '" + shards[0].Host + "'", "host: '" + shards[1].Host + "'", // the shards
				"'" + rel.Version() + "': 1", // the active mongos
				"'Currently enabled': 'no'",  // the balancer, stopped
				"'Migration Results for the last 24 hours': { '1': 'Success' }",
				"'app.items': {", "shardKey: { k: 1 }",
				"{ shard: '" + shards[0].Name + "', nChunks: 1 }", "{ shard: '" + shards[1].Name + "', nChunks: 1 }",
				"min: { k: MinKey() }, max: { k: 10 }, 'on shard': '" + shards[0].Name + "'",
				"min: { k: 10 }, max: { k: MaxKey() }, 'on shard': '" + shards[1].Name + "'",
			} {
				if !strings.Contains(status, want) {
					t.Errorf("sh.status() on %s lacks %q", v, want)
				}
			}
			if ls := section(routerOut, "listShards"); !strings.Contains(ls, shards[0].Host) || !strings.Contains(ls, shards[1].Host) {
				t.Errorf("listShards on %s lacks the shards", v)
			}
			if dbs := section(routerOut, "show dbs"); !strings.Contains(dbs, "\napp ") || !strings.Contains(dbs, "config ") {
				t.Errorf("show dbs on %s gave %q", v, dbs)
			}
			if rs := section(shardOut, "rs.status"); !strings.Contains(rs, "set: '"+shards[0].Name+"'") || !strings.Contains(rs, "stateStr: 'PRIMARY'") {
				t.Errorf("rs.status() on %s lacks the set or its primary", v)
			}
			if repl := section(shardOut, "rs.printReplicationInfo"); !strings.Contains(repl, "configured oplog size") || !strings.Contains(repl, "oplog last event time") {
				t.Errorf("rs.printReplicationInfo() on %s gave %q", v, repl)
			}
			if fcv := section(shardOut, "fcv"); !strings.Contains(fcv, "featureCompatibilityVersion: { version: '"+v+"' }") {
				t.Errorf("the FCV on %s: %q", v, fcv)
			}
		})
	}
}
