package router

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// CommandHold chooses the commands HoldCommands keeps in flight: a slow command on a
// real cluster (an index build on a large collection, a create waiting behind a
// database's DDL lock, a rename in its critical section), made as slow as a test or a
// drill needs, so that a client can be killed while it waits for the answer.
type CommandHold struct {
	// Command is the command's name, any case: "createIndexes", "create", "drop",
	// "renameCollection", "insert", "delete"...
	Command string
	// NS is "db" or "db.coll": only the commands on it (on a collection of db)
	// are held ("" for any). A renameCollection is on its source namespace.
	NS string
	// Value is a string the command must carry somewhere (an index's name, a
	// rename's target, a document's _id), "" for any.
	Value string
}

func (h CommandHold) String() string {
	s := h.Command
	if h.NS != "" {
		s += " on " + h.NS
	}
	if h.Value != "" {
		s += fmt.Sprintf(" carrying %q", h.Value)
	}
	return s
}

// HeldCommand is a command waiting on a hold.
type HeldCommand struct {
	Command string `json:"command"`
	NS      string `json:"ns"`
	// Body is the command document in relaxed extended JSON.
	Body string `json:"body"`
}

// commandHolds are the router's active holds.
type commandHolds struct {
	mu    sync.Mutex
	holds []*commandHold
}

type commandHold struct {
	match    CommandHold
	released chan struct{} // closed on release
	abort    bool          // set before released closes
	held     map[*HeldCommand]struct{}
}

// HoldCommands keeps every command matching h waiting before it acts, until release:
// then the held commands run (abort false), or answer Interrupted without acting
// (abort true), as an operation a DBA's killOp ended. A held command still ends at its
// maxTimeMS (never without one, as on a mongos). Commands arriving after the release are
// not held.
func (r *Router) HoldCommands(h CommandHold) (release func(abort bool)) {
	ch := &commandHold{match: h, released: make(chan struct{}), held: map[*HeldCommand]struct{}{}}
	r.cmdHolds.mu.Lock()
	r.cmdHolds.holds = append(r.cmdHolds.holds, ch)
	r.cmdHolds.mu.Unlock()
	var once sync.Once
	return func(abort bool) {
		once.Do(func() {
			r.cmdHolds.mu.Lock()
			defer r.cmdHolds.mu.Unlock()
			for i, x := range r.cmdHolds.holds {
				if x == ch {
					r.cmdHolds.holds = append(r.cmdHolds.holds[:i], r.cmdHolds.holds[i+1:]...)
					break
				}
			}
			ch.abort = abort
			close(ch.released)
		})
	}
}

// HeldCommands are the commands waiting on a hold now.
func (r *Router) HeldCommands() []HeldCommand {
	r.cmdHolds.mu.Lock()
	defer r.cmdHolds.mu.Unlock()
	var out []HeldCommand
	for _, h := range r.cmdHolds.holds {
		for c := range h.held {
			out = append(out, *c)
		}
	}
	return out
}

// awaitCommandHold waits while a hold matches cmd: nil when the command may run, an error
// (Interrupted, or the command's own time limit) when it must answer without acting.
func (r *Router) awaitCommandHold(ctx context.Context, cmd *wire.Command) error {
	ns := commandNS(cmd)
	r.cmdHolds.mu.Lock()
	var h *commandHold
	for _, x := range r.cmdHolds.holds {
		if x.match.matches(cmd, ns) {
			h = x
			break
		}
	}
	if h == nil {
		r.cmdHolds.mu.Unlock()
		return nil
	}
	body, err := bson.MarshalExtJSON(cmd.Body, false, false)
	if err != nil {
		body = []byte(cmd.Body.String())
	}
	me := &HeldCommand{Command: cmd.Name, NS: ns, Body: string(body)}
	h.held[me] = struct{}{}
	r.cmdHolds.mu.Unlock()
	defer func() {
		r.cmdHolds.mu.Lock()
		delete(h.held, me)
		r.cmdHolds.mu.Unlock()
	}()
	select {
	case <-h.released:
		if h.abort {
			return &wire.Error{Code: 11601, Name: "Interrupted", Msg: "operation was interrupted"}
		}
		return nil
	case <-ctx.Done():
		return &wire.Error{Code: 50, Name: "MaxTimeMSExpired", Msg: "operation exceeded time limit"}
	}
}

func (h CommandHold) matches(cmd *wire.Command, ns string) bool {
	if !strings.EqualFold(h.Command, cmd.Name) {
		return false
	}
	if h.NS != "" && h.NS != ns && (strings.Contains(h.NS, ".") || !strings.HasPrefix(ns+".", h.NS+".")) {
		return false
	}
	return h.Value == "" || carries(bson.RawValue{Type: bson.TypeEmbeddedDocument, Value: cmd.Body}, h.Value)
}

// commandNS is the namespace a command runs on: db.coll for a collection's command,
// the source namespace of a renameCollection, the database otherwise.
func commandNS(cmd *wire.Command) string {
	elems, err := cmd.Body.Elements()
	if err != nil || len(elems) == 0 {
		return cmd.DB
	}
	v, ok := elems[0].Value().StringValueOK()
	switch {
	case !ok:
		return cmd.DB
	case strings.EqualFold(cmd.Name, "renameCollection"):
		return v
	}
	return cmd.DB + "." + v
}

// carries reports whether v is, or holds at any depth, the string s.
func carries(v bson.RawValue, s string) bool {
	switch v.Type {
	case bson.TypeString:
		return v.StringValue() == s
	case bson.TypeEmbeddedDocument, bson.TypeArray:
		vals, err := bson.Raw(v.Value).Values()
		if err != nil {
			return false
		}
		for _, x := range vals {
			if carries(x, s) {
				return true
			}
		}
	}
	return false
}
