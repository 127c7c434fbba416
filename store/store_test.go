package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestOpenCreatesFileAndFolders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, sampleMigration("m1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.Migration("m1"); err != nil {
		t.Fatalf("migration lost on reopen: %v", err)
	}
}

func TestDefaultPathIsInUserConfigFolder(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	got, err := DefaultPath()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "shardlift", "state.db"); got != want {
		t.Fatalf("DefaultPath() = %q, want %q", got, want)
	}
}

// openWithin fails the test instead of hanging when Open blocks.
func openWithin(t *testing.T, path string, opts Options) (*Store, error) {
	t.Helper()
	type result struct {
		s   *Store
		err error
	}
	ch := make(chan result, 1)
	go func() {
		s, err := Open(path, opts)
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		return r.s, r.err
	case <-time.After(20 * time.Second):
		t.Fatal("Open hung on a locked state file")
		return nil, nil
	}
}

func TestSecondShardliftOnSameFileGetsLockedError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	cmd, out := startHelper(t, "hold-lock", path)
	waitLine(t, out, "locked")

	_, err := openWithin(t, path, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a file held by another process: %v, want ErrLocked", err)
	}
	want := "another Shardlift is using this state file " + path + ": close it, or pass --state with another file"
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}

	// A Shardlift that crashed leaves no stale lock behind.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	s, err := openWithin(t, path, Options{})
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSecondOpenInSameProcessGetsLockedError(t *testing.T) {
	s, path := openTemp(t)
	_ = s
	_, err := openWithin(t, path, Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

// populatedFile writes a state file with several migrations and checkpoints, large
// enough to span many pages, and returns its path once closed.
func populatedFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		id := "m" + string(rune('a'+i))
		mustSave(t, s, sampleMigration(id))
		for sh := range 3 {
			if err := s.SaveShardCheckpoint(id, realisticCheckpoint("shard0"+string(rune('0'+sh)), 50, 42)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Meta page layout: a 16-byte page header, then magic, version, page size, flags
// (4 bytes each), root bucket (16), freelist page (8), high-water mark (8), txid (8),
// checksum (8); little endian.
const (
	metaPageSizeOff = 24
	metaHighOff     = 56
	metaTxidOff     = 64
	metaSumOff      = 72
)

func pageSizeOf(t *testing.T, data []byte) int {
	t.Helper()
	return int(binary.LittleEndian.Uint32(data[metaPageSizeOff:]))
}

// newestMeta is the offset of the meta page with the highest txid.
func newestMeta(t *testing.T, data []byte) int {
	t.Helper()
	ps := pageSizeOf(t, data)
	if binary.LittleEndian.Uint64(data[ps+metaTxidOff:]) > binary.LittleEndian.Uint64(data[metaTxidOff:]) {
		return ps
	}
	return 0
}

// highWater is the length of the file that is in use: pages past it are free.
func highWater(t *testing.T, data []byte) int {
	t.Helper()
	return int(binary.LittleEndian.Uint64(data[newestMeta(t, data)+metaHighOff:])) * pageSizeOf(t, data)
}

func TestDamagedFileIsReportedAndLeftUntouched(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomBytes := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, data []byte) []byte
	}{
		{"random bytes", func(t *testing.T, data []byte) []byte { return randomBytes(64 << 10) }},
		{"a few random bytes", func(t *testing.T, data []byte) []byte { return randomBytes(100) }},
		{"truncated inside the first page", func(t *testing.T, data []byte) []byte { return data[:3000] }},
		{"truncated after the meta pages", func(t *testing.T, data []byte) []byte { return data[:2*pageSizeOf(t, data)] }},
		{"truncated to half its pages in use", func(t *testing.T, data []byte) []byte {
			return data[:highWater(t, data)/2/pageSizeOf(t, data)*pageSizeOf(t, data)]
		}},
		{"truncated inside the last page in use", func(t *testing.T, data []byte) []byte { return data[:highWater(t, data)-100] }},
		{"data pages overwritten, meta pages intact", func(t *testing.T, data []byte) []byte {
			ps := pageSizeOf(t, data)
			out := append([]byte(nil), data[:2*ps]...)
			return append(out, randomBytes(len(data)-2*ps)...)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := populatedFile(t)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			damaged := tc.damage(t, data)
			if err := os.WriteFile(path, damaged, 0o600); err != nil {
				t.Fatal(err)
			}
			for attempt := range 2 {
				s, err := Open(path, Options{})
				if err == nil {
					s.Close()
					t.Fatalf("attempt %d: Open accepted a damaged file", attempt)
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("attempt %d: Open: %v, want ErrCorrupt", attempt, err)
				}
				if !containsAll(err.Error(), path, "left untouched", "--state") {
					t.Fatalf("message does not say where the file is and how to start fresh: %q", err)
				}
				after, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(after, damaged) {
					t.Fatalf("attempt %d: Open changed the damaged file (%d bytes, was %d)", attempt, len(after), len(damaged))
				}
			}
		})
	}
}

// rewriteMeta edits the meta bucket of a closed state file with bbolt directly, as a
// future (or foreign) writer would.
func rewriteMeta(t *testing.T, path string, f func(meta *bolt.Bucket) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return f(tx.Bucket(bucketMeta)) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewerSchemaIsRefusedAndLeftUntouched(t *testing.T) {
	path := populatedFile(t)
	rewriteMeta(t, path, func(meta *bolt.Bucket) error {
		v, err := encode(keySchema, schemaRecord{Format: formatName, Version: SchemaVersion + 1})
		if err != nil {
			return err
		}
		return meta.Put(keySchema, v)
	})
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open: %v, want ErrNewerSchema", err)
	}
	if !containsAll(err.Error(), path, "schema 2", "newer", "--state") {
		t.Fatalf("unhelpful message: %q", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("Open changed a file written by a newer schema")
	}
}

func TestFileWithoutSchemaMarkerIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("someone-elses-data"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "not a Shardlift state file") {
		t.Fatalf("Open of another program's bbolt file: %v, want ErrCorrupt saying it is not ours", err)
	}
}

func TestEmptyFilesAreInitialized(t *testing.T) {
	t.Run("zero bytes", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustSave(t, s, sampleMigration("m1"))
		s.Close()
	})
	t.Run("bbolt file without buckets", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.db")
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustSave(t, s, sampleMigration("m1"))
		s.Close()
	})
}

