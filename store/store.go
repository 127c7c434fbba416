package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.mongodb.org/mongo-driver/bson"
)

// SchemaVersion is the layout version this code writes and reads. A file with a higher
// version is refused with ErrNewerSchema.
const SchemaVersion uint64 = 1

// DefaultTimeout is how long Open waits for another process to release the file.
const DefaultTimeout = time.Second

const formatName = "shardlift-state"

var (
	bucketMeta        = []byte("meta")
	bucketMigrations  = []byte("migrations")
	bucketCheckpoints = []byte("checkpoints")
	keySchema         = []byte("schema")
)

// Options tune Open.
type Options struct {
	// Timeout bounds the wait for the file lock; DefaultTimeout when zero.
	Timeout time.Duration
}

// Store is an open state file. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

// DefaultPath is the state file used when --state is not given:
// <user config folder>/shardlift/state.db.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the user config folder for the state file (pass --state FILE instead): %w", err)
	}
	return filepath.Join(dir, "shardlift", "state.db"), nil
}

// Open opens the state file at path, creating it (and its folder) when absent.
//
// An existing file is first inspected read-only (bbolt's consistency check, the
// schema marker, every record decoded); it is opened for writing only when it passed,
// so a damaged file is never written to. Errors: ErrLocked when another process holds
// the file for longer than opts.Timeout, ErrCorrupt, ErrNewerSchema.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("open state file: empty path")
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create the folder of state file %s: %w", path, err)
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// New file: bbolt creates it under its lock.
	case err != nil:
		return nil, fmt.Errorf("state file %s: %w", path, err)
	case !info.Mode().IsRegular():
		return nil, fmt.Errorf("state file %s is not a regular file; pass --state with a file path", path)
	case info.Size() > 0:
		// A zero-length file holds nothing to lose (a crash before bbolt's first
		// write): bbolt initializes it like a new one.
		if err := inspect(path, timeout); err != nil {
			return nil, err
		}
	}

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, lockedError(path)
	case err != nil:
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	// A bbolt write transaction rewrites the file's meta page even when it changes
	// nothing: a file that needs no initialization is checked read-only, so that
	// opening and reading a state file (a refused migrate) leaves it byte for byte.
	var needsInit bool
	err = db.View(func(tx *bolt.Tx) error {
		needsInit = tx.Bucket(bucketMeta) == nil || tx.Bucket(bucketMigrations) == nil || tx.Bucket(bucketCheckpoints) == nil
		return checkSchema(tx, path)
	})
	if err == nil && needsInit {
		err = db.Update(func(tx *bolt.Tx) error { return initSchema(tx, path) })
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Store{db: db, path: path}, nil
}

// Path is the file this store was opened from.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", s.path, err)
	}
	return nil
}

func lockedError(path string) error {
	return fmt.Errorf("%w %s: close it, or pass --state with another file", ErrLocked, path)
}

func corruptError(path string, cause error) error {
	return fmt.Errorf("%w: %s: %w. The file was left untouched where it is; to start fresh, pass --state with a new file, or move it aside",
		ErrCorrupt, path, cause)
}

// openError classifies bbolt's open errors. Once the file could be opened by the
// system (no *fs.PathError), bbolt fails only on its content: invalid or
// checksum-failed meta pages, a version mismatch, a file shorter than two pages.
func openError(path string, err error) error {
	var pathErr *fs.PathError
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return lockedError(path)
	case errors.As(err, &pathErr):
		return fmt.Errorf("open state file %s: %w", path, err)
	}
	return corruptError(path, err)
}

// inspect validates an existing file without writing to it: it is opened read-only
// (a shared lock, so it still reports ErrLocked when another Shardlift writes to it).
func inspect(path string, timeout time.Duration) error {
	var db *bolt.DB
	err := guard(func() error {
		var err error
		db, err = bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
		return err
	})
	if err != nil {
		return openError(path, err)
	}
	defer db.Close()

	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	return db.View(func(tx *bolt.Tx) error {
		// bbolt maps pages up to its high-water mark; reading one past the end of a
		// truncated file would fault, so check the length before touching any page.
		if tx.Size() > info.Size() {
			return corruptError(path, fmt.Errorf("the file is %d bytes long but its index needs %d: it was truncated", info.Size(), tx.Size()))
		}
		if err := guard(func() error { return checkSchema(tx, path) }); err != nil {
			if errors.Is(err, ErrNewerSchema) || errors.Is(err, ErrCorrupt) {
				return err
			}
			return corruptError(path, err)
		}
		// Decode every record in this goroutine first, where a fault on a damaged page
		// is recovered; bbolt's own check then runs on pages known to be readable.
		if err := guard(func() error { return verifyLayout(tx) }); err != nil {
			return corruptError(path, err)
		}
		var problems []error
		for err := range tx.Check() {
			if len(problems) < 3 {
				problems = append(problems, err)
			}
		}
		if len(problems) > 0 {
			return corruptError(path, errors.Join(problems...))
		}
		return nil
	})
}

// guard runs f with memory faults turned into panics, and turns panics into errors:
// bbolt panics or faults on some damaged pages instead of returning an error.
func guard(f func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading it failed: %v", r)
		}
	}()
	return f()
}

// schemaRecord is the value of meta/schema. Its encoding must never change: it is
// how an older Shardlift recognizes a file written by a newer one.
type schemaRecord struct {
	Format  string `bson:"format"`
	Version uint64 `bson:"version"`
}

