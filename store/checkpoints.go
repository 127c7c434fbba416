package store

import (
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SaveShardCheckpoint replaces the checkpoint of one shard of a migration, in one
// transaction: a crash leaves the previous checkpoint or this one, whole. Only this
// shard's record is rewritten. UpdatedAt is set to the time of the save. The
// migration must exist (ErrNotFound), so a checkpoint cannot outlive RemoveMigration.
func (s *Store) SaveShardCheckpoint(id string, cp ShardCheckpoint) error {
	if err := checkName("shard name", cp.Shard); err != nil {
		return err
	}
	cp.UpdatedAt = time.Now()
	v, err := encode([]byte(cp.Shard), cp)
	if err != nil {
		return fmt.Errorf("encode checkpoint of shard %s: %w", cp.Shard, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMigrations).Get([]byte(id)) == nil {
			return fmt.Errorf("migration %s: %w", id, ErrNotFound)
		}
		b, err := tx.Bucket(bucketCheckpoints).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		return b.Put([]byte(cp.Shard), v)
	})
	if err != nil {
		return fmt.Errorf("save checkpoint of shard %s of migration %s in %s: %w", cp.Shard, id, s.path, err)
	}
	return nil
}

// ShardCheckpoints reads every shard checkpoint of a migration, ordered by shard
// name; empty when none was saved yet (ErrNotFound when the migration is absent).
func (s *Store) ShardCheckpoints(id string) ([]ShardCheckpoint, error) {
	var cps []ShardCheckpoint
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMigrations).Get([]byte(id)) == nil {
			return fmt.Errorf("migration %s: %w", id, ErrNotFound)
		}
		b := tx.Bucket(bucketCheckpoints).Bucket([]byte(id))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var cp ShardCheckpoint
			if err := decode(k, v, &cp); err != nil {
				return fmt.Errorf("decode checkpoint of shard %s: %w", k, err)
			}
			cps = append(cps, cp)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read checkpoints of migration %s from %s: %w", id, s.path, err)
	}
	return cps, nil
}
