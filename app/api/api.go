package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/shardlift/shardlift/engine"
)

// The headless API of `shardlift migrate --api ADDR` (DESIGN section 4), served on a
// loopback address only (in the status, docsTotal and bytesTotal are estimates while
// totalsEstimated is true, never below docsCopied and bytesCopied; lagSeconds is null
// until the shard replays its oplog, overall until every shard does, and
// optimeGapSeconds null while a shard has no lag yet; sizes are bytes, rates per
// second):
//
//	GET  /status                  the migration's snapshot as JSON (sourceReadPreference
//	                              says which members of the source's shards are read,
//	                              each shard's readPreference those of that shard)
//	POST /cutover/start           ready -> cutting over: 409 naming the shard not in sync
//	POST /cutover/done[?override=true]  I'm done: 409 naming the shard not in sync, or
//	                              with the gap while it is not 0
//	POST /cancel                  stop syncing, keep the data, restore the balancers
//	POST /shards/{name}/restart   copy and replay one shard again
//	POST /timer/extend            add 24 hours to the cutover window
//	POST /verify                  compare source and destination now (while ready)
//	GET  /metrics                 the same snapshot in the Prometheus text format (metrics.go)
//
// With --api-token-file every request carries "Authorization: Bearer <token>"
// (apitoken.go); a request without it is answered 401.
//
// Every POST answers the status after the action (200), or {"error": ...} with 409
// for an action the lifecycle refuses now, 404 for an unknown shard, 503 when the
// migration is not running, 500 otherwise. The thin clients (`shardlift status`,
// `cutover`, `done`, ...) print the answer.

// Control is what the API drives: *engine.Migration.
type Control interface {
	Snapshot() engine.Snapshot
	StartCutover(ctx context.Context) error
	Done(ctx context.Context, override bool) error
	Cancel(ctx context.Context) error
	ExtendTimer(ctx context.Context) error
	RestartShard(ctx context.Context, shard string) error
	Verify(ctx context.Context) (*engine.Verification, error)
}

var _ Control = (*engine.Migration)(nil)

// Status is GET /status.
type Status struct {
	ID               string       `json:"id"`
	Name             string       `json:"name"`
	State            engine.State `json:"state"`
	Reason           string       `json:"reason,omitempty"`
	StartedAt        *time.Time   `json:"startedAt"`
	OptimeGapSeconds *float64     `json:"optimeGapSeconds"`
	GapShard         string       `json:"gapShard,omitempty"`
	// CanCutover and CanFinish say whether POST /cutover/start and /cutover/done
	// would be accepted now; when not, CutoverBlocked and FinishBlocked say why,
	// naming the shard that is not in sync.
	CanCutover     bool   `json:"canCutover"`
	CutoverBlocked string `json:"cutoverBlocked,omitempty"`
	CanFinish      bool   `json:"canFinish"`
	FinishBlocked  string `json:"finishBlocked,omitempty"`
	// LastSourceWrite is the newest write to user data the tails read from the
	// source, SourceWriteAgeSeconds how long ago (null before one was read).
	LastSourceWrite       *time.Time        `json:"lastSourceWrite"`
	SourceWriteAgeSeconds *float64          `json:"sourceWriteAgeSeconds"`
	TimerDeadline         *time.Time        `json:"timerDeadline"`
	DestinationURI        string            `json:"destinationUri"`
	SourceReadPreference  string            `json:"sourceReadPreference"`
	Verification          *verificationJSON `json:"verification"`
	// Placement is how far the start placed the destination's sharded collections
	// (null before it began placing them).
	Placement *placementJSON `json:"placement"`
	// Continuous is the continuous verification's progress (null before every
	// shard replays).
	Continuous *continuousJSON `json:"continuous"`
	// UniqueIndexes says how far the restore of the unique indexes relaxed for the
	// sync got while it runs (empty before every shard is in sync).
	UniqueIndexes string       `json:"uniqueIndexes,omitempty"`
	Overall       progressJSON `json:"overall"`
	Shards        []shardJSON  `json:"shards"`
	SourceUsers   []userJSON   `json:"sourceUsers"`
	Summary       *summaryJSON `json:"summary"`
}

