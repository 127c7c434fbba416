package shard

import (
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// StepDownReport says what a stepdown did.
type StepDownReport struct {
	OldPrimary string `json:"oldPrimary"`
	NewPrimary string `json:"newPrimary"`
	Term       int64  `json:"term"`
	// CaughtUp is how many entries the new primary applied before taking over.
	CaughtUp int `json:"caughtUp"`
	// CommonPoint is the newest entry both hold after a rollback: the old primary's
	// entries after it were rolled back (RolledBack of them, touching Refetched
	// documents, now as the new primary has them).
	CommonPoint primitive.Timestamp `json:"commonPoint"`
	RolledBack  int                 `json:"rolledBack"`
	Refetched   int                 `json:"refetched"`
}

// StepDown makes the most advanced secondary primary, in a new term. Without rollback
// it first applies what it lacks (MongoDB's stepDown waits for a secondary to catch
// up); with rollback it takes over where it is, and the old primary rolls back the
// entries it has beyond the new primary's last one: they leave its oplog, and the
// documents they touched become what the new primary holds. Writes waiting on the old
// primary fail; its clients are told "not primary" and find the new one through hello.
func (f *Front) StepDown(rollback bool) (StepDownReport, error) {
	f.lifeMu.Lock()
	defer f.lifeMu.Unlock()
	nodes, err := f.running()
	if err != nil {
		return StepDownReport{}, err
	}
	if len(nodes) < 2 {
		return StepDownReport{}, fmt.Errorf("shard %s is a one-member replica set: no secondary can take over (start it with more members)", f.cfg.Name)
	}
	f.set.mu.Lock()
	old := nodes[f.set.primary]
	f.set.mu.Unlock()
	// Every member stops writing and applying: the old primary first, as writes hold
	// its lock while appliers wait on its oplog.
	old.writeMu.Lock()
	defer old.writeMu.Unlock()
	for _, n := range nodes {
		if n != old {
			n.writeMu.Lock()
			defer n.writeMu.Unlock()
		}
	}
	var next *node
	for _, n := range nodes {
		if n != old && (next == nil || compareTS(n.opTime().TS, next.opTime().TS) > 0) {
			next = n
		}
	}
	rep := StepDownReport{OldPrimary: f.servers[old.member].Addr(), NewPrimary: f.servers[next.member].Addr()}
	common := next.opTime().TS
	var cut []entry
	if rollback {
		var held bool
		cut, held = old.oplog.since(common, 1<<30)
		if !held {
			return rep, fmt.Errorf("shard %s: the new primary's last entry %v is not in the old primary's oplog: no common point to roll back to", f.cfg.Name, common)
		}
		for _, e := range cut {
			if _, inTxn := txnEntryOf(e.raw); inTxn {
				continue
			}
			if op := str(e.raw.Lookup("op")); op == "c" && !isApplyOps(e.raw) {
				return rep, fmt.Errorf("shard %s: the sandbox cannot roll back DDL (%s at %v): step down without rollback, or after the DDL has replicated", f.cfg.Name, e.raw.Lookup("o"), e.ts)
			}
		}
	} else {
		for {
			es, held := old.oplog.since(next.opTime().TS, replicationBatch)
			if len(es) == 0 {
				break
			}
			if !held {
				return rep, fmt.Errorf("shard %s: member %d cannot catch up: its last entry is not in the primary's oplog", f.cfg.Name, next.member)
			}
			if err := next.applyEntriesLocked(es, old); err != nil {
				return rep, fmt.Errorf("shard %s: member %d cannot catch up: %w", f.cfg.Name, next.member, err)
			}
			rep.CaughtUp += len(es)
		}
	}
	old.becomeSecondary()
	old.stepDownTxns()
	if rollback && len(cut) > 0 {
		n, err := old.rollBack(cut, common, next)
		if err != nil {
			return rep, fmt.Errorf("shard %s: roll back the old primary: %w", f.cfg.Name, err)
		}
		rep.RolledBack, rep.Refetched, rep.CommonPoint = len(cut), n, common
		f.set.mu.Lock()
		f.set.rbids[old.member]++
		f.set.mu.Unlock()
	}
	rep.Term = max(old.oplog.term(), next.oplog.term()) + 1
	next.oplog.setTerm(rep.Term)
	old.oplog.setTerm(rep.Term)
	next.becomePrimary()
	next.rebuildSessions()
	next.takeOverPreparedTxns()
	if err := next.oplog.append(noop("new primary")); err != nil {
		return rep, err
	}
	f.set.mu.Lock()
	f.set.primary = next.member
	f.set.notifyLocked()
	f.set.mu.Unlock()
	for _, n := range nodes {
		n.topo.Changed()
	}
	f.cfg.Logger.Info("sandbox shard stepped down", "shard", f.cfg.Name, "from", rep.OldPrimary, "to", rep.NewPrimary, "term", rep.Term, "rolledBack", rep.RolledBack)
	return rep, f.saveReplSetState()
}

func isApplyOps(raw bson.Raw) bool {
	_, ok := raw.Lookup("o", "applyOps").ArrayOK()
	return ok
}

// rollBack undoes cut (n's entries after common, which the new primary src lacks): each
// document they touched becomes src's version of it, then the entries leave n's oplog.
// Cursors on n's oplog are closed, as a rollback closes its connections. It reports how
// many documents were refetched.
func (n *node) rollBack(cut []entry, common primitive.Timestamp, src *node) (int, error) {
	type docRef struct{ ns, id string }
	seen := map[docRef]bool{}
	refetch := func(op, ns string, o, o2 bson.Raw) error {
		key := o
		if op == "u" {
			key = o2
		}
		if op != "i" && op != "u" && op != "d" {
			return nil
		}
		id := key.Lookup("_id")
		ref := docRef{ns, string(id.Value) + string(rune(id.Type))}
		if seen[ref] {
			return nil
		}
		seen[ref] = true
		db, coll, _ := strings.Cut(ns, ".")
		return n.refetch(n.ctx, src, db, coll, id)
	}
	var commits []txnEntry
	for _, e := range cut {
		if te, ok := txnEntryOf(e.raw); ok && te.kind == txnCommit {
			commits = append(commits, te)
		}
		o, _ := e.raw.Lookup("o").DocumentOK()
		if ops, ok := o.Lookup("applyOps").ArrayOK(); ok {
			vals, _ := ops.Values()
			for _, v := range vals {
				d, _ := v.DocumentOK()
				inner, _ := d.Lookup("o").DocumentOK()
				o2, _ := d.Lookup("o2").DocumentOK()
				if err := refetch(str(d.Lookup("op")), str(d.Lookup("ns")), inner, o2); err != nil {
					return 0, err
				}
			}
			continue
		}
		o2, _ := e.raw.Lookup("o2").DocumentOK()
		if err := refetch(str(e.raw.Lookup("op")), str(e.raw.Lookup("ns")), o, o2); err != nil {
			return 0, err
		}
	}
	if _, err := n.oplog.truncateAfter(common); err != nil {
		return 0, err
	}
	n.cursors.clear()
	n.rebuildSessions()
	// A commit rolled back leaves its transaction prepared again (its chain is
	// before the common point, so it is open once more): its documents become the
	// new primary's, which has not committed it.
	for _, c := range commits {
		if chain := n.txnChains[txnKeyOf(c.lsid, c.txnNumber)]; chain != nil {
			for _, d := range chain.ops {
				inner, _ := d.Lookup("o").DocumentOK()
				o2, _ := d.Lookup("o2").DocumentOK()
				if err := refetch(str(d.Lookup("op")), str(d.Lookup("ns")), inner, o2); err != nil {
					return 0, err
				}
			}
		}
	}
	return len(seen), nil
}
