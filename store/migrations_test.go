package store

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMigrationRoundTrip(t *testing.T) {
	s, _ := openTemp(t)
	m := sampleMigration("m1")
	m.History = []Event{{At: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), From: "", To: "draft", Reason: "created"}}
	m.TimerDeadline = time.Date(2025, 3, 4, 12, 0, 0, 123_000_000, time.UTC)
	m.Summary = &Summary{
		FinishedAt: time.Date(2025, 3, 5, 1, 2, 3, 0, time.UTC), Documents: 1_234_567, Bytes: 9_876_543_210,
		OptimeGap: 42 * time.Second, Verification: "counts match", UsersToRecreate: []string{"app@orders"},
	}
	mustSave(t, s, m)
	got, err := s.Migration("m1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, m)
	}
}

func TestBalancerStateUnknownUntilRecorded(t *testing.T) {
	s, _ := openTemp(t)
	m := sampleMigration("m1")
	m.BalancerWasOn = nil
	mustSave(t, s, m)
	got, err := s.Migration("m1")
	if err != nil {
		t.Fatal(err)
	}
	if got.BalancerWasOn != nil {
		t.Fatalf("BalancerWasOn = %v before it was recorded, want nil", *got.BalancerWasOn)
	}
	off := false
	got.BalancerWasOn = &off
	mustSave(t, s, got)
	if got, err = s.Migration("m1"); err != nil || got.BalancerWasOn == nil || *got.BalancerWasOn {
		t.Fatalf("BalancerWasOn after recording false: %v, %v", got.BalancerWasOn, err)
	}
}

func TestMigrationsListedNewestFirst(t *testing.T) {
	s, _ := openTemp(t)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, id := range []string{"old", "newest", "middle"} {
		m := sampleMigration(id)
		m.CreatedAt = base.Add(map[int]time.Duration{0: 0, 1: 48 * time.Hour, 2: 24 * time.Hour}[i])
		mustSave(t, s, m)
	}
	ms, err := s.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	if want := []string{"newest", "middle", "old"}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("Migrations() order %v, want %v", ids, want)
	}
}