type placementJSON struct {
	Collections       int `json:"collections"`
	CollectionsPlaced int `json:"collectionsPlaced"`
	Ranges            int `json:"ranges"`
	RangesPlaced      int `json:"rangesPlaced"`
}

type continuousJSON struct {
	Namespaces         int   `json:"namespaces"`
	NamespacesCompared int   `json:"namespacesCompared"`
	Ranges             int   `json:"ranges"`
	RangesCompared     int   `json:"rangesCompared"`
	Rechecked          int64 `json:"documentsRechecked"`
	Pending            int   `json:"mismatchesPendingRecheck"`
	Persisting         int   `json:"mismatchesPersisting"`
	// WaitingForReplay: its reads wait now for a replay that lags.
	WaitingForReplay bool `json:"waitingForReplay"`
}

type progressJSON struct {
	DocsCopied      int64    `json:"docsCopied"`
	DocsTotal       int64    `json:"docsTotal"`
	BytesCopied     int64    `json:"bytesCopied"`
	BytesTotal      int64    `json:"bytesTotal"`
	TotalsEstimated bool     `json:"totalsEstimated"`
	CopyRate        float64  `json:"copyRate"`
	ApplyRate       float64  `json:"applyRate"`
	LagSeconds      *float64 `json:"lagSeconds"`
}

type rangesJSON struct {
	Namespace string `json:"namespace"`
	Done      int    `json:"done"`
	Total     int    `json:"total"`
}

type clearingJSON struct {
	// Namespace is the one being cleared (empty before the first); Done of Total
	// namespaces are cleared.
	Namespace string `json:"namespace"`
	Done      int    `json:"done"`
	Total     int    `json:"total"`
}

type shardJSON struct {
	Name  string       `json:"name"`
	Phase engine.Phase `json:"phase"`
	progressJSON
	Error    string `json:"error,omitempty"`
	Retrying string `json:"retrying,omitempty"`
	Waiting  string `json:"waiting,omitempty"`
	// Moved names the chunk or collection move that made the shard copy again.
	Moved string `json:"moved,omitempty"`
	// Clearing is where a restarted shard's clear of its data on the destination
	// is, while its phase is clearing.
	Clearing *clearingJSON `json:"clearing,omitempty"`
	// ReadPreference is the one the shard's copy and tail read it with: the source's
	// (sourceReadPreference), or the shard's own (--shard-read-preference).
	ReadPreference string `json:"readPreference,omitempty"`
	// Ranges are the namespaces the shard copies in _id ranges, with the ranges
	// copied and in all.
	Ranges []rangesJSON `json:"ranges,omitempty"`
	// GapSeconds is the shard's optime gap; AppliedUpTo the source time up to which
	// it applied every entry (null before it applied one).
	GapSeconds  float64    `json:"gapSeconds"`
	AppliedUpTo *time.Time `json:"appliedUpTo"`
	// Buffer is the shard's oplog buffer (absent when the oplog is read directly).
	Buffer *bufferJSON `json:"oplogBuffer,omitempty"`
}

// bufferJSON is a shard's oplog buffer: bytes on disk, its limit, the source time
// fetched up to, and whether it is full (fetching waits for the replay).
type bufferJSON struct {
	Bytes int64 `json:"bytes"`
	// Entries are those held that the replay has not applied yet.
	Entries     int64      `json:"entries"`
	Limit       int64      `json:"limit"`
	FetchedUpTo *time.Time `json:"fetchedUpTo"`
	Full        bool       `json:"full"`
}

// summaryJSON is what remains once the migration ended.
type summaryJSON struct {
	FinishedAt       time.Time      `json:"finishedAt"`
	Documents        int64          `json:"documents"`
	Bytes            int64          `json:"bytes"`
	OptimeGapSeconds float64        `json:"optimeGapSeconds"`
	Verification     string         `json:"verification,omitempty"`
	UsersToRecreate  []string       `json:"usersToRecreate"`
	Notes            []string       `json:"notes"`
	Shards           []positionJSON `json:"shards"`
}

