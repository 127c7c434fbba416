package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Migrator is one run of `shardlift migrate` as a child process, so that Kill is a
// real SIGKILL: no deferred call, no flush, no goodbye to the servers.
type Migrator struct {
	cmd    *exec.Cmd
	api    API
	exited chan struct{}
	err    error // Wait's result, set before exited is closed
}

// StartMigrator starts bin with `migrate` args; the child's output goes to log.
// api is the address given with --api.
func StartMigrator(bin string, args []string, api string, log io.Writer) (*Migrator, error) {
	cmd := exec.Command(bin, append([]string{"migrate"}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "LANG=C.UTF-8")
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s migrate: %w", bin, err)
	}
	m := &Migrator{cmd: cmd, api: API{Addr: api}, exited: make(chan struct{})}
	go func() {
		m.err = cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// API is the child's JSON API.
func (m *Migrator) API() API { return m.api }

// Pid is the child's process id.
func (m *Migrator) Pid() int { return m.cmd.Process.Pid }

// Kill sends SIGKILL and waits for the process to be gone. Killing a process that has
// exited already is not an error.
func (m *Migrator) Kill() {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.exited
}

// Exited tells whether the process has ended, and its exit code then.
func (m *Migrator) Exited() (code int, exited bool) {
	select {
	case <-m.exited:
		return m.cmd.ProcessState.ExitCode(), true
	default:
		return 0, false
	}
}

// Wait waits for the process to end (or ctx) and returns its exit code.
func (m *Migrator) Wait(ctx context.Context) (int, error) {
	select {
	case <-m.exited:
		return m.cmd.ProcessState.ExitCode(), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("shardlift migrate (pid %d) did not exit: %w", m.Pid(), ctx.Err())
	}
}

// Status is the part of GET /status the suite reads.
type Status struct {
	State            string   `json:"state"`
	Reason           string   `json:"reason"`
	OptimeGapSeconds *float64 `json:"optimeGapSeconds"` // nil while not known
	Shards           []Shard  `json:"shards"`
	// Continuous is the continuous verification's progress (nil before it runs).
	Continuous *struct {
		Namespaces         int `json:"namespaces"`
		NamespacesCompared int `json:"namespacesCompared"`
		Ranges             int `json:"ranges"`
		RangesCompared     int `json:"rangesCompared"`
	} `json:"continuous"`
	// UniqueIndexes is the restore of the relaxed unique indexes while syncing.
	UniqueIndexes string `json:"uniqueIndexes"`
	Verification  *struct {
		Documents  int64 `json:"documents"`
		Continuous *struct {
			NamespacesReused   int   `json:"namespacesReused"`
			DocumentsRechecked int64 `json:"documentsRechecked"`
			NamespacesCompared int   `json:"namespacesCompared"`
			RangesCompared     int   `json:"rangesCompared"`
		} `json:"continuous"`
	} `json:"verification"`
}

// Verified reports whether the continuous verification compared every namespace.
func (s Status) Verified() bool {
	return s.Continuous != nil && s.Continuous.Namespaces > 0 && s.Continuous.NamespacesCompared == s.Continuous.Namespaces
}

// Shard is one row of the per-shard progress.
type Shard struct {
	Name       string   `json:"name"`
	Phase      string   `json:"phase"`
	DocsCopied int64    `json:"docsCopied"`
	DocsTotal  int64    `json:"docsTotal"`
	LagSeconds *float64 `json:"lagSeconds"` // nil until the shard replays
	Error      string   `json:"error"`
	Retrying   string   `json:"retrying"`
	Waiting    string   `json:"waiting"`
	Moved      string   `json:"moved"` // the move that made the shard copy again
	// Clearing is where a restarted shard's clear of the destination is (nil
	// unless its phase is clearing).
	Clearing *Clearing `json:"clearing"`
	// AppliedUpTo is the source time up to which the shard applied every entry.
	AppliedUpTo *time.Time `json:"appliedUpTo"`
	// Buffer is the shard's oplog buffer (nil when the oplog is read directly).
	Buffer *Buffer `json:"oplogBuffer"`
}

// Clearing is a restarted shard's clear as the API shows it.
type Clearing struct {
	Namespace string `json:"namespace"`
}

// Buffer is a shard's oplog buffer as the API shows it.
type Buffer struct {
	Bytes       int64      `json:"bytes"`
	FetchedUpTo *time.Time `json:"fetchedUpTo"`
}

// GapClosed reports whether the optime gap is known and 0.
func (s Status) GapClosed() bool { return s.OptimeGapSeconds != nil && *s.OptimeGapSeconds == 0 }

// CaughtUp reports whether every shard replays with a lag of 0.
func (s Status) CaughtUp() bool {
	for _, sh := range s.Shards {
		if sh.LagSeconds == nil || *sh.LagSeconds != 0 {
			return false
		}
	}
	return len(s.Shards) > 0
}

// Shard returns the named row.
func (s Status) Shard(name string) (Shard, bool) {
	for _, sh := range s.Shards {
		if sh.Name == name {
			return sh, true
		}
	}
	return Shard{}, false
}

// Phases is "shard phase, ..." for logs.
func (s Status) Phases() string {
	var parts []string
	for _, sh := range s.Shards {
		p := sh.Name + " " + sh.Phase
		if sh.Error != "" {
			p += " (" + sh.Error + ")"
		} else if sh.Retrying != "" {
			p += " (" + sh.Retrying + ")"
		}
		parts = append(parts, p)
	}
	return s.State + ": " + strings.Join(parts, ", ")
}

// API calls a migrate process's JSON API.
type API struct{ Addr string }

// APIError is an answer other than 200.
type APIError struct {
	Code int
	Body string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("API answered %d: %s", e.Code, strings.TrimSpace(e.Body))
}

// Status reads GET /status.
func (a API) Status(ctx context.Context) (Status, error) {
	var s Status
	body, err := a.call(ctx, http.MethodGet, "/status")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("decode the status: %w", err)
	}
	return s, nil
}

// Post makes one action (path such as /cutover/start) and returns the status after it.
func (a API) Post(ctx context.Context, path string) (Status, error) {
	var s Status
	body, err := a.call(ctx, http.MethodPost, path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("decode the status after %s: %w", path, err)
	}
	return s, nil
}

func (a API) call(ctx context.Context, method, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+a.Addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &APIError{Code: resp.StatusCode, Body: string(body)}
	}
	return body, nil
}

// pollEvery is how often Await looks at the status.
const pollEvery = 50 * time.Millisecond

// Await polls the status until cond holds, the process exits, or ctx ends.
func (m *Migrator) Await(ctx context.Context, what string, cond func(Status) bool) (Status, error) {
	var last Status
	var lastErr error
	for {
		s, err := m.api.Status(ctx)
		if err == nil {
			last, lastErr = s, nil
			if cond(s) {
				return s, nil
			}
			if s.State == "failed" {
				return s, fmt.Errorf("waiting until %s: the migration failed: %s", what, s.Reason)
			}
		} else {
			lastErr = err
		}
		if code, exited := m.Exited(); exited {
			return last, fmt.Errorf("waiting until %s: shardlift migrate exited with %d (last status %s)", what, code, last.Phases())
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("waiting until %s: %w (last status %s, last error %v)", what, ctx.Err(), last.Phases(), lastErr)
		case <-time.After(pollEvery):
		}
	}
}
