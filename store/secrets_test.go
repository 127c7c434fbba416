package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// requireKeyring skips a test that needs a real Secret Service unless it runs under
// scripts/keyring-session.sh; in CI (CI=true) a missing session is a failure, so the
// keyring tests cannot be skipped silently.
func requireKeyring(t *testing.T) {
	t.Helper()
	if os.Getenv("SHARDLIFT_KEYRING") == "1" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("CI=true but SHARDLIFT_KEYRING is not 1: run the tests through scripts/keyring-session.sh (make test) so the Secret Service tests run")
	}
	t.Skip("no Secret Service session: run through scripts/keyring-session.sh (make test) to test against gnome-keyring")
}

// testMigrationID is unique per run, so reruns in one keyring session do not collide.
func testMigrationID(t *testing.T, suffix string) string {
	id := fmt.Sprintf("test-%s-%d-%s", t.Name(), time.Now().UnixNano(), suffix)
	return strings.ReplaceAll(id, "/", "_")
}

func TestSecretsRoundTripInSecretService(t *testing.T) {
	requireKeyring(t)
	sec := NewSecrets(0)
	id := testMigrationID(t, "a")
	t.Cleanup(func() { _ = sec.DeleteAll(id) })

	src, dst := "pä$$ w0rd/\"'\\", "destination-secret"
	if err := sec.Set(id, RoleSource, src); err != nil {
		t.Fatal(err)
	}
	if err := sec.Set(id, RoleDestination, dst); err != nil {
		t.Fatal(err)
	}
	for role, want := range map[string]string{RoleSource: src, RoleDestination: dst} {
		got, err := sec.Get(id, role)
		if err != nil || got != want {
			t.Fatalf("Get(%s) = %q, %v; want %q", role, got, err, want)
		}
	}
	// Saving again replaces the password (resuming after the user changed it).
	if err := sec.Set(id, RoleSource, "rotated"); err != nil {
		t.Fatal(err)
	}
	if got, err := sec.Get(id, RoleSource); err != nil || got != "rotated" {
		t.Fatalf("Get after replace = %q, %v; want rotated", got, err)
	}
	if err := sec.Delete(id, RoleSource); err != nil {
		t.Fatal(err)
	}
	if _, err := sec.Get(id, RoleSource); !errors.Is(err, ErrSecretNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrSecretNotFound", err)
	}
	if err := sec.Delete(id, RoleSource); err != nil {
		t.Fatalf("Delete of a password already gone: %v, want nil", err)
	}
	if got, err := sec.Get(id, RoleDestination); err != nil || got != dst {
		t.Fatalf("the other role after Delete: %q, %v", got, err)
	}
}

func TestRemovingAMigrationsPasswordsKeepsOtherMigrations(t *testing.T) {
	requireKeyring(t)
	sec := NewSecrets(0)
	gone, kept := testMigrationID(t, "gone"), testMigrationID(t, "kept")
	t.Cleanup(func() { _ = sec.DeleteAll(kept) })
	for _, id := range []string{gone, kept} {
		for _, role := range []string{RoleSource, RoleDestination, RoleSourceKey, RoleDestinationKey} {
			if err := sec.Set(id, role, id+role); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sec.DeleteAll(gone); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{RoleSource, RoleDestination, RoleSourceKey, RoleDestinationKey} {
		if _, err := sec.Get(gone, role); !errors.Is(err, ErrSecretNotFound) {
			t.Fatalf("Get(%s) of a removed migration: %v, want ErrSecretNotFound", role, err)
		}
		if got, err := sec.Get(kept, role); err != nil || got != kept+role {
			t.Fatalf("Get(%s) of the other migration: %q, %v", role, got, err)
		}
	}
	if err := sec.DeleteAll(gone); err != nil {
		t.Fatalf("DeleteAll twice: %v, want nil", err)
	}
}

// Calls from several goroutines (the UI saving both passwords at once) wait for their
// turn instead of failing.
func TestConcurrentSecretCallsAllSucceed(t *testing.T) {
	requireKeyring(t)
	sec := NewSecrets(0)
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = testMigrationID(t, fmt.Sprint(i))
	}
	t.Cleanup(func() {
		for _, id := range ids {
			_ = sec.DeleteAll(id)
		}
	})
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = sec.Set(id, RoleSource, "pw-"+id) })
	}
	wg.Wait()
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatalf("concurrent Set %d: %v", i, errs[i])
		}
		if got, err := sec.Get(id, RoleSource); err != nil || got != "pw-"+id {
			t.Fatalf("Get %d = %q, %v", i, got, err)
		}
	}
}

func TestSecretKeysAreValidated(t *testing.T) {
	sec := NewSecrets(0)
	for _, tc := range []struct{ id, role string }{{"", RoleSource}, {"a/b", RoleSource}, {"m1", "admin"}} {
		if err := sec.Set(tc.id, tc.role, "x"); !errors.Is(err, ErrInvalid) {
			t.Errorf("Set(%q, %q): %v, want ErrInvalid", tc.id, tc.role, err)
		}
	}
}

// With no Secret Service reachable, every call returns the one error the UI shows,
// promptly, without the password in it.
func TestNoSecretServiceGivesTheFallbackMessage(t *testing.T) {
	bus := "unix:path=" + filepath.Join(t.TempDir(), "no-bus-here")
	cmd, out := startHelper(t, "keyring-calls", "", "DBUS_SESSION_BUS_ADDRESS="+bus)
	results := readKeyringResults(t, cmd, out)
	if len(results) != 3 {
		t.Fatalf("helper reported %d calls, want 3", len(results))
	}
	for _, r := range results {
		if !r.Unavailable {
			t.Errorf("%s: %q is not ErrKeyringUnavailable", r.Op, r.Message)
		}
		if r.Message != "the system keyring is not available; Shardlift will ask for the passwords again when it resumes" {
			t.Errorf("%s: message %q", r.Op, r.Message)
		}
		if r.Cause == "" || strings.Contains(r.Cause+r.Message, "hunter2") {
			t.Errorf("%s: cause %q must say why, without the password", r.Op, r.Cause)
		}
	}
}

// A bus that accepts the connection and never answers must not hang the app: the
// call gives up after the timeout, and the next call fails at once instead of
// queueing behind the stuck one.
func TestHungSecretServiceTimesOut(t *testing.T) {
	cmd, out := startHelper(t, "keyring-silent-bus", t.TempDir())
	results := readKeyringResults(t, cmd, out)
	if len(results) != 2 {
		t.Fatalf("helper reported %d calls, want 2", len(results))
	}
	for _, r := range results {
		if !r.Unavailable {
			t.Errorf("%s: %q is not ErrKeyringUnavailable", r.Op, r.Message)
		}
	}
	if !strings.Contains(results[0].Cause, "no answer") {
		t.Errorf("first call's cause %q, want a timeout", results[0].Cause)
	}
	if !strings.Contains(results[1].Cause, "has not answered yet") {
		t.Errorf("second call's cause %q, want it refused behind the stuck call", results[1].Cause)
	}
}
