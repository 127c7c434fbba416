package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// buildShardlift builds the shardlift binary into a temporary directory.
func buildShardlift(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatalf("no go.mod above %s", wd)
		}
		root = parent
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "shardlift")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// sandboxProcess is a running `shardlift sandbox`.
type sandboxProcess struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	lines  chan string // stdout, line by line; closed at EOF
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// waitLimit bounds every wait on the child process: a hung child fails the test
// instead of hanging it.
const waitLimit = 60 * time.Second

func startSandbox(t *testing.T, bin string, env []string, args ...string) *sandboxProcess {
	t.Helper()
	p := &sandboxProcess{cmd: exec.Command(bin, append([]string{"sandbox"}, args...)...), stderr: &lockedBuffer{}, lines: make(chan string, 16)}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	return p
}

// line reads the next stdout line, which must start with prefix, and returns the rest.
func (p *sandboxProcess) line(t *testing.T, prefix string) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatalf("stdout ended before %q; stderr:\n%s", prefix, p.stderr)
		}
		if !strings.HasPrefix(l, prefix) {
			t.Fatalf("stdout line %q does not start with %q; stderr:\n%s", l, prefix, p.stderr)
		}
		return strings.TrimPrefix(l, prefix)
	case <-time.After(waitLimit):
		t.Fatalf("no %q line on stdout; stderr:\n%s", prefix, p.stderr)
	}
	return ""
}

// stop sends sig (SIGINT or SIGTERM) and waits for the exit, which must be 0.
func (p *sandboxProcess) stop(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shardlift sandbox after %v: %v; stderr:\n%s", sig, err, p.stderr)
		}
	case <-time.After(waitLimit):
		t.Fatalf("shardlift sandbox did not stop after %v; stderr:\n%s", sig, p.stderr)
	}
}

func dial(t *testing.T, uri string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(context.Background(), options.Client().ApplyURI(uri).SetServerSelectionTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	return c
}

// shardHostStrings are the host strings listShards reports, one per shard
// ("set/host:port,host:port,...": every member of its replica set).
func shardHostStrings(t *testing.T, c *mongo.Client) []string {
	t.Helper()
	var reply struct {
		Shards []struct {
			Host string `bson:"host"`
		} `bson:"shards"`
	}
	if err := c.Database("admin").RunCommand(t.Context(), bson.D{{Key: "listShards", Value: 1}}).Decode(&reply); err != nil {
		t.Fatalf("listShards: %v", err)
	}
	var out []string
	for _, s := range reply.Shards {
		out = append(out, s.Host)
	}
	return out
}

// shardHosts are the host:port of every member of every shard listShards reports.
func shardHosts(t *testing.T, c *mongo.Client) []string {
	t.Helper()
	var hosts []string
	for _, s := range shardHostStrings(t, c) {
		_, h, _ := strings.Cut(s, "/")
		hosts = append(hosts, strings.Split(h, ",")...)
	}
	return hosts
}

func routerHost(t *testing.T, uri string) string {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("printed URI %q: %v", uri, err)
	}
	return u.Host
}

func checkNothingListens(t *testing.T, hosts []string) {
	t.Helper()
	for _, h := range hosts {
		conn, err := net.DialTimeout("tcp", h, 2*time.Second)
		if err == nil {
			conn.Close()
			t.Errorf("%s still accepts connections after the sandbox exited", h)
		}
	}
}

// TestSandboxCommand runs the built binary, as a user would.
func TestSandboxCommand(t *testing.T) {
	bin := buildShardlift(t)
	t.Run("ServesKeepsAndRestoresItsData", func(t *testing.T) { testSandboxKeepsData(t, bin) })
	t.Run("WithoutDirLeavesNoTemporaryFiles", func(t *testing.T) { testSandboxTemporary(t, bin) })
	t.Run("PresentsTheReleasesAsked", func(t *testing.T) { testSandboxReleases(t, bin) })
	t.Run("ServesTheControlAPI", func(t *testing.T) { testSandboxControl(t, bin) })
}

