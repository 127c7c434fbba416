package oplog

import (
	"fmt"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/engine/namespaces"
)

// DefaultTxnBufferBytes is the default bound on the bytes a Translator holds
// for transactions that have not committed yet.
const DefaultTxnBufferBytes = 256 << 20

// maxApplyOpsDepth bounds applyOps nested inside applyOps.
const maxApplyOpsDepth = 8

// Config configures a Translator.
type Config struct {
	// KeyFields returns the shard key paths of a collection in pattern order
	// (shardkey.Pattern.Fields of config.collections' key), used to build the
	// document key of inserted documents. nil, or an empty result, means the
	// collection is not sharded: the key is the server's o2, or {_id}.
	KeyFields func(Namespace) []string
	// ShardKeyChanged, when set, is told the shard key fields of a collection
	// as soon as the translator meets the entry sharding it (or refining its
	// key) on the source, before that entry's DDL item is returned.
	ShardKeyChanged func(ns Namespace, fields []string)

	// TxnBufferBytes bounds the bytes held for open transactions, summed over
	// all of them. Zero means DefaultTxnBufferBytes. A transaction that would
	// exceed it is an error wrapping ErrTxnTooLarge.
	TxnBufferBytes int
}

// Translator turns the decoded entries of one shard's oplog, in oplog order,
// into Items. It holds the operations of transactions until they commit, so
// use one Translator per shard, from one goroutine.
type Translator struct {
	keyFields       func(Namespace) []string
	shardKeyChanged func(Namespace, []string)
	limit           int
	txns            map[string]*openTxn
	held            int // bytes held by txns
	// appliedBefore, when set, is a resume point the replay reached by applying:
	// a transaction that began before it was applied whole before it (a resume
	// point never passes the first entry of an open transaction), so its later
	// links and its commit, read again, are skipped (applied lists them).
	appliedBefore primitive.Timestamp
	applied       map[string]bool
	plan          updatePlan
	diffs         diffParser
}

// openTxn is a transaction whose entries were seen but not its commit.
type openTxn struct {
	first, last primitive.Timestamp
	ops         [][]byte // applyOps arrays, copied, in oplog order
	bytes       int
	prepared    bool
}

// NewTranslator returns a Translator for one shard.
func NewTranslator(cfg Config) *Translator {
	t := &Translator{keyFields: cfg.KeyFields, shardKeyChanged: cfg.ShardKeyChanged, limit: cfg.TxnBufferBytes, txns: map[string]*openTxn{}}
	if t.limit <= 0 {
		t.limit = DefaultTxnBufferBytes
	}
	return t
}

// Process translates one entry and appends its items to out. Entries must come
// in oplog order. An entry yields:
//
//   - writes and DDL for the data changes it makes (a transaction's at its
//     commit, all with the commit entry's ts);
//   - a single ItemPosition when it changes nothing Shardlift applies: no-ops,
//     fromMigrate entries, admin/config/local and system.* namespaces (except
//     view definitions, system.indexes inserts and transactions), index build
//     start/abort, aborted transactions;
//   - nothing while it is a buffered part of a transaction that has not
//     committed: its position must not be checkpointed (see OpenTxnFloor).
//
// All items of one entry must be handed to the appliers before the entry counts
// as dispatched, and the entry counts as applied only when all of them are. On
// error nothing is appended.
func (t *Translator) Process(e *Entry, out []Item) ([]Item, error) {
	n := len(out)
	out, held, err := t.process(e, out)
	if err != nil {
		return out[:n], err
	}
	if !held && len(out) == n {
		out = append(out, Item{Kind: ItemPosition, TS: e.TS})
	}
	return out, nil
}

