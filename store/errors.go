package store

import "errors"

// Sentinel errors of the store. Test them with errors.Is: the errors returned wrap them
// with the file path or the migration id and say what the user can do.
var (
	// ErrLocked: another process (another Shardlift) holds the state file. Returned
	// after Options.Timeout instead of waiting for the lock forever.
	ErrLocked = errors.New("another Shardlift is using this state file")

	// ErrCorrupt: the state file cannot be read (truncated, random bytes, damaged
	// pages, or not a Shardlift state file). The file is left untouched.
	ErrCorrupt = errors.New("the state file is damaged and cannot be read")

	// ErrNewerSchema: the state file was written by a newer Shardlift whose format this
	// version does not know. The file is left untouched.
	ErrNewerSchema = errors.New("the state file was written by a newer version of Shardlift")

	// ErrNotFound: no migration with that id is recorded.
	ErrNotFound = errors.New("no such migration in the state file")

	// ErrInvalid: a record was refused before it was written, because it is
	// malformed or because it would put a secret on disk.
	ErrInvalid = errors.New("refused to save")

	// ErrSecretNotFound: the keyring answered but holds no password for that
	// migration and role; ask the user for it.
	ErrSecretNotFound = errors.New("no password saved in the system keyring")

	// ErrKeyringUnavailable: no Secret Service answered (none running, no D-Bus session,
	// locked and prompting, or too slow). The app keeps working without saved passwords.
	// The message is meant to be shown to the user as it is.
	ErrKeyringUnavailable = errors.New("the system keyring is not available; Shardlift will ask for the passwords again when it resumes")
)
