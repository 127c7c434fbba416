package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// fuzzStateFile is a real state file: a migration with its history and one shard's
// checkpoint, as bytes.
func fuzzStateFile(f *testing.F) []byte {
	path := filepath.Join(f.TempDir(), "state.db")
	s, err := Open(path, Options{Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	m := Migration{ID: "m1", Name: "a -> b", State: "draft",
		Source:      ConnSettings{Hosts: []string{"a:27017"}, Username: "u"},
		Destination: ConnSettings{Hosts: []string{"b:27017"}, TLS: true}}
	if err := s.SaveMigration(m); err != nil {
		f.Fatal(err)
	}
	if err := s.AppendHistory("m1", Event{At: time.Now(), From: "draft", To: "syncing"}); err != nil {
		f.Fatal(err)
	}
	cp := ShardCheckpoint{Shard: "shard0", Phase: "catching_up", T0: primitive.Timestamp{T: 100, I: 1}, Applied: primitive.Timestamp{T: 200, I: 3},
		Copied: map[string]PartitionProgress{"shop.orders/0": {Done: true, Docs: 10, Bytes: 1000}}}
	if err := s.SaveShardCheckpoint("m1", cp); err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return data
}

// FuzzOpenStateFile: whatever bytes the state file holds, Open returns a store whose
// every migration and checkpoint reads back, or an error that names the file and
// says it is damaged (or newer, or in use); it never panics and never opens a file
// whose records it then cannot read (a migration silently missing its checkpoints).
func FuzzOpenStateFile(f *testing.F) {
	good := fuzzStateFile(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:4096])
	for _, off := range []int{0, 16, 4096 + 16, 2 * 4096, 3*4096 + 40, len(good) - 100} {
		if off >= 0 && off < len(good) {
			flipped := bytes.Clone(good)
			flipped[off] ^= 0x5a
			f.Add(flipped)
		}
	}
	f.Add([]byte("not a state file"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "state.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{Timeout: time.Second})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerSchema) {
				t.Fatalf("%v: neither ErrCorrupt nor ErrNewerSchema", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("the error does not name the file: %v", err)
			}
			after, rerr := os.ReadFile(path)
			if rerr != nil || !bytes.Equal(after, data) {
				t.Fatal("a file that was refused was modified")
			}
			return
		}
		defer s.Close()
		all, err := s.Migrations()
		if err != nil {
			t.Fatalf("opened, but the migrations do not read back: %v", err)
		}
		for _, m := range all {
			if _, err := s.ShardCheckpoints(m.ID); err != nil {
				t.Fatalf("opened, but the checkpoints of %q do not read back: %v", m.ID, err)
			}
		}
	})
}

// FuzzRecordDecode: a record whose checksum matches but whose BSON is malformed or
// of the wrong shape is an error, never a panic nor a half-filled record taken as
// whole; a checksum that does not match is always an error.
func FuzzRecordDecode(f *testing.F) {
	good, err := bson.Marshal(ShardCheckpoint{Shard: "shard0", Phase: "synced", Applied: primitive.Timestamp{T: 5, I: 1}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("shard0"), good, false)
	f.Add([]byte("shard0"), good[:len(good)-3], false)
	f.Add([]byte("shard0"), good, true)
	f.Add([]byte("m1"), []byte{5, 0, 0, 0, 0}, false)
	f.Add([]byte("m1"), []byte{0xff, 0xff, 0xff, 0x7f, 3, 'a', 0}, false)
	f.Fuzz(func(t *testing.T, key, doc []byte, damageChecksum bool) {
		v := make([]byte, 4, 4+len(doc))
		sum := checksum(key, doc)
		if damageChecksum {
			sum ^= 1
		}
		binary.BigEndian.PutUint32(v, sum)
		v = append(v, doc...)
		var cp ShardCheckpoint
		err := decode(key, v, &cp)
		if damageChecksum && err == nil {
			t.Fatal("a record with a wrong checksum was accepted")
		}
		var m Migration
		merr := decode(key, v, &m)
		if err == nil && bson.Raw(doc).Validate() != nil {
			t.Fatalf("malformed BSON %x decoded as a checkpoint without an error", doc)
		}
		if merr == nil && bson.Raw(doc).Validate() != nil {
			t.Fatalf("malformed BSON %x decoded as a migration without an error", doc)
		}
		if err := decode(key, v[:min(len(v), 3)], &cp); err == nil {
			t.Fatal("a record shorter than its checksum was accepted")
		}
	})
}