// A crash after bbolt wrote a transaction's pages but before its meta page was whole
// (simulated by damaging the newest meta page) must leave the previous checkpoint.
func TestCrashBeforeCommitCompletesKeepsPreviousCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, sampleMigration("m1"))
	for round := uint32(1); round <= 2; round++ {
		if err := s.SaveShardCheckpoint("m1", realisticCheckpoint("shard00", 50, round)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := newestMeta(t, data) + metaSumOff
	copy(data[sum:], []byte{0xde, 0xad, 0xbe, 0xef})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open after a torn commit: %v", err)
	}
	defer s.Close()
	cps, err := s.ShardCheckpoints("m1")
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 1 || cps[0].Applied.T != 1 {
		t.Fatalf("checkpoints after a torn commit: %+v, want round 1 whole", cps)
	}
	checkWhole(t, cps[0])
	// The file stays writable.
	if err := s.SaveShardCheckpoint("m1", realisticCheckpoint("shard00", 50, 3)); err != nil {
		t.Fatal(err)
	}
}

// checkWhole fails when a checkpoint mixes fields of different rounds.
func checkWhole(t *testing.T, cp ShardCheckpoint) {
	t.Helper()
	round := int64(cp.Applied.T)
	if len(cp.Copied) != crashParts {
		t.Fatalf("shard %s: %d partitions, want %d", cp.Shard, len(cp.Copied), crashParts)
	}
	for key, p := range cp.Copied {
		if p.Docs != round*1000 || p.Bytes != round*1_000_000 || p.LastID.Validate() != nil {
			t.Fatalf("shard %s partition %s is from another round than applied ts %d: %+v", cp.Shard, key, round, p)
		}
	}
}

// dump reads everything a user of the store can see.
func dump(t *testing.T, s *Store) map[string]any {
	t.Helper()
	ms, err := s.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{"migrations": ms}
	for _, m := range ms {
		cps, err := s.ShardCheckpoints(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		out[m.ID] = cps
	}
	return out
}

// Damage anywhere in the file (flipped bytes, a page of garbage) must either be
// reported as ErrCorrupt, leaving the file as it was, or have hit unused space, in
// which case everything reads back exactly as written. It must never crash the
// process nor change what the store returns.
func TestDamageIsReportedOrHarmlessNeverSilent(t *testing.T) {
	path := populatedFile(t)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := dump(t, s)
	s.Close()
	// Reopening commits one empty transaction: start from the file as it is now.
	if orig, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	ps, hw := pageSizeOf(t, orig), highWater(t, orig)

	counts := map[string]int{}
	for seed := range 400 {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		data := append([]byte(nil), orig...)
		if seed%2 == 0 {
			for range 1 + rng.IntN(8) {
				data[2*ps+rng.IntN(hw-2*ps)] ^= byte(1 + rng.IntN(255))
			}
		} else {
			pg := 2 + rng.IntN(hw/ps-2)
			for i := pg * ps; i < (pg+1)*ps; i++ {
				data[i] = byte(rng.Uint32())
			}
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{})
		switch {
		case err == nil:
			counts["harmless"]++
			got := dump(t, s)
			s.Close()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d: damage went unnoticed and changed what the store returns", seed)
			}
		case errors.Is(err, ErrCorrupt):
			counts["reported"]++
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, data) {
				t.Fatalf("seed %d: Open changed a damaged file", seed)
			}
		default:
			t.Fatalf("seed %d: Open of a damaged file: %v, want ErrCorrupt or success", seed, err)
		}
	}
	t.Logf("outcomes: %v", counts)
}

// A migrate refused before it changed anything (another cluster than the state file
// recorded) only opened and read the file: it must stay byte for byte as it was.
func TestOpeningAndReadingLeavesTheFileByteForByte(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, sampleMigration("m1"))
	if err := s.SaveShardCheckpoint("m1", ShardCheckpoint{Shard: "rs0", Phase: "copying"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrations(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ShardCheckpoints("m1"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatal("opening and reading the state file changed it")
	}
}
