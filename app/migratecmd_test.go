package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
	"github.com/shardlift/shardlift/sandbox/wire"
	"github.com/shardlift/shardlift/store"
)

// background runs a command in-process until it returns or its context ends
// (lockedBuffer is sandboxcmd_test.go's).
type background struct {
	out, err lockedBuffer
	cancel   context.CancelFunc
	code     chan int
}

func startCommand(args ...string) *background {
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{cancel: cancel, code: make(chan int, 1)}
	go func() { b.code <- run(ctx, streams{out: &b.out, err: &b.err}, args) }()
	return b
}

func (b *background) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-b.code:
		return code
	case <-time.After(2 * time.Minute):
		t.Fatalf("the command did not return; stdout:\n%s\nstderr:\n%s", b.out.String(), b.err.String())
		return 0
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// apiStatus reads GET /status through the status client.
func apiStatus(t *testing.T, addr string) (api.Status, bool) {
	t.Helper()
	code, out, _ := runCLI(t, "status", "--api", addr)
	var st api.Status
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil {
		return st, false
	}
	return st, true
}

func awaitStatus(t *testing.T, addr, what string, cond func(api.Status) bool) api.Status {
	t.Helper()
	end := time.Now().Add(2 * time.Minute)
	for {
		st, ok := apiStatus(t, addr)
		if ok && cond(st) {
			return st
		}
		if time.Now().After(end) || st.State == "failed" {
			t.Fatalf("never %s: %+v", what, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The headless migration of a sandbox with SCRAM and TLS, a load running: migrate
// with --api, interrupted and resumed, driven to done by the thin clients.
func TestMigrateOnTheSandboxDrivenByTheAPIClients(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: starts two sandbox clusters")
	}
	creds := &wire.Credentials{User: "migrator", Password: "pa55-word"}
	src, dst := startPair(t, creds)
	ctx := context.Background()
	client, err := src.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(ctx)
	if _, err := seed.Populate(ctx, client, 3000, rand.New(rand.NewPCG(1, 2))); err != nil {
		t.Fatal(err)
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var stats load.Stats
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.Run(loadCtx, client, 100, rand.New(rand.NewPCG(3, 4)), &stats) }()
	defer stopLoad()

	// The destination's password comes from the environment, not the URI.
	u, err := url.Parse(dst.URI())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(creds.User)
	t.Setenv(envDestinationPassword, creds.Password)
	state := filepath.Join(t.TempDir(), "state.db")
	addr := freeAddr(t)
	args := []string{"migrate", "--source", src.URI(), "--destination", u.String(), "--state", state,
		"--api", addr, "--progress-every", "500ms", "--source-ca", src.CAFile(), "--destination-ca", dst.CAFile()}

	// Under the load, the interruption and the resume come once every shard
	// replays (ready or not: whether a busy machine outpaces 100 writes/s is not
	// what this test is about).
	replaying := func(s api.Status) bool {
		if len(s.Shards) == 0 || (s.State != "ready" && s.State != "syncing") {
			return false
		}
		for _, sh := range s.Shards {
			if sh.Phase != engine.CatchingUp && sh.Phase != engine.Synced {
				return false
			}
		}
		return true
	}
	first := startCommand(args...)
	awaitStatus(t, addr, "replaying", replaying)
	first.cancel()
	if code := first.wait(t); code != exitFail || !strings.Contains(first.err.String(), "run the same command again to resume") {
		t.Fatalf("interrupted migrate: exit %d\n%s", code, first.err.String())
	}

	second := startCommand(args...)
	awaitStatus(t, addr, "replaying again", replaying)
	for stats.Total() < 300 {
		time.Sleep(50 * time.Millisecond)
	}
	stopLoad()
	<-loadDone
	// Under the load a shard may have fallen behind (the migration is syncing then):
	// without it, every shard catches up.
	st := awaitStatus(t, addr, "every shard in sync", func(s api.Status) bool { return s.State == "ready" && s.CanCutover })
	if st.TimerDeadline == nil || len(st.Shards) != 2 {
		t.Fatalf("status %+v", st)
	}
	if code, out, errOut := runCLI(t, "done", "--api", addr); code != exitFail || !strings.Contains(errOut, "cannot finish the cutover") || !strings.Contains(out, `"state": "ready"`) {
		t.Fatalf("done before the cutover: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "extend", "--api", addr); code != exitOK {
		t.Fatalf("extend: %s", errOut)
	}
	if code, _, errOut := runCLI(t, "cutover", "--api", addr); code != exitOK {
		t.Fatalf("cutover: %s", errOut)
	}
	awaitStatus(t, addr, "closed the optime gap", func(s api.Status) bool { return s.OptimeGapSeconds != nil && *s.OptimeGapSeconds == 0 })
	code, out, errOut := runCLI(t, "done", "--api", addr)
	if code != exitOK || !strings.Contains(out, `"state": "done"`) || !strings.Contains(out, `"ok": true`) {
		t.Fatalf("done: %d\n%s\n%s", code, out, errOut)
	}
	if code := second.wait(t); code != exitOK {
		t.Fatalf("migrate: exit %d\n%s", code, second.err.String())
	}
	all := first.out.String() + first.err.String() + second.out.String() + second.err.String()
	for _, want := range []string{"resuming migration", "ready", "done: the destination is finalized: verified", "users and roles are not migrated"} {
		if !strings.Contains(all, want) {
			t.Errorf("output lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, creds.Password) {
		t.Fatal("a password was printed")
	}
	// The balancer's stop and restore are printed as they happen.
	if !strings.Contains(first.out.String(), "] source balancer stopped\n") {
		t.Errorf("the first run did not print the balancer's stop:\n%s", first.out.String())
	}
	if !strings.Contains(second.out.String(), "] source balancer started again") && !strings.Contains(second.out.String(), "] source balancer left off") {
		t.Errorf("the second run did not print the balancer's restore:\n%s", second.out.String())
	}
	// Both runs write the migration's log next to the state file, and say where first.
	var logPath string
	for i, run := range []*background{first, second} {
		lines := strings.SplitN(run.out.String(), "\n", 3)
		if len(lines) < 2 || !strings.HasPrefix(lines[1], "log: "+filepath.Join(filepath.Dir(state), "logs")+"/") {
			t.Fatalf("run %d does not say where its log is in its first lines:\n%s", i+1, run.out.String())
		}
		logPath = strings.TrimPrefix(lines[1], "log: ")
	}
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"shardlift migrate", "resumed=true", "source balancer stopped", "to=done"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(string(log), creds.Password) {
		t.Fatal("the log holds a password")
	}
	t.Logf("load: %s", &stats)
}

// Running the same migrate command again after the migration finished (say, after a
// crash during finalize that completed anyway) must not start a new migration onto
// the destination the applications now use.
func TestMigrateAgainAfterDoneIsRefusedNotStartedOver(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, dst := fakeCluster("a", 1), fakeCluster("b", 2)
	id, resumed, err := findOrCreateMigration(st, src, dst)
	if err != nil || resumed {
		t.Fatalf("first run: %q resumed %v, %v", id, resumed, err)
	}
	from := engine.Draft
	for _, to := range []engine.State{engine.Validated, engine.Starting, engine.Syncing, engine.Ready, engine.CuttingOver, engine.Finalizing, engine.Done} {
		if again, resumed, err := findOrCreateMigration(st, src, dst); err != nil || !resumed || again != id {
			t.Fatalf("while %s: %q resumed %v, %v; want %q resumed", from, again, resumed, err, id)
		}
		if err := st.AppendHistory(id, store.Event{At: time.Now(), From: string(from), To: string(to)}); err != nil {
			t.Fatal(err)
		}
		from = to
	}
	if again, _, err := findOrCreateMigration(st, src, dst); err == nil || !strings.Contains(err.Error(), "--state with a new file") {
		t.Fatalf("after done: %q, %v; want a refusal", again, err)
	}
}

// fakeCluster is a cluster at mongodb://<host>:27017 whose clusterId ends in n.
func fakeCluster(host string, n byte) cluster {
	e := topology.Endpoint{URI: "mongodb://" + host + ":27017/"}
	return clusterOf(e, "", topology.Identity{ClusterID: primitive.ObjectID{11: n}, Routers: []string{host + ":27017"}})
}

// A state file belongs to one source and one destination: reused with another one,
// it is refused, naming the cluster it belongs to, and nothing is written to it.
func TestAStateFileOfOtherClustersIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(path, store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, dst := fakeCluster("a", 1), fakeCluster("b", 2)
	id, _, err := findOrCreateMigration(st, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := st.Migration(id)
	rec.SourceIdentity, rec.DestinationIdentity = checkpoints.ToStoreIdentity(&src.id), checkpoints.ToStoreIdentity(&dst.id)
	if err := st.SaveMigration(rec); err != nil {
		t.Fatal(err)
	}
	// Another mongos of the same clusters resumes it.
	sameDst := fakeCluster("b2", 2)
	if again, resumed, err := findOrCreateMigration(st, src, sameDst); err != nil || !resumed || again != id {
		t.Fatalf("another mongos of the destination: %q resumed %v, %v", again, resumed, err)
	}
	for name, pair := range map[string][2]cluster{
		"another destination":                         {src, fakeCluster("c", 3)},
		"another source":                              {fakeCluster("c", 3), dst},
		"the same hosts, another cluster behind them": {src, fakeCluster("b", 4)},
	} {
		t.Run(name, func(t *testing.T) {
			got, _, err := findOrCreateMigration(st, pair[0], pair[1])
			var wrong *engine.WrongClusterError
			if !errors.As(err, &wrong) || got != "" {
				t.Fatalf("%q, %v; want a refusal", got, err)
			}
			if !strings.Contains(err.Error(), "migration "+id+" was started with") || !strings.Contains(err.Error(), "another state file (--state)") {
				t.Fatalf("refusal: %v", err)
			}
			if all, _ := st.Migrations(); len(all) != 1 {
				t.Fatalf("the refused run recorded a migration: %d in the file", len(all))
			}
		})
	}
	// A record from before identities were kept is told apart by its mongos hosts.
	rec.SourceIdentity, rec.DestinationIdentity = nil, nil
	if err := st.SaveMigration(rec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := findOrCreateMigration(st, src, fakeCluster("c", 3)); !errors.Is(err, engine.ErrWrongCluster) || !strings.Contains(err.Error(), "mongos b:27017") {
		t.Fatalf("an old record with another destination: %v", err)
	}
	if again, resumed, err := findOrCreateMigration(st, src, dst); err != nil || !resumed || again != id {
		t.Fatalf("an old record of the same hosts: %q resumed %v, %v", again, resumed, err)
	}
}

// Mongos hosts given as host:port, as the app takes them: the clusters are reached
// through them (here, refused), and a state file records them as a host list.
func TestMigrateTakesAHostList(t *testing.T) {
	src, dst := freeAddr(t), freeAddr(t)
	state := filepath.Join(t.TempDir(), "state.db")
	code, out, errOut := runCLI(t, "migrate", "--source", src+", "+freeAddr(t), "--destination", dst, "--state", state, "--timeout", "2s")
	if code != exitFail || !strings.Contains(errOut, src) || !strings.Contains(errOut, "the connection was refused") {
		t.Fatalf("exit %d, want 1 with the refused connection\n%s\n%s", code, out, errOut)
	}
	e, err := endpointFor("--source", "DB1.example:27017, db2.example", "", envSourcePassword, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	set := checkpoints.ConnSettings(e, "/etc/ssl/ca.pem")
	if want := []string{"db1.example:27017", "db2.example:27017"}; !slices.Equal(set.Hosts, want) || set.URI != "" || !set.TLS || set.CAFile != "/etc/ssl/ca.pem" {
		t.Errorf("recorded %+v, want the hosts %v, no connection string, TLS with the CA file", set, want)
	}
}

// A cancelled run ends with the engine's reason as it is: it says "cancelled" itself.
func TestACancelledRunPrintsItsReasonOnce(t *testing.T) {
	var out, errw bytes.Buffer
	snap := engine.Snapshot{State: engine.Cancelled, Reason: "cancelled: syncing stopped; the migrated data stays on the destination"}
	migrateResult(&out, &errw, "shardlift migrate", "state.db", snap, nil, false)
	if strings.Contains(out.String(), "cancelled: cancelled") || !strings.Contains(out.String(), "\n"+snap.Reason+"\n") {
		t.Errorf("output %q: want the reason on a line of its own, not prefixed again", out.String())
	}
}

// The state file keeps the host map migrate started with, and a resumed run given
// none reads it back, so that it dials the shards where the first run did.
func TestTheStateFileKeepsTheHostMapForAResumedRun(t *testing.T) {
	e := topology.Endpoint{URI: "mongodb://mongos.example:27017/", HostMap: topology.HostMap{"s0.internal:27018": "10.0.0.5:27018"}}
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SaveMigration(store.Migration{ID: "m1", State: string(engine.Syncing), Source: checkpoints.ConnSettings(e, ""), Destination: checkpoints.ConnSettings(e, "")}); err != nil {
		t.Fatal(err)
	}
	got, err := recordedHostMap(st, "m1")
	if err != nil || got.Reachable("s0.internal:27018") != "10.0.0.5:27018" || len(got) != 1 {
		t.Fatalf("recorded host map %v, %v", got, err)
	}
}

// A resumed `migrate` reads the members its first run chose unless
// --source-read-preference chooses again, which the next resume keeps.
func TestMigrateResumeReadsAsTheFirstRunChose(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src, dst := fakeCluster("a", 1), fakeCluster("b", 2)
	src.endpoint.ReadPreference = "secondary"
	src.settings = checkpoints.ConnSettings(src.endpoint, "")
	id, _, err := findOrCreateMigration(st, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	again := topology.Endpoint{URI: "mongodb://a:27017/"}
	if e, err := resumedReadPreference(st, id, again); err != nil || e.ReadPreference != "secondary" {
		t.Fatalf("resumed without the flag: %q, %v; want secondary", e.ReadPreference, err)
	}
	again.ReadPreference = "primary"
	if e, err := resumedReadPreference(st, id, again); err != nil || e.ReadPreference != "primary" {
		t.Fatalf("resumed with --source-read-preference primary: %q, %v", e.ReadPreference, err)
	}
	if e, err := resumedReadPreference(st, id, topology.Endpoint{URI: "mongodb://a:27017/"}); err != nil || e.ReadPreference != "primary" {
		t.Fatalf("the next resume: %q, %v; want the choice kept", e.ReadPreference, err)
	}
}

func TestMigratePartitionFlagsRefuseBadValues(t *testing.T) {
	base := []string{"migrate", "--source", "mongodb://a:1", "--destination", "mongodb://b:1", "--state", filepath.Join(t.TempDir(), "s.db")}
	for _, c := range []struct {
		args []string
		say  string
	}{
		{[]string{"--copy-partitions", "0"}, "--copy-partitions 0: give 1 or more"},
		{[]string{"--partition-min-size", "big"}, `--partition-min-size "big": give a size such as 512MiB`},
		{[]string{"--continuous-duty", "0"}, "--continuous-duty 0: give a fraction above 0 and at most 1"},
		{[]string{"--continuous-duty", "20"}, "--continuous-duty 20: give a fraction above 0 and at most 1"},
	} {
		code, out, errOut := runCLI(t, append(base, c.args...)...)
		if code != exitUsage || out != "" || !strings.Contains(errOut, c.say) {
			t.Errorf("shardlift %v: exit %d, stdout %q, stderr %q; want 2 saying %q", c.args, code, out, errOut, c.say)
		}
	}
}