// positionJSON is where one shard stopped (cancelled, expired).
type positionJSON struct {
	Shard       string       `json:"shard"`
	Phase       engine.Phase `json:"phase"`
	AppliedUpTo *time.Time   `json:"appliedUpTo"`
	Consistent  bool         `json:"consistent"`
	Text        string       `json:"text"`
}

type verificationJSON struct {
	At         time.Time      `json:"at"`
	OK         bool           `json:"ok"`
	Namespaces int            `json:"namespaces"`
	Ranges     int            `json:"ranges"`
	Matched    int            `json:"matched"`
	Documents  int64          `json:"documents"`
	Overridden bool           `json:"overridden,omitempty"`
	Mismatches []mismatchJSON `json:"mismatches"`
	// LateWrites are the writes the source took after the sync stopped.
	LateWrites []lateWriteJSON `json:"lateWrites"`
	// IndexDifferences are the indexes the destination does not hold as the
	// source does (the finalize compares them once the relaxed ones are restored).
	IndexDifferences []indexDiffJSON `json:"indexDifferences"`
	// Continuous is what the finalize took from the continuous verification
	// (null when it compared everything).
	Continuous *reuseJSON `json:"continuous,omitempty"`
}

type indexDiffJSON struct {
	Namespace string `json:"namespace"`
	Index     string `json:"index"`
	What      string `json:"what"`
}

type reuseJSON struct {
	NamespacesReused   int   `json:"namespacesReused"`
	DocumentsRechecked int64 `json:"documentsRechecked"`
	NamespacesCompared int   `json:"namespacesCompared"`
	// RangesCompared are the ranges (chunks) of namespaces compared by range
	// that the continuous verification had not compared.
	RangesCompared int `json:"rangesCompared"`
}

type lateWriteJSON struct {
	Shard      string    `json:"shard"`
	Writes     int       `json:"writes"`
	AtLeast    bool      `json:"atLeast"`
	First      time.Time `json:"first,omitempty"`
	Namespaces []string  `json:"namespaces"`
	Text       string    `json:"text"`
}

type mismatchJSON struct {
	Namespace   string   `json:"namespace"`
	Range       string   `json:"range"`
	SourceCount int64    `json:"sourceCount"`
	DestCount   int64    `json:"destCount"`
	SampleIDs   []string `json:"sampleIds"`
}

type userJSON struct {
	Name   string   `json:"name"`
	DB     string   `json:"db"`
	Roles  []string `json:"roles"`
	IsRole bool     `json:"isRole,omitempty"`
}

// ErrorBody is the body of a refused or failed action.
type ErrorBody struct {
	Error string       `json:"error"`
	State engine.State `json:"state"`
	// Shard is the shard that is not in sync, or furthest behind.
	Shard            string            `json:"shard,omitempty"`
	OptimeGapSeconds *float64          `json:"optimeGapSeconds,omitempty"`
	Verification     *verificationJSON `json:"verification,omitempty"`
}