// ProcessCopied is Process for an entry the shard's copy already holds (at or
// before its T0), read only because a transaction open at T0 began before it
// (MongoDB's initial sync does the same). It buffers the entries of transactions,
// so that one still open at T0 is whole when its commit comes after T0, and yields
// a single ItemPosition for everything else: the copy holds its write. A
// transaction that ends here (commit, abort, or the last applyOps of a chain) is
// dropped, its writes in the copy too; one continued here whose first entry came
// before what was read is ignored: it ended before T0, or it would have been the
// oldest open transaction, or (a replay resumed before T0) it was applied whole
// before the resume point, and its commit after T0 is skipped too.
func (t *Translator) ProcessCopied(e *Entry, out []Item) ([]Item, error) {
	if e.LSID != nil && e.HasTxnNumber && !e.FromMigrate {
		key := txnKey(e)
		tx := t.txns[key]
		switch {
		case tx == nil && t.appliedTxn(key, e):
			// Applied whole before the resume point: its commit after T0 is skipped.
		case e.Command == CmdApplyOps && e.MultiOpType != 1 && (e.PartialTxn || e.Prepare) && (tx != nil || e.prevIsNull()):
			return t.Process(e, out)
		case tx != nil && (e.Command == CmdApplyOps || e.Command == CmdCommitTransaction || e.Command == CmdAbortTransaction):
			t.drop(key, tx)
		}
	}
	return append(out, Item{Kind: ItemPosition, TS: e.TS}), nil
}

// AppliedBefore tells the Translator that the replay resumes at ts, a point it reached
// by applying (a saved checkpoint, not T0): transactions that began before it were
// applied before it, and their entries read again after it are skipped instead of
// being reported as incomplete.
func (t *Translator) AppliedBefore(ts primitive.Timestamp) {
	t.appliedBefore, t.applied = ts, map[string]bool{}
}

// appliedTxn reports whether e, of a transaction this sync has not seen begin,
// belongs to one applied before the resume point (AppliedBefore): its previous
// entry is at or before that point, or an earlier entry of it was skipped so. An
// entry of a transaction is at or before the resume point only once the whole
// transaction is applied (its entries hold the resume point before them until its
// commit), and the resume point can be its last entry (the prepare) itself.
func (t *Translator) appliedTxn(key string, e *Entry) bool {
	if t.applied == nil {
		return false
	}
	if t.applied[key] || (!e.prevIsNull() && !e.PrevOpTime.TS.After(t.appliedBefore)) {
		t.applied[key] = !endsTransaction(e)
		if !t.applied[key] {
			delete(t.applied, key)
		}
		return true
	}
	return false
}

// endsTransaction reports whether e commits or aborts its transaction.
func endsTransaction(e *Entry) bool {
	return e.Command == CmdCommitTransaction || e.Command == CmdAbortTransaction ||
		e.Command == CmdApplyOps && !e.PartialTxn && !e.Prepare
}

// OpenTxnFloor returns the ts of the first entry of the oldest transaction
// still open, if any. A checkpoint must stay strictly below it: resuming after
// it would lose that transaction's buffered operations.
func (t *Translator) OpenTxnFloor() (primitive.Timestamp, bool) {
	var floor primitive.Timestamp
	found := false
	for _, tx := range t.txns {
		if !found || tx.first.Compare(floor) < 0 {
			floor, found = tx.first, true
		}
	}
	return floor, found
}

func (t *Translator) process(e *Entry, out []Item) ([]Item, bool, error) {
	if e.FromMigrate {
		return out, false, nil
	}
	switch e.Op {
	case OpNoop:
		out, err := t.noop(e, out)
		return out, false, err
	case OpInsert, OpUpdate, OpDelete:
		out, err := t.crud(e, e.TS, out)
		return out, false, err
	}
	switch e.Command {
	case CmdApplyOps:
		return t.applyOps(e, out)
	case CmdCommitTransaction:
		out, err := t.commit(e, out)
		return out, false, err
	case CmdAbortTransaction:
		return out, false, t.abort(e)
	}
	out, err := t.command(e, e.TS, out)
	return out, false, err
}

// crud translates an insert, update or delete completed at ts; its writes carry
// the entry's collection UUID (a view definition's DDL does not: that is the
// view catalog's).
func (t *Translator) crud(e *Entry, ts primitive.Timestamp, out []Item) ([]Item, error) {
	n := len(out)
	out, err := t.crudItems(e, ts, out)
	withUUID(out[n:], e.UI)
	return out, err
}

// withUUID sets the collection UUID of the writes among items.
func withUUID(items []Item, ui []byte) {
	for i := range items {
		if items[i].Kind == ItemWrite {
			items[i].UI = ui
		}
	}
}

