package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/oplog"
)

// Late writes: the cutover asks the DBA to stop every write to the source before
// I'm done, and I'm done drains each shard to the newest entry its oplog had at
// that moment, then stops the sync. A write the source takes after that (an
// application that was not stopped, a batch job, a second application server)
// never reaches the destination, and the verification that follows sees it only
// when it lands in a range not compared yet. So once the verification has run,
// finalize reads each source shard's oplog after the entry its replay applied
// last: any write to a migrated namespace there is reported with the
// verification, which then does not pass (the DBA stops the writer and cancels,
// or finishes with an override, knowing what the destination lacks).

// LateWrites are the writes one source shard took after its replay stopped.
type LateWrites struct {
	Shard string
	// Writes counts the entries found (at most maxLateEntries are read).
	Writes int
	// AtLeast is set when more entries followed than were read.
	AtLeast bool
	// First is the wall time of the first of them (zero when the oplog has none).
	First time.Time
	// Namespaces are the first few namespaces written, in oplog order.
	Namespaces []string
}

// maxLateEntries bounds the entries read after a shard's stop point, and
// maxLateNamespaces the namespaces named for it.
const (
	maxLateEntries    = 10000
	maxLateNamespaces = 5
)

func (l LateWrites) String() string {
	n := fmt.Sprintf("%d", l.Writes)
	if l.AtLeast {
		n = "at least " + n
	}
	s := fmt.Sprintf("shard %s took %s writes after the sync stopped", l.Shard, n)
	if !l.First.IsZero() {
		s += fmt.Sprintf(" (the first at %s UTC)", l.First.UTC().Format("15:04:05"))
	}
	if len(l.Namespaces) > 0 {
		s += " to " + strings.Join(l.Namespaces, ", ")
	}
	return s
}

// countLateWrites adds to late the entries of raws that write to a migrated
// namespace: what the replay would have applied had it still run. The oplog's
// no-ops, chunk migrations' entries and MongoDB's own namespaces are not writes
// of an application.
func countLateWrites(late *LateWrites, raws []bson.Raw) error {
	for _, raw := range raws {
		e, err := oplog.Decode(raw)
		if err != nil {
			return fmt.Errorf("read the oplog of shard %s after the sync stopped: %w", late.Shard, err)
		}
		ns, ok := lateWriteNamespace(&e)
		if !ok {
			continue
		}
		if late.Writes == 0 {
			late.First = e.Wall
		}
		late.Writes++
		if ns != "" && len(late.Namespaces) < maxLateNamespaces && !slices.Contains(late.Namespaces, ns) {
			late.Namespaces = append(late.Namespaces, ns)
		}
	}
	return nil
}

// lateWriteNamespace says whether e writes to a migrated namespace, and which
// ("" when the entry does not say, as a transaction's commit does not).
func lateWriteNamespace(e *oplog.Entry) (string, bool) {
	if e.FromMigrate {
		return "", false
	}
	switch e.Op {
	case oplog.OpInsert, oplog.OpUpdate, oplog.OpDelete:
		return e.NS.String(), namespaces.Migrated(e.NS.DB, e.NS.Coll)
	case oplog.OpCommand:
	default:
		return "", false
	}
	switch e.Command {
	case oplog.CmdApplyOps:
		return innerWriteNamespace(e.O)
	case oplog.CmdCommitTransaction:
		// The commit of a transaction prepared before the stop point: its
		// writes become visible now.
		return "", true
	case oplog.CmdAbortTransaction, oplog.CmdDBCheck:
		return "", false
	}
	if !namespaces.UserDatabase(e.NS.DB) {
		return "", false
	}
	target := e.NS.DB
	if v, ok := e.O.Lookup(string(e.Command)).StringValueOK(); ok {
		target += "." + v
	}
	return target, true
}

// innerWriteNamespace is lateWriteNamespace for an applyOps: the first inner
// operation on a migrated namespace.
func innerWriteNamespace(o bson.Raw) (string, bool) {
	ops, ok := o.Lookup("applyOps").ArrayOK()
	if !ok {
		return "", false
	}
	values, err := ops.Values()
	if err != nil {
		return "", false
	}
	for _, v := range values {
		op, ok := v.DocumentOK()
		if !ok {
			continue
		}
		ns, _ := op.Lookup("ns").StringValueOK()
		if db, coll := namespaces.Split(ns); coll != "" && namespaces.Migrated(db, coll) {
			return ns, true
		}
	}
	return "", false
}

// lateWrites reads, for every shard, the writes after the entry its replay
// applied last (finalize calls it after the sync stopped).
func (m *Migration) lateWrites(ctx context.Context, c Clusters) ([]LateWrites, error) {
	var out []LateWrites
	for _, sh := range m.shardList() {
		sh.saveMu.Lock()
		applied := sh.cp.Applied
		sh.saveMu.Unlock()
		if applied == (primitive.Timestamp{}) {
			return nil, fmt.Errorf("shard %s has no replay checkpoint: it cannot be told which writes reached the destination", sh.name)
		}
		late, err := c.WritesAfter(ctx, sh.name, applied)
		if err != nil {
			return nil, fmt.Errorf("read the writes shard %s took after the sync stopped: %w", sh.name, err)
		}
		if late.Writes > 0 {
			out = append(out, late)
		}
	}
	return out, nil
}
