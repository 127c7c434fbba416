package store

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// SaveMigration creates a migration or updates its settings, timer, balancer state
// and summary. On an existing migration the stored CreatedAt, State and History are
// kept: those change only through AppendHistory. A new migration gets CreatedAt = now
// when it is zero. Settings that would put a secret on disk are refused (ErrInvalid).
func (s *Store) SaveMigration(m Migration) error {
	if err := checkName("migration id", m.ID); err != nil {
		return err
	}
	if err := checkNoSecrets("source", m.Source); err != nil {
		return err
	}
	if err := checkNoSecrets("destination", m.Destination); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMigrations)
		if v := b.Get([]byte(m.ID)); v != nil {
			var old Migration
			if err := decode([]byte(m.ID), v, &old); err != nil {
				return fmt.Errorf("read stored record: %w", err)
			}
			m.CreatedAt, m.State, m.History = old.CreatedAt, old.State, old.History
		} else if m.CreatedAt.IsZero() {
			m.CreatedAt = time.Now()
		}
		return putMigration(b, m)
	})
	if err != nil {
		return fmt.Errorf("save migration %s in %s: %w", m.ID, s.path, err)
	}
	return nil
}

// AppendHistory records a lifecycle transition and sets the migration's State to
// ev.To, in one transaction. ev.From must be the stored State: a mismatch means two
// writers disagree about the lifecycle, and the event is refused. ev.At defaults to now.
func (s *Store) AppendHistory(id string, ev Event) error {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMigrations)
		m, err := getMigration(b, id)
		if err != nil {
			return err
		}
		if ev.From != m.State {
			return fmt.Errorf("%w: transition %q -> %q, but the migration is in state %q", ErrInvalid, ev.From, ev.To, m.State)
		}
		m.History = append(m.History, ev)
		m.State = ev.To
		return putMigration(b, m)
	})
	if err != nil {
		return fmt.Errorf("record transition of migration %s in %s: %w", id, s.path, err)
	}
	return nil
}

// Migration reads one migration (ErrNotFound when absent).
func (s *Store) Migration(id string) (Migration, error) {
	var m Migration
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		m, err = getMigration(tx.Bucket(bucketMigrations), id)
		return err
	})
	if err != nil {
		return Migration{}, fmt.Errorf("read migration %s from %s: %w", id, s.path, err)
	}
	return m, nil
}

// Migrations lists every recorded migration, past and current, newest first.
func (s *Store) Migrations() ([]Migration, error) {
	var all []Migration
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMigrations).ForEach(func(k, v []byte) error {
			var m Migration
			if err := decode(k, v, &m); err != nil {
				return fmt.Errorf("migration %s: %w", k, err)
			}
			all = append(all, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list migrations in %s: %w", s.path, err)
	}
	slices.SortStableFunc(all, func(a, b Migration) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return all, nil
}

// RemoveMigration deletes a migration and its checkpoints. Its passwords are not
// touched: removing them is Secrets.DeleteAll's job.
func (s *Store) RemoveMigration(id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMigrations)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("migration %s: %w", id, ErrNotFound)
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		if cps := tx.Bucket(bucketCheckpoints); cps.Bucket([]byte(id)) != nil {
			return cps.DeleteBucket([]byte(id))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove migration %s from %s: %w", id, s.path, err)
	}
	return nil
}

func getMigration(b *bolt.Bucket, id string) (Migration, error) {
	v := b.Get([]byte(id))
	if v == nil {
		return Migration{}, fmt.Errorf("migration %s: %w", id, ErrNotFound)
	}
	var m Migration
	if err := decode([]byte(id), v, &m); err != nil {
		return Migration{}, fmt.Errorf("decode migration %s: %w", id, err)
	}
	return m, nil
}

func putMigration(b *bolt.Bucket, m Migration) error {
	v, err := encode([]byte(m.ID), m)
	if err != nil {
		return fmt.Errorf("encode migration: %w", err)
	}
	return b.Put([]byte(m.ID), v)
}