func (t *Translator) crudItems(e *Entry, ts primitive.Timestamp, out []Item) ([]Item, error) {
	if class := namespaces.Classify(e.NS.DB, e.NS.Coll); class == namespaces.ViewCatalog || (namespaces.UserDatabase(e.NS.DB) && e.NS.Coll == "system.indexes") {
		ddl := viewDDL
		if e.NS.Coll == "system.indexes" {
			ddl = systemIndexDDL
		}
		d, err := ddl(e)
		if err != nil || d == nil {
			return out, err
		}
		return append(out, Item{Kind: ItemDDL, TS: ts, DDL: d}), nil
	}
	if !userNamespace(e.NS) {
		return out, nil
	}
	switch e.Op {
	case OpInsert:
		var fields []string
		if t.keyFields != nil {
			fields = t.keyFields(e.NS)
		}
		filter, err := insertKey(e.TS, e.O, e.O2, fields)
		if err != nil {
			return out, err
		}
		return append(out, Item{Kind: ItemWrite, TS: ts, Write: Write{
			Kind: InsertReplace, NS: e.NS, Filter: filter, Replacement: e.O, Upsert: true,
		}}), nil
	case OpDelete:
		filter, err := docKeyOf(e.TS, "o", e.O)
		if err != nil {
			return out, err
		}
		return append(out, Item{Kind: ItemWrite, TS: ts, Write: Write{Kind: Delete, NS: e.NS, Filter: filter}}), nil
	}
	filter, err := docKeyOf(e.TS, "o2", e.O2)
	if err != nil {
		return out, err
	}
	switch e.Update {
	case UpdateReplacement:
		return append(out, Item{Kind: ItemWrite, TS: ts, Write: Write{
			Kind: InsertReplace, NS: e.NS, Filter: filter, Replacement: e.O, Upsert: true,
		}}), nil
	case UpdateModifier:
		u, ok := modifierUpdate(e.O)
		if !ok {
			return out, nil
		}
		return append(out, Item{Kind: ItemWrite, TS: ts, Write: Write{Kind: Update, NS: e.NS, Filter: filter, Update: u}}), nil
	}
	return t.diffUpdate(e, ts, filter, out)
}

// diffUpdate translates a $v: 2 update (see update.go for the rule).
func (t *Translator) diffUpdate(e *Entry, ts primitive.Timestamp, filter bson.Raw, out []Item) ([]Item, error) {
	diffEl, _ := lookup(e.O, "diff")
	t.diffs.reset()
	d, err := t.diffs.parseDocDiff(diffEl.val, "", 0)
	if err != nil {
		return out, diffEntryError(e.TS, err)
	}
	p := &t.plan
	p.reset()
	if !p.planDoc("", d) {
		stage := pipelineStage(d)
		return append(out, Item{Kind: ItemWrite, TS: ts, Write: Write{
			Kind: Update, NS: e.NS, Filter: filter, Pipeline: []bson.Raw{stage}, Diff: bson.Raw(diffEl.val),
		}}), nil
	}
	if len(p.set) == 0 && len(p.unset) == 0 {
		return out, nil
	}
	if moved := p.movedPaths(filter); len(moved) > 0 {
		off, dst := startDoc(nil)
		dst = appendUnset(dst, moved)
		out = append(out, Item{Kind: ItemWrite, TS: ts, Write: Write{
			Kind: Update, NS: e.NS, Filter: filter, Update: bson.Raw(endDoc(dst, off)),
		}})
	}
	u := p.appendOperatorUpdate(make([]byte, 0, len(diffEl.val)+32))
	return append(out, Item{Kind: ItemWrite, TS: ts, Write: Write{Kind: Update, NS: e.NS, Filter: filter, Update: bson.Raw(u)}}), nil
}

// movedPaths returns the inserted paths to unset first, leaving out the
// document key's fields (and anything under them).
func (p *updatePlan) movedPaths(filter bson.Raw) []string {
	out := p.moved[:0]
	for _, path := range p.moved {
		if !underKey(filter, path) {
			out = append(out, path)
		}
	}
	return out
}

// underKey reports whether path is a field of the document key or lies under
// one.
func underKey(filter bson.Raw, path string) bool {
	it, _ := newIter(filter)
	for {
		el, ok := it.next()
		if !ok {
			return false
		}
		k := string(el.name)
		if path == k || len(path) > len(k) && path[len(k)] == '.' && path[:len(k)] == k {
			return true
		}
	}
}