func toStatus(s engine.Snapshot) Status {
	out := Status{
		ID: s.ID, Name: s.Name, State: s.State, Reason: s.Reason,
		OptimeGapSeconds: seconds(s.OptimeGap, s.OptimeGapKnown), DestinationURI: s.DestinationURI,
		SourceReadPreference: s.SourceReads,
		Verification:         toVerificationJSON(s.Verification), Overall: toProgress(s.Overall),
		Shards: []shardJSON{}, SourceUsers: []userJSON{},
	}
	out.StartedAt, out.TimerDeadline, out.GapShard = optionalTime(s.StartedAt), optionalTime(s.TimerDeadline), s.GapShard
	out.CanCutover, out.CutoverBlocked = s.CanStartCutover()
	out.CanFinish, out.FinishBlocked = s.CanFinish()
	if !s.LastSourceWrite.IsZero() {
		out.LastSourceWrite = optionalTime(s.LastSourceWrite)
		age := s.SourceWriteAge.Seconds()
		out.SourceWriteAgeSeconds = &age
	}
	if p := s.Placement; p != nil {
		out.Placement = &placementJSON{Collections: p.Collections, CollectionsPlaced: p.CollectionsPlaced, Ranges: p.Ranges, RangesPlaced: p.RangesPlaced}
	}
	out.UniqueIndexes = s.UniqueIndexes
	if c := s.Continuous; c != nil {
		out.Continuous = &continuousJSON{Namespaces: c.Namespaces, NamespacesCompared: c.NamespacesCompared, Ranges: c.Ranges,
			RangesCompared: c.RangesCompared, Rechecked: c.Rechecked, Pending: c.Pending, Persisting: c.Persisting,
			WaitingForReplay: c.WaitingForReplay}
	}
	for _, sh := range s.Shards {
		out.Shards = append(out.Shards, shardJSON{Name: sh.Name, Phase: sh.Phase, progressJSON: toProgress(sh.Progress), Error: sh.Error, Retrying: sh.Retrying, Waiting: sh.Waiting, Moved: sh.Moved, ReadPreference: sh.Reads,
			GapSeconds: sh.Gap.Seconds(), AppliedUpTo: optionalTime(sh.AppliedUpTo)})
		if sh.Phase == engine.Clearing {
			c := sh.Clearing
			out.Shards[len(out.Shards)-1].Clearing = &clearingJSON{Namespace: c.Namespace, Done: c.Done, Total: c.Total}
		}
		for _, r := range sh.Ranges {
			last := &out.Shards[len(out.Shards)-1]
			last.Ranges = append(last.Ranges, rangesJSON{Namespace: r.Namespace, Done: r.Done, Total: r.Total})
		}
		if b := sh.Buffer; b != nil {
			out.Shards[len(out.Shards)-1].Buffer = &bufferJSON{Bytes: b.Bytes, Entries: b.Entries, Limit: b.Limit, FetchedUpTo: optionalTime(b.FetchedUpTo), Full: b.Full}
		}
	}
	if sum := s.Summary; sum != nil {
		out.Summary = &summaryJSON{FinishedAt: sum.FinishedAt.UTC(), Documents: sum.Documents, Bytes: sum.Bytes, OptimeGapSeconds: sum.OptimeGap.Seconds(),
			Verification: sum.Verification, UsersToRecreate: nonNil(sum.UsersToRecreate), Notes: nonNil(sum.Notes), Shards: []positionJSON{}}
		for _, p := range sum.Shards {
			out.Summary.Shards = append(out.Summary.Shards, positionJSON{Shard: p.Shard, Phase: p.Phase, AppliedUpTo: optionalTime(p.AppliedUpTo), Consistent: p.Consistent, Text: p.Text})
		}
	}
	for _, u := range s.SourceUsers {
		roles := u.Roles
		if roles == nil {
			roles = []string{}
		}
		out.SourceUsers = append(out.SourceUsers, userJSON{Name: u.Name, DB: u.DB, Roles: roles, IsRole: u.IsRole})
	}
	return out
}

// optionalTime is t in UTC, or nil (JSON null) when it is zero.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// nonNil makes an empty list a JSON [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func toProgress(p engine.Progress) progressJSON {
	return progressJSON{
		DocsCopied: p.DocsCopied, DocsTotal: p.DocsTotal, BytesCopied: p.BytesCopied, BytesTotal: p.BytesTotal,
		TotalsEstimated: p.TotalsEstimated, CopyRate: p.CopyRate, ApplyRate: p.ApplyRate, LagSeconds: seconds(p.Lag, p.LagKnown),
	}
}

// seconds is a lag or a gap in seconds, nil (null) when it is not known.
func seconds(d time.Duration, known bool) *float64 {
	if !known {
		return nil
	}
	s := d.Seconds()
	return &s
}

