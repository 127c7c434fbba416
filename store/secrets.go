package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zalando/go-keyring"
)

// KeyringService is the service name under which passwords are saved in the keyring.
const KeyringService = "shardlift"

// Roles of a migration's secrets: each side's user password, and the password of
// each side's client certificate key (tlsCertificateKeyFile).
const (
	RoleSource         = "source"
	RoleDestination    = "destination"
	RoleSourceKey      = "source-key"
	RoleDestinationKey = "destination-key"
)

// roles are every role a migration's secrets may be saved under.
var roles = []string{RoleSource, RoleDestination, RoleSourceKey, RoleDestinationKey}

// DefaultKeyringTimeout bounds one keyring call.
const DefaultKeyringTimeout = 2 * time.Second

// KeyringError is how Secrets reports an unusable keyring: errors.Is(err,
// ErrKeyringUnavailable) holds and Error() is exactly the sentence the UI shows; Op and
// Cause (the underlying D-Bus error, which never contains the password) are for the log.
type KeyringError struct {
	Op    string // e.g. "save the source password of migration 42"
	Cause error
}

func (e *KeyringError) Error() string        { return ErrKeyringUnavailable.Error() }
func (e *KeyringError) Is(target error) bool { return target == ErrKeyringUnavailable }
func (e *KeyringError) Unwrap() error        { return e.Cause }

// Secrets saves the source and destination passwords of each migration in the OS
// keyring (Secret Service on Linux), under service KeyringService and key
// "<migration id>/<role>".
//
// go-keyring calls cannot be cancelled and may block forever (a locked keyring waiting
// on a prompt, a bus that never answers), so each call runs in a goroutine owned by
// Secrets and is abandoned after the timeout with ErrKeyringUnavailable. At most one
// call is in flight: while an abandoned call still blocks, later calls fail at once
// instead of piling up goroutines; the slot is freed when that call finally returns.
// Every ErrKeyringUnavailable error of its methods is a *KeyringError.
type Secrets struct {
	timeout time.Duration
	slot    chan struct{} // holds a token while a keyring call runs
	mu      struct {
		sync.Mutex
		abandoned bool // the call in flight timed out and still blocks
	}
}

// NewSecrets returns a Secrets whose calls give up after timeout
// (DefaultKeyringTimeout when zero).
func NewSecrets(timeout time.Duration) *Secrets {
	if timeout <= 0 {
		timeout = DefaultKeyringTimeout
	}
	return &Secrets{timeout: timeout, slot: make(chan struct{}, 1)}
}

// Set saves (or replaces) the password of role for a migration.
func (s *Secrets) Set(migrationID, role, password string) error {
	key, err := secretKey(migrationID, role)
	if err != nil {
		return err
	}
	op := fmt.Sprintf("save the %s password of migration %s", role, migrationID)
	_, err = s.call(op, func() (string, error) { return "", keyring.Set(KeyringService, key, password) })
	return err
}

// Get reads the password of role for a migration: ErrSecretNotFound when none is
// saved, ErrKeyringUnavailable when the keyring cannot be used (ask the user in both
// cases).
func (s *Secrets) Get(migrationID, role string) (string, error) {
	key, err := secretKey(migrationID, role)
	if err != nil {
		return "", err
	}
	op := fmt.Sprintf("read the %s password of migration %s", role, migrationID)
	return s.call(op, func() (string, error) { return keyring.Get(KeyringService, key) })
}

// Delete removes the password of role for a migration; removing a password that is
// not there is not an error.
func (s *Secrets) Delete(migrationID, role string) error {
	key, err := secretKey(migrationID, role)
	if err != nil {
		return err
	}
	op := fmt.Sprintf("delete the %s password of migration %s", role, migrationID)
	_, err = s.call(op, func() (string, error) { return "", keyring.Delete(KeyringService, key) })
	if errors.Is(err, ErrSecretNotFound) {
		return nil
	}
	return err
}

// DeleteAll removes every secret of a migration (and only that migration's).
func (s *Secrets) DeleteAll(migrationID string) error {
	for _, role := range roles {
		if err := s.Delete(migrationID, role); err != nil {
			return err
		}
	}
	return nil
}

func secretKey(migrationID, role string) (string, error) {
	if err := checkName("migration id", migrationID); err != nil {
		return "", err
	}
	if !slices.Contains(roles, role) {
		return "", fmt.Errorf("%w: password role %q (want one of %s)", ErrInvalid, role, strings.Join(roles, ", "))
	}
	return migrationID + "/" + role, nil
}

type keyringResult struct {
	value string
	err   error
}

// call runs f under the one-call-in-flight rule and the timeout, and classifies its
// error: not found stays ErrSecretNotFound, anything else means the keyring cannot be
// used right now (no bus, no Secret Service, locked, dismissed prompt).
func (s *Secrets) call(op string, f func() (string, error)) (string, error) {
	s.mu.Lock()
	abandoned := s.mu.abandoned
	s.mu.Unlock()
	if abandoned {
		return "", &KeyringError{Op: op, Cause: errors.New("an earlier keyring call has not answered yet")}
	}
	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case s.slot <- struct{}{}:
	case <-timer.C:
		return "", &KeyringError{Op: op, Cause: fmt.Errorf("another keyring call is still running after %s", s.timeout)}
	}

	done := make(chan keyringResult, 1) // buffered: an abandoned call must not block on it
	go func() {
		defer func() {
			s.mu.Lock()
			s.mu.abandoned = false
			s.mu.Unlock()
			<-s.slot
		}()
		v, err := f()
		done <- keyringResult{v, err}
	}()

	select {
	case r := <-done:
		return classify(op, r)
	case <-timer.C:
	}
	// The result is sent before abandoned is cleared, so checking done under the
	// lock cannot mark a call abandoned after it has finished.
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case r := <-done:
		return classify(op, r)
	default:
		s.mu.abandoned = true
		return "", &KeyringError{Op: op, Cause: fmt.Errorf("no answer from the Secret Service within %s", s.timeout)}
	}
}

func classify(op string, r keyringResult) (string, error) {
	switch {
	case r.err == nil:
		return r.value, nil
	case errors.Is(r.err, keyring.ErrNotFound):
		return "", fmt.Errorf("%s: %w", op, ErrSecretNotFound)
	}
	return "", &KeyringError{Op: op, Cause: r.err}
}