func diffEntryError(ts primitive.Timestamp, err error) error {
	de, ok := err.(*diffError)
	if !ok {
		return err
	}
	field := "o.diff"
	if de.path != "" {
		field += "." + de.path
	}
	return &EntryError{TS: ts, Field: field, Detail: de.msg, Err: de.err}
}

// txnKey identifies a transaction: the whole logical session id (id, uid and,
// for internal sessions, their parent's txnNumber and txnUUID) and txnNumber.
func txnKey(e *Entry) string {
	var n [8]byte
	for i := range n {
		n[i] = byte(uint64(e.TxnNumber) >> (8 * i))
	}
	return string(e.LSID) + string(n[:])
}

// applyOps handles an applyOps entry: a 4.0 transaction, a link of a 4.2+
// transaction chain, a prepared transaction, a batched write or a plain
// applyOps command.
func (t *Translator) applyOps(e *Entry, out []Item) ([]Item, bool, error) {
	ops, _ := lookup(e.O, "applyOps")
	if e.LSID == nil || !e.HasTxnNumber || e.MultiOpType == 1 {
		if e.PartialTxn || e.Prepare {
			return out, false, malformed(e.TS, "lsid", "a partial or prepared transaction entry needs lsid and txnNumber")
		}
		out, err := t.applyInner(ops.val, e.TS, out, 0)
		return out, false, err
	}
	key := txnKey(e)
	tx := t.txns[key]
	if tx == nil && t.appliedTxn(key, e) {
		return out, false, nil
	}
	if tx == nil && !e.prevIsNull() {
		return out, false, &EntryError{TS: e.TS, Field: "prevOpTime", Err: ErrTxnIncomplete,
			Detail: fmt.Sprintf("continues a transaction from Timestamp(%d, %d) that this sync never saw", e.PrevOpTime.TS.T, e.PrevOpTime.TS.I)}
	}
	if tx != nil {
		if tx.prepared {
			return out, false, malformed(e.TS, "o.applyOps", "a prepared transaction got more operations")
		}
		if e.PrevOpTime.TS != tx.last {
			return out, false, &EntryError{TS: e.TS, Field: "prevOpTime", Err: ErrTxnIncomplete,
				Detail: fmt.Sprintf("points to Timestamp(%d, %d), but the transaction's last entry seen is Timestamp(%d, %d)",
					e.PrevOpTime.TS.T, e.PrevOpTime.TS.I, tx.last.T, tx.last.I)}
		}
	}
	if e.PartialTxn || e.Prepare {
		if t.held+len(ops.val) > t.limit {
			return out, false, &EntryError{TS: e.TS, Field: "o.applyOps", Err: ErrTxnTooLarge,
				Detail: fmt.Sprintf("holding %d more bytes would pass the limit of %d bytes (%d bytes held by %d open transactions)",
					len(ops.val), t.limit, t.held, len(t.txns))}
		}
		if tx == nil {
			tx = &openTxn{first: e.TS}
			t.txns[key] = tx
		}
		tx.ops = append(tx.ops, append([]byte(nil), ops.val...))
		tx.bytes += len(ops.val)
		t.held += len(ops.val)
		tx.last = e.TS
		tx.prepared = e.Prepare
		return out, true, nil
	}
	// The final entry of an unprepared transaction commits it.
	n := len(out)
	if tx != nil {
		var err error
		if out, err = t.release(tx, e.TS, out); err != nil {
			return out[:n], false, err
		}
		t.drop(key, tx)
	}
	out, err := t.applyInner(ops.val, e.TS, out, 0)
	if err != nil {
		return out[:n], false, err
	}
	return out, false, nil
}