// checkSchema accepts a Shardlift file of this schema or an older one, and an empty
// bbolt file (a crash between bbolt's creation of the file and initSchema).
func checkSchema(tx *bolt.Tx, path string) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		empty := tx.ForEach(func([]byte, *bolt.Bucket) error { return errNotEmpty }) == nil
		if empty {
			return nil
		}
		return corruptError(path, errors.New("it is a bbolt file but not a Shardlift state file"))
	}
	var rec schemaRecord
	if err := decode(keySchema, meta.Get(keySchema), &rec); err != nil {
		return corruptError(path, fmt.Errorf("its schema marker is unreadable: %w", err))
	}
	switch {
	case rec.Format != formatName:
		return corruptError(path, fmt.Errorf("it is not a Shardlift state file (format %q)", rec.Format))
	case rec.Version > SchemaVersion:
		return fmt.Errorf("%w (schema %d; this version reads schema %d): %s was left untouched; open it with the newer Shardlift, or pass --state with another file",
			ErrNewerSchema, rec.Version, SchemaVersion, path)
	case rec.Version == 0:
		return corruptError(path, errors.New("its schema version is 0"))
	}
	return nil
}

var errNotEmpty = errors.New("not empty")

// initSchema creates the buckets of a new file; on an existing one it repeats the
// schema check under the write lock.
func initSchema(tx *bolt.Tx, path string) error {
	if err := checkSchema(tx, path); err != nil {
		return err
	}
	if tx.Bucket(bucketMeta) == nil {
		meta, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return fmt.Errorf("initialize state file %s: %w", path, err)
		}
		v, err := encode(keySchema, schemaRecord{Format: formatName, Version: SchemaVersion})
		if err != nil {
			return fmt.Errorf("initialize state file %s: %w", path, err)
		}
		if err := meta.Put(keySchema, v); err != nil {
			return fmt.Errorf("initialize state file %s: %w", path, err)
		}
	}
	for _, name := range [][]byte{bucketMigrations, bucketCheckpoints} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("initialize state file %s: %w", path, err)
		}
	}
	return nil
}

// verifyLayout decodes every record and checks that the buckets are exactly the ones
// this schema writes, so that damage to a key or a bucket name is found at open
// instead of silently hiding a migration or its checkpoints.
func verifyLayout(tx *bolt.Tx) error {
	if tx.Bucket(bucketMeta) == nil {
		return nil // empty bbolt file, accepted by checkSchema
	}
	if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		for _, known := range [][]byte{bucketMeta, bucketMigrations, bucketCheckpoints} {
			if bytes.Equal(name, known) {
				return nil
			}
		}
		return fmt.Errorf("unknown bucket %q", name)
	}); err != nil {
		return err
	}
	migrations, checkpoints := tx.Bucket(bucketMigrations), tx.Bucket(bucketCheckpoints)
	if migrations == nil || checkpoints == nil {
		return errors.New("a bucket is missing")
	}
	if err := migrations.ForEach(func(k, v []byte) error {
		var m Migration
		if err := decode(k, v, &m); err != nil {
			return fmt.Errorf("migration %q: %w", k, err)
		}
		return nil
	}); err != nil {
		return err
	}
	return checkpoints.ForEach(func(id, v []byte) error {
		b := checkpoints.Bucket(id)
		if b == nil || migrations.Get(id) == nil {
			return fmt.Errorf("checkpoints of unknown migration %q", id)
		}
		return b.ForEach(func(k, v []byte) error {
			var cp ShardCheckpoint
			if err := decode(k, v, &cp); err != nil {
				return fmt.Errorf("checkpoint of shard %q of migration %q: %w", k, id, err)
			}
			return nil
		})
	})
}

// Records are stored as a CRC-32C of their key and BSON document, followed by the
// document: bbolt has no checksums of its own below the meta pages, and a flipped bit
// in an applied timestamp would resume a shard from the wrong place without a word.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

func checksum(key, doc []byte) uint32 {
	return crc32.Update(crc32.Checksum(key, crcTable), crcTable, doc)
}

func encode(key []byte, in any) ([]byte, error) {
	doc, err := bson.Marshal(in)
	if err != nil {
		return nil, err
	}
	v := make([]byte, 4, 4+len(doc))
	binary.BigEndian.PutUint32(v, checksum(key, doc))
	return append(v, doc...), nil
}

// decode checks and unmarshals a value read inside a transaction. The bytes are
// copied first: bbolt's slices point into the memory map and are invalid once the
// transaction ends.
func decode(key, v []byte, out any) error {
	if len(v) < 4 {
		return errors.New("record missing or too short")
	}
	doc := append([]byte(nil), v[4:]...)
	if checksum(key, doc) != binary.BigEndian.Uint32(v) {
		return errors.New("record checksum mismatch")
	}
	return unmarshalRecord(doc, out)
}

// unmarshalRecord decodes a record's document. The driver's Validate and Unmarshal
// panic on some malformed documents (found by FuzzRecordDecode): a panic is an error.
func unmarshalRecord(doc []byte, out any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("record is not a valid BSON document (%v)", r)
		}
	}()
	if err := bson.Raw(doc).Validate(); err != nil {
		return fmt.Errorf("record is not a valid BSON document: %w", err)
	}
	return bson.Unmarshal(doc, out)
}
