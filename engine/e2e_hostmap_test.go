package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
	"github.com/shardlift/shardlift/sandbox"
)

// Clusters that name their shards and config servers by names only their own network
// resolves (listShards returns them, and each 3-member shard's members report them in
// hello, so the driver's replica set discovery finds only those) cannot be validated
// from here; with the host map the sandbox writes, validation passes and a migration
// ends done and verified. With
// SHARDLIFT_TEST_SOURCE_URI and SHARDLIFT_TEST_DESTINATION_URI set, the map comes from
// SHARDLIFT_TEST_HOST_MAP (a --host-map file), if any.
func TestSandboxPrivateHostnamesMigrateThroughTheHostMap(t *testing.T) {
	var dirs []string
	shape := func(_ string, o *sandbox.Options) {
		o.PrivateHostnames, o.TLS = true, true // TLS: the certificates name the private hosts
		o.Members = 3
		dirs = append(dirs, o.Dir)
	}
	real := os.Getenv(sourceEnv) != "" && os.Getenv(destinationEnv) != ""
	if real {
		shape = nil
	}
	e := startE2EShaped(t, 1500, "", shape)
	var files []string
	for _, d := range dirs {
		files = append(files, filepath.Join(d, "host-map.txt"))
	}
	if f := os.Getenv("SHARDLIFT_TEST_HOST_MAP"); real && f != "" {
		files = []string{f}
	}
	hostMap := topology.HostMap{}
	for _, f := range files {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := topology.ParseHostMap(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			hostMap[k] = v
		}
	}

	if !real {
		// A member reached at its address names itself and its set privately.
		member := e.src.ForHosts([]string{e.srcBox.Shards()[0].Addr}, "")
		client, err := topology.Connect(context.Background(), member)
		if err != nil {
			t.Fatal(err)
		}
		var hello struct {
			Hosts []string `bson:"hosts"`
			Me    string   `bson:"me"`
		}
		err = client.Database("admin").RunCommand(context.Background(), bson.D{{Key: "hello", Value: 1}}).Decode(&hello)
		client.Disconnect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(hello.Hosts) != 3 || !strings.HasSuffix(hello.Me, ".sandbox.invalid:27018") {
			t.Fatalf("hello of a shard member: me %q hosts %q; want three private names", hello.Me, hello.Hosts)
		}
		for _, h := range hello.Hosts {
			if _, mapped := hostMap[h]; !mapped {
				t.Fatalf("hello names %s, which the host map does not map (%v)", h, hostMap)
			}
		}

		// Without the map, validation names a private name it could not resolve and
		// suggests the map.
		r := validate.Run(context.Background(), e.src, e.dst)
		var detail, fix string
		for _, f := range r.Findings {
			if f.Status == validate.Failed && strings.Contains(f.Detail, ".sandbox.invalid") {
				detail, fix = f.Detail, f.Fix
				break
			}
		}
		if !strings.Contains(detail, "does not resolve") || !strings.Contains(fix, "--host-map") {
			t.Fatalf("without the host map: finding %q, fix %q; want the unresolved name and the map suggested", detail, fix)
		}
	}

	e.src.HostMap, e.dst.HostMap = hostMap, hostMap
	// SHARDLIFT_TEST_READ_PREFERENCE runs it reading the source as another mode
	// asks (primary: the copy and the tail on the primaries).
	if rp := os.Getenv("SHARDLIFT_TEST_READ_PREFERENCE"); rp != "" {
		e.src.ReadPreference = rp
	}
	if r := validate.Run(context.Background(), e.src, e.dst); !r.Passed() {
		t.Fatalf("with the host map, validation: %s %+v", r.Summary(), r.Findings)
	}
	e.startLoad(50)
	m := e.migration(newMemCheckpoints("e2e-hostmap"))
	run := run(m, StartOptions{WipeDestination: true})
	// The load runs until every shard replays through the map and it wrote 500 times;
	// then it stops, so that readiness depends on the replay catching up, not on a busy
	// machine's three members per shard outpacing the load.
	await(t, m, 3*time.Minute, "replaying 500 writes", func(s Snapshot) bool {
		replaying := s.State == Ready || !anyShard(s, func(p ShardProgress) bool { return p.Phase != CatchingUp && p.Phase != Synced })
		return replaying && e.stats.Total() >= 500
	})
	e.endLoad()
	await(t, m, 3*time.Minute, "ready", isState(Ready))
	s := e.finish(m)
	if err := <-run.done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if v := s.Verification; s.State != Done || !v.OK() || v.Ranges == 0 || v.Matched != v.Ranges {
		t.Fatalf("state %s verification %+v", s.State, v)
	}
	t.Logf("done and verified through the host map: %d documents compared independently", e.sameData())
}