func toVerificationJSON(v *engine.Verification) *verificationJSON {
	if v == nil {
		return nil
	}
	out := &verificationJSON{At: v.At.UTC(), OK: v.OK(), Namespaces: v.Namespaces, Ranges: v.Ranges, Matched: v.Matched,
		Documents: v.Documents, Overridden: v.Overridden, Mismatches: []mismatchJSON{}, LateWrites: []lateWriteJSON{}, IndexDifferences: []indexDiffJSON{}}
	if c := v.Continuous; c != nil {
		out.Continuous = &reuseJSON{NamespacesReused: c.Reused, DocumentsRechecked: c.Rechecked, NamespacesCompared: c.Compared, RangesCompared: c.RangesCompared}
	}
	for _, l := range v.Late {
		out.LateWrites = append(out.LateWrites, lateWriteJSON{Shard: l.Shard, Writes: l.Writes, AtLeast: l.AtLeast, First: l.First.UTC(),
			Namespaces: append([]string{}, l.Namespaces...), Text: l.String()})
	}
	for _, d := range v.Indexes {
		out.IndexDifferences = append(out.IndexDifferences, indexDiffJSON{Namespace: d.Namespace, Index: d.Index, What: d.What})
	}
	for _, m := range v.Mismatches {
		out.Mismatches = append(out.Mismatches, mismatchJSON{Namespace: m.Namespace, Range: m.Range, SourceCount: m.SourceCount, DestCount: m.DestCount, SampleIDs: m.SampleIDs})
	}
	return out
}

// NewHandler serves the API. Actions run in a context derived from base (the
// migrate command's): a client that disconnects does not interrupt a finalize.
// With a token (--api-token-file), every request must carry it; "" serves anyone
// on this machine.
func NewHandler(base context.Context, m Control, token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, toStatus(m.Snapshot()))
	})
	mux.Handle("GET /metrics", metricsHandler(m.Snapshot))
	action := func(do func(ctx context.Context, r *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := do(base, r); err != nil {
				writeError(w, m, err)
				return
			}
			writeJSON(w, http.StatusOK, toStatus(m.Snapshot()))
		}
	}
	mux.Handle("POST /cutover/start", action(func(ctx context.Context, _ *http.Request) error { return m.StartCutover(ctx) }))
	mux.Handle("POST /cutover/done", action(func(ctx context.Context, r *http.Request) error {
		return m.Done(ctx, r.URL.Query().Get("override") == "true")
	}))
	mux.Handle("POST /cancel", action(func(ctx context.Context, _ *http.Request) error { return m.Cancel(ctx) }))
	mux.Handle("POST /timer/extend", action(func(ctx context.Context, _ *http.Request) error { return m.ExtendTimer(ctx) }))
	mux.Handle("POST /shards/{name}/restart", action(func(ctx context.Context, r *http.Request) error {
		return m.RestartShard(ctx, r.PathValue("name"))
	}))
	mux.Handle("POST /verify", action(func(ctx context.Context, _ *http.Request) error {
		_, err := m.Verify(ctx)
		return err
	}))
	return loopbackOnly(requireToken(token, mux))
}

// loopbackOnly refuses requests that do not come from this machine: the API can
// stop a migration.
func loopbackOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			writeJSON(w, http.StatusForbidden, ErrorBody{Error: "the Shardlift API answers only this machine"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, m Control, err error) {
	s := m.Snapshot()
	body := ErrorBody{Error: err.Error(), State: s.State}
	code := http.StatusInternalServerError
	var gap *engine.GapError
	var notSynced *engine.NotSyncedError
	var mismatch *engine.MismatchError
	switch {
	case errors.As(err, &notSynced):
		code = http.StatusConflict
		body.Shard = notSynced.Shard
	case errors.As(err, &gap):
		code = http.StatusConflict
		secs := gap.Gap.Seconds()
		body.OptimeGapSeconds, body.Shard = &secs, gap.Shard
	case errors.As(err, &mismatch):
		code = http.StatusConflict
		body.Verification = toVerificationJSON(mismatch.Verification)
	case errors.Is(err, engine.ErrRefused):
		code = http.StatusConflict
	case errors.Is(err, engine.ErrUnknownShard):
		code = http.StatusNotFound
	case errors.Is(err, engine.ErrNotRunning):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // "a -> b" stays readable
	_ = enc.Encode(v)
}

// CheckLoopback refuses an --api address other machines could reach.
func CheckLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("--api %q: give HOST:PORT, such as 127.0.0.1:8321", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--api %q: the API listens on a loopback address only (127.0.0.1 or ::1), since it can stop the migration", addr)
	}
	return nil
}

// Call makes one request, with the API's token when it has one, and returns the
// status code and body.
func Call(ctx context.Context, addr, method, path, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, bytes.NewReader(nil))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, body, err
}