// release appends the buffered operations of tx, completed at ts.
func (t *Translator) release(tx *openTxn, ts primitive.Timestamp, out []Item) ([]Item, error) {
	for _, ops := range tx.ops {
		var err error
		if out, err = t.applyInner(ops, ts, out, 0); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (t *Translator) drop(key string, tx *openTxn) {
	t.held -= tx.bytes
	delete(t.txns, key)
}

// commit handles commitTransaction: the prepared transaction's operations are
// applied at the commit entry's ts.
func (t *Translator) commit(e *Entry, out []Item) ([]Item, error) {
	if e.LSID == nil || !e.HasTxnNumber {
		return out, malformed(e.TS, "lsid", "commitTransaction needs lsid and txnNumber")
	}
	key := txnKey(e)
	tx := t.txns[key]
	if tx == nil && t.appliedTxn(key, e) {
		return out, nil
	}
	if tx == nil {
		return out, &EntryError{TS: e.TS, Field: "o.commitTransaction", Err: ErrTxnIncomplete,
			Detail: "commits a prepared transaction this sync never saw"}
	}
	if !tx.prepared {
		return out, malformed(e.TS, "o.commitTransaction", "commits a transaction that was not prepared")
	}
	n := len(out)
	out, err := t.release(tx, e.TS, out)
	if err != nil {
		return out[:n], err
	}
	t.drop(key, tx)
	return out, nil
}

// abort handles abortTransaction: the buffered operations are dropped. An abort
// of a transaction never seen has nothing to undo.
func (t *Translator) abort(e *Entry) error {
	if e.LSID == nil || !e.HasTxnNumber {
		return malformed(e.TS, "lsid", "abortTransaction needs lsid and txnNumber")
	}
	key := txnKey(e)
	if tx := t.txns[key]; tx != nil {
		t.drop(key, tx)
	}
	return nil
}

// applyInner translates the operations of an applyOps array, completed at ts.
func (t *Translator) applyInner(ops []byte, ts primitive.Timestamp, out []Item, depth int) ([]Item, error) {
	if depth > maxApplyOpsDepth {
		return out, malformed(ts, "o.applyOps", "applyOps nested deeper than %d levels", maxApplyOpsDepth)
	}
	it, ok := newIter(ops)
	if !ok {
		return out, malformed(ts, "o.applyOps", "corrupt BSON")
	}
	for i := 0; ; i++ {
		el, ok := it.next()
		if !ok {
			break
		}
		if el.t != bsontype.EmbeddedDocument {
			return out, malformed(ts, fmt.Sprintf("o.applyOps.%d", i), "is %s, want a document", typeName(el.t))
		}
		var ie Entry
		if err := decodeInto(&ie, bson.Raw(el.val), ts, true); err != nil {
			return out, innerError(err, i)
		}
		if ie.FromMigrate {
			continue
		}
		var err error
		switch ie.Op {
		case OpNoop:
		case OpInsert, OpUpdate, OpDelete:
			out, err = t.crud(&ie, ts, out)
		case OpCommand:
			switch ie.Command {
			case CmdApplyOps:
				if ie.PartialTxn || ie.Prepare {
					err = malformed(ts, fmt.Sprintf("o.applyOps.%d", i), "a nested applyOps cannot be part of a transaction chain")
				} else {
					inner, _ := lookup(ie.O, "applyOps")
					out, err = t.applyInner(inner.val, ts, out, depth+1)
				}
			case CmdCommitTransaction, CmdAbortTransaction:
				err = malformed(ts, fmt.Sprintf("o.applyOps.%d", i), "%s cannot be inside applyOps", ie.Command)
			default:
				out, err = t.command(&ie, ts, out)
			}
		}
		if err != nil {
			return out, innerError(err, i)
		}
	}
	if it.bad {
		return out, malformed(ts, "o.applyOps", "corrupt BSON")
	}
	return out, nil
}

// innerError prefixes the field of an error about the i-th applyOps operation.
func innerError(err error, i int) error {
	if ee, ok := err.(*EntryError); ok {
		c := *ee
		if c.Field == "" {
			c.Field = fmt.Sprintf("o.applyOps.%d", i)
		} else {
			c.Field = fmt.Sprintf("o.applyOps.%d.%s", i, c.Field)
		}
		return &c
	}
	return err
}

// command translates a DDL command entry completed at ts.
func (t *Translator) command(e *Entry, ts primitive.Timestamp, out []Item) ([]Item, error) {
	if !namespaces.UserDatabase(e.NS.DB) {
		return out, nil
	}
	d, err := commandDDL(e)
	if err != nil || d == nil {
		return out, err
	}
	d.UUID = e.UI
	return append(out, Item{Kind: ItemDDL, TS: ts, DDL: d, UI: e.UI}), nil
}