// --control serves the fault hooks over HTTP: a stepdown says where the primary went,
// and the cluster keeps taking writes; and it stops the load.
func testSandboxControl(t *testing.T, bin string) {
	p := startSandbox(t, bin, nil, "--shards", "1", "--dest-shards", "1", "--members", "2", "--control", "127.0.0.1:0", "--load", "20")
	src := dial(t, "mongodb://"+p.line(t, "source: mongodb://"))
	p.line(t, "destination: mongodb://")
	control := "http://" + p.line(t, "control: http://")
	resp, err := http.Post(control+"source/shards/source-shard0/stepdown", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Result struct {
			NewPrimary string `json:"newPrimary"`
			Term       int64  `json:"term"`
		} `json:"result"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || out.Result.NewPrimary == "" || out.Result.Term != 2 {
		t.Errorf("stepdown: %d %+v (%v), want the new primary in term 2", resp.StatusCode, out, err)
	}
	if _, err := src.Database("app").Collection("c").InsertOne(t.Context(), bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Errorf("insert after the stepdown: %v", err)
	}
	src.Disconnect(t.Context())
	// The applications stop writing before a cutover: POST /load/stop answers once
	// the load's last write is done, so the counts it gives are the final ones.
	resp, err = http.Post(control+"load/stop", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var stopped struct{ Action, Load string }
	err = json.NewDecoder(resp.Body).Decode(&stopped)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || stopped.Action != "stop load" || !strings.Contains(stopped.Load, " writes") {
		t.Fatalf("stop the load: %d %+v (%v)", resp.StatusCode, stopped, err)
	}
	p.stop(t, os.Interrupt)
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	if last := lines[len(lines)-1]; last != "load: "+stopped.Load {
		t.Errorf("the load wrote after /load/stop answered: it said %q, the exit %q", stopped.Load, last)
	}
}

func testSandboxReleases(t *testing.T, bin string) {
	p := startSandbox(t, bin, nil, "--shards", "1", "--dest-shards", "1", "--mongodb-version", "4.2", "--dest-mongodb-version", "8.0", "--config-shard")
	src := dial(t, "mongodb://"+p.line(t, "source: mongodb://"))
	dst := dial(t, "mongodb://"+p.line(t, "destination: mongodb://"))
	for _, c := range []struct {
		client *mongo.Client
		want   string
		shards int
	}{{src, "4.2.", 1}, {dst, "8.0.", 2}} {
		var info struct {
			Version string `bson:"version"`
		}
		if err := c.client.Database("admin").RunCommand(t.Context(), bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil || !strings.HasPrefix(info.Version, c.want) {
			t.Errorf("buildInfo version %q (%v), want %s*", info.Version, err, c.want)
		}
		// The 8.0 destination's config server is its second shard (--config-shard);
		// the 4.2 source has none.
		if n := len(shardHostStrings(t, c.client)); n != c.shards {
			t.Errorf("a %sx cluster lists %d shards, want %d", c.want, n, c.shards)
		}
	}
	src.Disconnect(t.Context())
	dst.Disconnect(t.Context())
	p.stop(t, os.Interrupt)
}

func testSandboxKeepsData(t *testing.T, bin string) {
	dir := t.TempDir()
	ctx := t.Context()

	p := startSandbox(t, bin, nil, "--shards", "3", "--dest-shards", "2", "--docs", "2000", "--load", "50", "--dir", dir)
	srcURI, dstURI := p.line(t, "source: mongodb://"), p.line(t, "destination: mongodb://")
	srcURI, dstURI = "mongodb://"+srcURI, "mongodb://"+dstURI
	src, dst := dial(t, srcURI), dial(t, dstURI)
	orders, err := src.Database("shop").Collection("orders").CountDocuments(ctx, bson.D{})
	if err != nil || orders < 700 {
		t.Fatalf("source shop.orders holds %d documents (%v), want about 800 of the 2000 seeded", orders, err)
	}
	chunkShards, err := src.Database("config").Collection("chunks").Distinct(ctx, "shard", bson.D{})
	if err != nil || len(chunkShards) < 3 {
		t.Fatalf("config.chunks through the source router: chunks on shards %v (%v), want all 3 shards", chunkShards, err)
	}
	if err := dst.Ping(ctx, nil); err != nil {
		t.Fatalf("destination: %v", err)
	}
	if n := len(shardHostStrings(t, dst)); n != 2 {
		t.Fatalf("destination has %d shards, want 2 (--dest-shards)", n)
	}
	// The load inserts orders with fresh ObjectIds, unlike the seed's, which date from 2023.
	fresh := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: primitive.NewObjectIDFromTimestamp(time.Now().Add(-time.Hour))}}}}
	for deadline := time.Now().Add(waitLimit); ; time.Sleep(100 * time.Millisecond) {
		n, err := src.Database("shop").Collection("orders").CountDocuments(ctx, fresh)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("--load 50 inserted no order; stderr:\n%s", p.stderr)
		}
	}
	if _, err := src.Database("e2e").Collection("marker").InsertOne(ctx, bson.D{{Key: "_id", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	hosts := append(shardHosts(t, src), shardHosts(t, dst)...)
	hosts = append(hosts, routerHost(t, srcURI), routerHost(t, dstURI))
	src.Disconnect(ctx)
	dst.Disconnect(ctx)
	p.stop(t, os.Interrupt)
	if !strings.Contains(p.stderr.String(), sandboxLabel) {
		t.Errorf("stderr does not carry the label %q:\n%s", sandboxLabel, p.stderr)
	}
	checkNothingListens(t, hosts)
	if !regexp.MustCompile(`load: [1-9][0-9]* writes .*, 0 errors`).MatchString(p.stderr.String()) {
		t.Errorf("the load's last status line is missing or reports errors; stderr:\n%s", p.stderr)
	}

	// The same --dir again, without the shard counts: the same clusters and data, not
	// seeded a second time.
	p = startSandbox(t, bin, nil, "--docs", "2000", "--dir", dir)
	srcURI = "mongodb://" + p.line(t, "source: mongodb://")
	dstURI = "mongodb://" + p.line(t, "destination: mongodb://")
	src, dst = dial(t, srcURI), dial(t, dstURI)
	if n, m := len(shardHostStrings(t, src)), len(shardHostStrings(t, dst)); n != 3 || m != 2 {
		t.Fatalf("restarted without --shards on the same --dir: %d and %d shards, want the 3 and 2 the folder holds", n, m)
	}
	if err := src.Database("e2e").Collection("marker").FindOne(ctx, bson.D{{Key: "_id", Value: "kept"}}).Err(); err != nil {
		t.Fatalf("after a restart on the same --dir, the marker written before is gone: %v", err)
	}
	again, err := src.Database("shop").Collection("orders").CountDocuments(ctx, bson.D{})
	if err != nil || again < orders-200 || again > orders+200 {
		t.Fatalf("after a restart on the same --dir, shop.orders holds %d documents (%v); it held %d while the load ran", again, err, orders)
	}
	src.Disconnect(ctx)
	p.stop(t, os.Interrupt)
	if !strings.Contains(p.stderr.String(), "not seeding it again") {
		t.Errorf("restart on a seeded --dir did not skip seeding; stderr:\n%s", p.stderr)
	}
}

func testSandboxTemporary(t *testing.T, bin string) {
	tmp := t.TempDir()
	p := startSandbox(t, bin, []string{"TMPDIR=" + tmp}, "--shards", "1", "--dest-shards", "3", "--tls", "--auth", "admin:s3cret")
	srcURI := "mongodb://" + p.line(t, "source: mongodb://")
	dstURI := "mongodb://" + p.line(t, "destination: mongodb://")
	for _, prefix := range []string{"source ca: ", "destination ca: "} {
		ca := p.line(t, prefix)
		if _, err := os.Stat(ca); err != nil || !strings.HasPrefix(ca, tmp) {
			t.Errorf("%s%s: %v (want a file under the temporary data folder)", prefix, ca, err)
		}
	}
	// The printed URIs carry what a client needs: the credentials and the CA.
	src, dst := dial(t, srcURI), dial(t, dstURI)
	if n := len(shardHostStrings(t, src)); n != 1 {
		t.Errorf("source has %d shards, want 1", n)
	}
	if n := len(shardHostStrings(t, dst)); n != 3 {
		t.Errorf("destination has %d shards, want 3", n)
	}
	hosts := append(shardHosts(t, src), shardHosts(t, dst)...)
	hosts = append(hosts, routerHost(t, srcURI), routerHost(t, dstURI))
	src.Disconnect(t.Context())
	dst.Disconnect(t.Context())
	if entries, _ := os.ReadDir(tmp); len(entries) == 0 {
		t.Fatal("the sandbox keeps its data somewhere other than TMPDIR; this test cannot see it")
	}
	p.stop(t, syscall.SIGTERM)
	checkNothingListens(t, hosts)
	entries, err := os.ReadDir(tmp)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind in TMPDIR: %s", e.Name())
	}
}
