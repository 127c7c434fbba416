package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Some tests need a second process: a second Shardlift holding the file lock, a
// writer killed with SIGKILL, and keyring calls with a broken D-Bus session (the
// session bus connection is global to a process, so those must run in a fresh one).
// The test binary re-executes itself with helperEnv naming the role to play.
const (
	helperEnv     = "SHARDLIFT_STORE_HELPER"
	helperPathEnv = "SHARDLIFT_STORE_HELPER_PATH"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role, os.Getenv(helperPathEnv)))
	}
	os.Exit(m.Run())
}

func runHelper(role, path string) int {
	var err error
	switch role {
	case "hold-lock":
		err = helperHoldLock(path)
	case "checkpoint-loop":
		err = helperCheckpointLoop(path)
	case "keyring-calls":
		err = helperKeyringCalls()
	case "keyring-silent-bus":
		err = helperKeyringSilentBus(path)
	default:
		err = fmt.Errorf("unknown helper role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// startHelper runs the test binary as a helper; the child is killed at cleanup.
func startHelper(t *testing.T, role, path string, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, helperEnv+"="+role, helperPathEnv+"="+path)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewScanner(out)
}

// waitLine reads lines until one equals want.
func waitLine(t *testing.T, sc *bufio.Scanner, want string) {
	t.Helper()
	for sc.Scan() {
		if sc.Text() == want {
			return
		}
	}
	t.Fatalf("helper exited before printing %q (scan error: %v)", want, sc.Err())
}

// helperHoldLock opens the store and keeps it open until it is killed.
func helperHoldLock(path string) error {
	s, err := Open(path, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("locked")
	time.Sleep(time.Minute)
	return nil
}

// helperCheckpointLoop rewrites the checkpoints of crashShards shards forever; after
// each save it prints "<shard> <n>", n being the round now durable for that shard.
func helperCheckpointLoop(path string) error {
	s, err := Open(path, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	cps, err := s.ShardCheckpoints(crashMigration)
	if err != nil {
		return err
	}
	round := uint32(0)
	for _, cp := range cps {
		round = max(round, cp.Applied.T)
	}
	w := bufio.NewWriter(os.Stdout)
	for {
		round++
		for i := range crashShards {
			shard := fmt.Sprintf("shard%02d", i)
			if err := s.SaveShardCheckpoint(crashMigration, realisticCheckpoint(shard, crashParts, round)); err != nil {
				return err
			}
			fmt.Fprintf(w, "%s %d\n", shard, round)
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

const (
	crashMigration = "crash"
	crashShards    = 3
	crashParts     = 50
)

// realisticCheckpoint is a checkpoint of a shard copying parts partitions. Every
// number in it is derived from round, so that a checkpoint mixing two rounds (half
// written) is detected.
func realisticCheckpoint(shard string, parts int, round uint32) ShardCheckpoint {
	cp := ShardCheckpoint{
		Shard:   shard,
		Phase:   "catching up",
		T0:      primitive.Timestamp{T: 1_700_000_000, I: 7},
		Applied: primitive.Timestamp{T: round, I: round % 1000},
		Copied:  make(map[string]PartitionProgress, parts),
	}
	for p := range parts {
		oid := primitive.NewObjectID()
		_, raw, err := bson.MarshalValue(oid)
		if err != nil {
			panic(err)
		}
		cp.Copied[fmt.Sprintf("sales_%02d.orders_%02d#%d", p%5, p%10, p)] = PartitionProgress{
			Done:   p%2 == 0,
			LastID: bson.RawValue{Type: bson.TypeObjectID, Value: raw},
			Docs:   int64(round) * 1000,
			Bytes:  int64(round) * 1_000_000,
		}
	}
	return cp
}

// keyringCallResult is what the keyring helpers report for each call.
type keyringCallResult struct {
	Op          string
	Unavailable bool
	Message     string
	Cause       string
}

func reportKeyringCall(op string, err error) keyringCallResult {
	r := keyringCallResult{Op: op, Unavailable: errors.Is(err, ErrKeyringUnavailable)}
	if err != nil {
		r.Message = err.Error()
	}
	var kerr *KeyringError
	if errors.As(err, &kerr) && kerr.Cause != nil {
		r.Cause = kerr.Cause.Error()
	}
	return r
}

// helperKeyringCalls makes one call of each kind with the environment it was given.
func helperKeyringCalls() error {
	s := NewSecrets(0)
	_, getErr := s.Get("m1", RoleSource)
	results := []keyringCallResult{
		reportKeyringCall("set", s.Set("m1", RoleSource, "hunter2")),
		reportKeyringCall("get", getErr),
		reportKeyringCall("delete", s.DeleteAll("m1")),
	}
	return json.NewEncoder(os.Stdout).Encode(results)
}

// helperKeyringSilentBus points the session bus at a socket that accepts connections
// and never answers, like a hung bus, then makes two calls.
func helperKeyringSilentBus(dir string) error {
	sock := filepath.Join(dir, "silent-bus")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		// Accept connections and keep them referenced (a collected net.Conn is closed)
		// without a word; the process exit ends this goroutine.
		var held []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	if err := os.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+sock); err != nil {
		return err
	}
	s := NewSecrets(500 * time.Millisecond)
	first := reportKeyringCall("set", s.Set("m1", RoleSource, "hunter2"))
	_, err = s.Get("m1", RoleSource)
	second := reportKeyringCall("get", err)
	return json.NewEncoder(os.Stdout).Encode([]keyringCallResult{first, second})
}

// readKeyringResults waits for a keyring helper's report.
func readKeyringResults(t *testing.T, cmd *exec.Cmd, sc *bufio.Scanner) []keyringCallResult {
	t.Helper()
	if !sc.Scan() {
		t.Fatalf("keyring helper printed nothing (it hung or failed): %v", sc.Err())
	}
	var results []keyringCallResult
	if err := json.Unmarshal(sc.Bytes(), &results); err != nil {
		t.Fatalf("keyring helper output %q: %v", sc.Text(), err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("keyring helper: %v", err)
	}
	return results
}

// openTemp opens a new store in a temporary folder; at cleanup it is closed and the
// file must pass Open's full inspection (bbolt's consistency check included).
func openTemp(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := inspect(path, time.Second); err != nil {
			t.Errorf("state file left inconsistent: %v", err)
		}
	})
	return s, path
}

func mustSave(t testing.TB, s *Store, m Migration) {
	t.Helper()
	if err := s.SaveMigration(m); err != nil {
		t.Fatal(err)
	}
}

func sampleMigration(id string) Migration {
	on := true
	return Migration{
		ID:        id,
		Name:      "orders to Atlas",
		CreatedAt: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC),
		Source: ConnSettings{
			Hosts:    []string{"mongos1.internal:27017", "mongos2.internal:27017"},
			Username: "migrator",
			TLS:      true,
			CAFile:   "/etc/ssl/corp-ca.pem",
		},
		Destination: ConnSettings{
			Hosts:    []string{"atlas-shard-00.mongodb.net:27016"},
			Username: "atlasAdmin",
			TLS:      true,
			CAPEM:    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
		},
		State:         "draft",
		BalancerWasOn: &on,
		SourceIdentity: &ClusterIdentity{ClusterID: primitive.ObjectID{1, 2, 3}, Routers: []string{"mongos1.internal:27017"},
			Shards: []ShardHosts{{Name: "rs0", Hosts: []string{"db0a.internal:27018", "db0b.internal:27018"}}}},
		DestinationIdentity: &ClusterIdentity{ClusterID: primitive.ObjectID{4, 5, 6}, Routers: []string{"atlas-shard-00.mongodb.net:27016"},
			Shards: []ShardHosts{{Name: "atlas-shard-0", Hosts: []string{"atlas-shard-00-00.mongodb.net:27017"}}}},
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