func TestStateChangesOnlyThroughRecordedTransitions(t *testing.T) {
	s, _ := openTemp(t)
	mustSave(t, s, sampleMigration("m1"))
	at := time.Date(2025, 3, 2, 8, 0, 0, 0, time.UTC)
	if err := s.AppendHistory("m1", Event{At: at, From: "draft", To: "validated", Reason: "all checks passed"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendHistory("m1", Event{From: "validated", To: "starting"}); err != nil {
		t.Fatal(err)
	}

	// A stale copy saved later must not roll the state or the history back.
	stale := sampleMigration("m1")
	stale.Name = "renamed"
	stale.CreatedAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	mustSave(t, s, stale)

	got, err := s.Migration("m1")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != "starting" || len(got.History) != 2 || got.Name != "renamed" {
		t.Fatalf("after a stale save: state %q, %d events, name %q; want starting, 2, renamed", got.State, len(got.History), got.Name)
	}
	if !got.CreatedAt.Equal(sampleMigration("m1").CreatedAt) {
		t.Fatalf("CreatedAt changed to %v", got.CreatedAt)
	}
	if e := got.History[0]; !e.At.Equal(at) || e.From != "draft" || e.To != "validated" || e.Reason != "all checks passed" {
		t.Fatalf("first event %+v", e)
	}
	if got.History[1].At.IsZero() {
		t.Fatal("event without a time was stored without one")
	}

	err = s.AppendHistory("m1", Event{From: "draft", To: "syncing"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("transition from a state the migration is not in: %v, want ErrInvalid", err)
	}
	if err := s.AppendHistory("nope", Event{From: "", To: "draft"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AppendHistory on a missing migration: %v, want ErrNotFound", err)
	}
}

func TestRemoveMigrationDeletesItsCheckpoints(t *testing.T) {
	s, _ := openTemp(t)
	for _, id := range []string{"gone", "kept"} {
		mustSave(t, s, sampleMigration(id))
		if err := s.SaveShardCheckpoint(id, realisticCheckpoint("shard00", 3, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RemoveMigration("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migration("gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Migration after remove: %v, want ErrNotFound", err)
	}
	if _, err := s.ShardCheckpoints("gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ShardCheckpoints after remove: %v, want ErrNotFound", err)
	}
	// Re-using the id starts without the old checkpoints.
	mustSave(t, s, sampleMigration("gone"))
	if cps, err := s.ShardCheckpoints("gone"); err != nil || len(cps) != 0 {
		t.Fatalf("checkpoints of a re-created migration: %v, %v; want none", cps, err)
	}
	if cps, err := s.ShardCheckpoints("kept"); err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints of the other migration: %v, %v; want 1", cps, err)
	}
	if err := s.RemoveMigration("never-existed"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RemoveMigration of a missing id: %v, want ErrNotFound", err)
	}
}

func TestMigrationIDsAreValidated(t *testing.T) {
	s, _ := openTemp(t)
	for _, id := range []string{"", "a/b", strings.Repeat("x", maxIDLen+1)} {
		if err := s.SaveMigration(sampleMigration(id)); !errors.Is(err, ErrInvalid) {
			t.Errorf("SaveMigration(id %q): %v, want ErrInvalid", id, err)
		}
	}
}

// No password may reach the state file: a connection string pasted as a host (it
// may carry user:password@) and a private key pasted with the CA are refused, and the
// refusal does not echo the password.
func TestNoPasswordReachesTheStateFile(t *testing.T) {
	s, path := openTemp(t)
	const password = "Sup3r-S3cret"
	uri := sampleMigration("m1")
	uri.Source.Hosts = []string{"mongodb://migrator:" + password + "@mongos1.internal:27017"}
	err := s.SaveMigration(uri)
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("SaveMigration with credentials in a host: %v, want ErrInvalid", err)
	}
	if strings.Contains(err.Error(), password) {
		t.Fatalf("the refusal echoes the password: %q", err)
	}
	userinfo := sampleMigration("m2")
	userinfo.Destination.Hosts = []string{"migrator:" + password + "@atlas:27017"}
	if err := s.SaveMigration(userinfo); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), password) {
		t.Fatalf("SaveMigration with user:password@host: %v, want ErrInvalid without the password", err)
	}
	key := sampleMigration("m3")
	key.Destination.CAPEM += "-----BEGIN PRIVATE KEY-----\n" + password + "\n-----END PRIVATE KEY-----\n"
	if err := s.SaveMigration(key); !errors.Is(err, ErrInvalid) {
		t.Fatalf("SaveMigration with a private key in the CA: %v, want ErrInvalid", err)
	}
	mustSave(t, s, sampleMigration("m4"))

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), password) {
		t.Fatal("the password was written to the state file")
	}
}

// The records have no field that could hold a password: passwords belong in Secrets.
func TestRecordsHaveNoPasswordField(t *testing.T) {
	var walk func(typ reflect.Type, path string)
	seen := map[reflect.Type]bool{}
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ.PkgPath() != reflect.TypeFor[Migration]().PkgPath() {
			return
		}
		seen[typ] = true
		for f := range typ.Fields() {
			name := strings.ToLower(f.Name + " " + f.Tag.Get("bson"))
			for _, word := range []string{"pass", "secret", "pwd", "credential", "privatekey"} {
				if strings.Contains(name, word) {
					t.Errorf("%s.%s looks like it holds a secret", path, f.Name)
				}
			}
			walk(f.Type, path+"."+f.Name)
		}
	}
	walk(reflect.TypeFor[Migration](), "Migration")
	walk(reflect.TypeFor[ShardCheckpoint](), "ShardCheckpoint")
}

// A record written before identities were kept (no such fields) still opens, with
// none recorded: the engine records them on its first resume.
func TestARecordWithoutIdentitiesStillOpens(t *testing.T) {
	s, _ := openTemp(t)
	m := sampleMigration("m1")
	m.SourceIdentity, m.DestinationIdentity = nil, nil
	mustSave(t, s, m)
	got, err := s.Migration("m1")
	if err != nil {
		t.Fatal(err)
	}
	if got.SourceIdentity != nil || got.DestinationIdentity != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("read back %+v", got)
	}
}
