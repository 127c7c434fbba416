package oplog

import (
	"encoding/binary"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Op is an oplog entry's operation type, the "op" field.
type Op byte

const (
	OpInsert  Op = 'i'
	OpUpdate  Op = 'u'
	OpDelete  Op = 'd'
	OpCommand Op = 'c'
	OpNoop    Op = 'n'
)

func (o Op) String() string { return string(rune(o)) }

// Namespace is a database and a collection. The collection of a command entry
// is "$cmd".
type Namespace struct {
	DB   string
	Coll string
}

// ParseNamespace splits "db.coll" at the first dot (database names cannot hold
// one; collection names can).
func ParseNamespace(s string) Namespace {
	db, coll, _ := strings.Cut(s, ".")
	return Namespace{DB: db, Coll: coll}
}

func (n Namespace) String() string {
	if n.Coll == "" {
		return n.DB
	}
	return n.DB + "." + n.Coll
}

// OpTime is an oplog position: a timestamp and the replica set term.
type OpTime struct {
	TS   primitive.Timestamp
	Term int64
}

// UpdateForm is how an update entry's "o" describes the change.
type UpdateForm uint8

const (
	// UpdateReplacement: o is the whole new document.
	UpdateReplacement UpdateForm = iota + 1
	// UpdateModifier: o is {$v: 1, $set: {...}, $unset: {...}} (3.6 to 4.4) or
	// the same without $v (older servers).
	UpdateModifier
	// UpdateDiff: o is {$v: 2, diff: {...}} (5.0 and later).
	UpdateDiff
)

// Command is the name of the command of a "c" entry: the first field of o.
type Command string

// The commands MongoDB writes to the oplog (OplogEntry::CommandType). Decode
// refuses any other.
const (
	CmdCreate                     Command = "create"
	CmdDrop                       Command = "drop"
	CmdDropDatabase               Command = "dropDatabase"
	CmdRenameCollection           Command = "renameCollection"
	CmdCreateIndexes              Command = "createIndexes"
	CmdStartIndexBuild            Command = "startIndexBuild"
	CmdCommitIndexBuild           Command = "commitIndexBuild"
	CmdAbortIndexBuild            Command = "abortIndexBuild"
	CmdDropIndexes                Command = "dropIndexes"
	CmdDeleteIndexes              Command = "deleteIndexes"
	CmdDeleteIndex                Command = "deleteIndex"
	CmdCollMod                    Command = "collMod"
	CmdApplyOps                   Command = "applyOps"
	CmdCommitTransaction          Command = "commitTransaction"
	CmdAbortTransaction           Command = "abortTransaction"
	CmdEmptyCapped                Command = "emptycapped"
	CmdConvertToCapped            Command = "convertToCapped"
	CmdDBCheck                    Command = "dbCheck"
	CmdImportCollection           Command = "importCollection"
	CmdCreateGlobalIndex          Command = "createGlobalIndex"
	CmdDropGlobalIndex            Command = "dropGlobalIndex"
	CmdModifyShardingIndexCatalog Command = "modifyCollectionShardingIndexCatalog"
)

var knownCommands = map[string]Command{}

func init() {
	for _, c := range []Command{
		CmdCreate, CmdDrop, CmdDropDatabase, CmdRenameCollection, CmdCreateIndexes,
		CmdStartIndexBuild, CmdCommitIndexBuild, CmdAbortIndexBuild, CmdDropIndexes,
		CmdDeleteIndexes, CmdDeleteIndex, CmdCollMod, CmdApplyOps, CmdCommitTransaction,
		CmdAbortTransaction, CmdEmptyCapped, CmdConvertToCapped, CmdDBCheck,
		CmdImportCollection, CmdCreateGlobalIndex, CmdDropGlobalIndex, CmdModifyShardingIndexCatalog,
	} {
		knownCommands[string(c)] = c
	}
}

// Entry is a decoded oplog entry. Its bson.Raw fields alias the bytes given to
// Decode: keep those bytes unchanged for as long as the Entry, or any Item
// translated from it, is in use.
type Entry struct {
	TS      primitive.Timestamp
	Term    int64 // "t"; 0 when absent (before 3.2)
	Hash    int64 // "h"; 0 when absent (4.2 and later write 0, 5.0 and later omit it)
	Version int64 // "v", the oplog format version (2)
	Wall    time.Time
	Op      Op
	NS      Namespace
	UI      []byte // collection UUID (16 bytes), nil when absent

	O  bson.Raw // the document, update, document key or command
	O2 bson.Raw // update: the document key; collMod/drop: extra information; nil when absent

	LSID          bson.Raw // logical session id {id, uid, ...}; nil when absent
	TxnNumber     int64
	HasTxnNumber  bool
	StmtID        bson.RawValue // int32, or an array of them for batched writes; zero when absent
	PrevOpTime    OpTime        // previous entry of the same transaction or retryable write
	HasPrevOpTime bool
	PartialTxn    bool  // more entries of this transaction follow (top-level or o.partialTxn)
	Prepare       bool  // applyOps of a prepared transaction (o.prepare)
	FromMigrate   bool  // written by a chunk migration, not by a client
	MultiOpType   int32 // 1: an applyOps of a batched write that is not a transaction

	Command Command    // for OpCommand: the command name
	Update  UpdateForm // for OpUpdate: the form of O

	Raw bson.Raw // the whole entry
}

// prevIsNull reports whether prevOpTime is absent or the null optime
// {ts: Timestamp(0, 0), t: -1} that starts a chain.
func (e *Entry) prevIsNull() bool {
	return !e.HasPrevOpTime || e.PrevOpTime.TS == (primitive.Timestamp{})
}

// Known top-level fields, for the duplicate check.
const (
	fTS = 1 << iota
	fT
	fH
	fV
	fOp
	fNS
	fUI
	fO
	fO2
	fWall
	fLSID
	fTxnNumber
	fStmtID
	fPrevOpTime
	fPartialTxn
	fPrepare
	fFromMigrate
	fMultiOpType
)

// maxDocDepth bounds nesting when validating documents (MongoDB allows 180
// levels of nesting in stored documents; more is not a document it wrote).
const maxDocDepth = 200

// Decode parses one raw oplog entry. It checks everything Shardlift relies on
// later: ts, op and ns present with the right types; o present for i, u, d and
// c; o2 present for u; the update form of u; the command of c, and the whole
// BSON of commands. A malformed entry is an error wrapping ErrMalformed, never
// a silent skip. The documents it passes through without reading them (an
// inserted document's fields, replacement and $set values) are checked by the
// destination server when they are written.
func Decode(raw bson.Raw) (Entry, error) {
	var e Entry
	err := decodeInto(&e, raw, primitive.Timestamp{}, false)
	return e, err
}

// decodeInto decodes an entry; inner entries (applyOps elements) take the
// outer entry's ts and need no ts of their own.
func decodeInto(e *Entry, raw bson.Raw, outerTS primitive.Timestamp, inner bool) error {
	e.Raw = raw
	e.TS = outerTS
	it, ok := newIter(raw)
	if !ok {
		return malformed(outerTS, "", "not a BSON document (%d bytes)", len(raw))
	}
	// One pass over the fields. ts usually comes late, so the first error is
	// kept and returned at the end, naming the entry's ts once it is known.
	var first *EntryError
	var seen int
	var op, ns []byte
	var hasNS bool
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		bit, err := e.decodeField(el)
		if err == nil && bit != 0 && seen&bit != 0 {
			err = malformed(primitive.Timestamp{}, string(el.name), "the field appears twice")
		}
		if err != nil {
			if first == nil {
				first, _ = err.(*EntryError)
			}
			continue
		}
		seen |= bit
		switch bit {
		case fOp:
			op = str(el.val)
		case fNS:
			ns, hasNS = str(el.val), true
		}
	}
	if inner {
		e.TS = outerTS // an applyOps operation takes its entry's ts, whatever it holds
	}
	if first != nil {
		if inner || first.TS == (primitive.Timestamp{}) {
			first.TS = e.TS
		}
		return first
	}
	if it.bad {
		return malformed(e.TS, "", "truncated or corrupt BSON after the last readable field")
	}
	if !inner && seen&fTS == 0 {
		return malformed(e.TS, "ts", "missing")
	}
	if seen&fOp == 0 {
		return malformed(e.TS, "op", "missing")
	}
	if len(op) != 1 {
		return malformed(e.TS, "op", "unknown op %q", op)
	}
	e.Op = Op(op[0])
	switch e.Op {
	case OpInsert, OpUpdate, OpDelete, OpCommand, OpNoop:
	default:
		return malformed(e.TS, "op", "unknown op %q", op)
	}
	if !hasNS {
		return malformed(e.TS, "ns", "missing")
	}
	e.NS = ParseNamespace(string(ns))
	return e.check()
}

// decodeField stores one top-level field and returns its bit (0 for fields
// Shardlift does not use).
func (e *Entry) decodeField(el element) (int, error) {
	wrong := func(want string) (int, error) {
		return 0, malformed(e.TS, string(el.name), "is %s, want %s", typeName(el.t), want)
	}
	switch string(el.name) {
	case "ts":
		if el.t != bsontype.Timestamp {
			return wrong("a timestamp")
		}
		e.TS = readTS(el.val)
		return fTS, nil
	case "t":
		i, _, ok := el.number()
		if !ok {
			return wrong("a number")
		}
		e.Term = i
		return fT, nil
	case "h":
		i, _, ok := el.number()
		if !ok {
			return wrong("a number")
		}
		e.Hash = i
		return fH, nil
	case "v":
		i, _, ok := el.number()
		if !ok {
			return wrong("a number")
		}
		e.Version = i
		return fV, nil
	case "op":
		if el.t != bsontype.String {
			return wrong("a string")
		}
		return fOp, nil
	case "ns":
		if el.t != bsontype.String {
			return wrong("a string")
		}
		return fNS, nil
	case "ui":
		if el.t != bsontype.Binary || len(el.val) < 5 || el.val[4] != 4 {
			return wrong("a UUID")
		}
		e.UI = el.val[5:]
		return fUI, nil
	case "o":
		if el.t != bsontype.EmbeddedDocument {
			return wrong("a document")
		}
		e.O = bson.Raw(el.val)
		return fO, nil
	case "o2":
		if el.t != bsontype.EmbeddedDocument {
			return wrong("a document")
		}
		e.O2 = bson.Raw(el.val)
		return fO2, nil
	case "wall":
		if el.t != bsontype.DateTime {
			return wrong("a date")
		}
		e.Wall = time.UnixMilli(int64(binary.LittleEndian.Uint64(el.val))).UTC()
		return fWall, nil
	case "lsid":
		if el.t != bsontype.EmbeddedDocument {
			return wrong("a document")
		}
		e.LSID = bson.Raw(el.val)
		return fLSID, nil
	case "txnNumber":
		i, _, ok := el.number()
		if !ok || el.t == bsontype.Double {
			return wrong("an integer")
		}
		e.TxnNumber, e.HasTxnNumber = i, true
		return fTxnNumber, nil
	case "stmtId":
		if el.t != bsontype.Int32 && el.t != bsontype.Array {
			return wrong("an int32 or an array")
		}
		e.StmtID = bson.RawValue{Type: el.t, Value: el.val}
		return fStmtID, nil
	case "prevOpTime":
		if el.t != bsontype.EmbeddedDocument {
			return wrong("a document")
		}
		ot, err := readOpTime(e.TS, el.val)
		if err != nil {
			return 0, err
		}
		e.PrevOpTime, e.HasPrevOpTime = ot, true
		return fPrevOpTime, nil
	case "partialTxn":
		if el.t != bsontype.Boolean {
			return wrong("a boolean")
		}
		e.PartialTxn = e.PartialTxn || el.boolean()
		return fPartialTxn, nil
	case "prepare":
		if el.t != bsontype.Boolean {
			return wrong("a boolean")
		}
		e.Prepare = e.Prepare || el.boolean()
		return fPrepare, nil
	case "fromMigrate":
		if el.t != bsontype.Boolean {
			return wrong("a boolean")
		}
		e.FromMigrate = el.boolean()
		return fFromMigrate, nil
	case "multiOpType":
		i, _, ok := el.number()
		if !ok || el.t == bsontype.Double {
			return wrong("an integer")
		}
		e.MultiOpType = int32(i)
		return fMultiOpType, nil
	}
	return 0, nil
}

func readTS(v []byte) primitive.Timestamp {
	return primitive.Timestamp{I: binary.LittleEndian.Uint32(v), T: binary.LittleEndian.Uint32(v[4:])}
}

func readOpTime(ts primitive.Timestamp, doc []byte) (OpTime, error) {
	var ot OpTime
	it, ok := newIter(doc)
	if !ok {
		return ot, malformed(ts, "prevOpTime", "not a BSON document")
	}
	hasTS := false
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		switch string(el.name) {
		case "ts":
			if el.t != bsontype.Timestamp {
				return ot, malformed(ts, "prevOpTime.ts", "is %s, want a timestamp", typeName(el.t))
			}
			ot.TS, hasTS = readTS(el.val), true
		case "t":
			i, _, ok := el.number()
			if !ok {
				return ot, malformed(ts, "prevOpTime.t", "is %s, want a number", typeName(el.t))
			}
			ot.Term = i
		}
	}
	if it.bad {
		return ot, malformed(ts, "prevOpTime", "corrupt BSON")
	}
	if !hasTS {
		return ot, malformed(ts, "prevOpTime.ts", "missing")
	}
	return ot, nil
}

// check validates what each op needs, after all fields are read.
func (e *Entry) check() error {
	if e.Op == OpNoop {
		return nil
	}
	if e.NS.DB == "" {
		return malformed(e.TS, "ns", "%q has no database name", e.NS.String())
	}
	if e.O == nil {
		return malformed(e.TS, "o", "missing for op %q", e.Op)
	}
	if e.Op != OpCommand && e.NS.Coll == "" {
		return malformed(e.TS, "ns", "%q has no collection name", e.NS.String())
	}
	switch e.Op {
	case OpUpdate:
		if e.O2 == nil {
			return malformed(e.TS, "o2", "an update must carry its document key in o2")
		}
		form, err := updateForm(e.TS, e.O)
		if err != nil {
			return err
		}
		e.Update = form
	case OpCommand:
		if !validDoc(e.O, maxDocDepth) {
			return malformed(e.TS, "o", "corrupt BSON in the command")
		}
		first, ok := firstElement(e.O)
		if !ok {
			return malformed(e.TS, "o", "a command entry needs a command")
		}
		cmd, ok := knownCommands[string(first.name)]
		if !ok {
			return malformed(e.TS, "o", "unknown command %q", first.name)
		}
		e.Command = cmd
		if cmd == CmdApplyOps {
			if first.t != bsontype.Array {
				return malformed(e.TS, "o.applyOps", "is %s, want an array", typeName(first.t))
			}
			if err := e.readApplyOpsFlags(); err != nil {
				return err
			}
		}
	}
	return nil
}

// readApplyOpsFlags reads partialTxn and prepare from an applyOps command
// (4.2 and later put them inside o).
func (e *Entry) readApplyOpsFlags() error {
	it, _ := newIter(e.O)
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		switch string(el.name) {
		case "partialTxn", "prepare":
			if el.t != bsontype.Boolean {
				return malformed(e.TS, "o."+string(el.name), "is %s, want a boolean", typeName(el.t))
			}
			if el.is("prepare") {
				e.Prepare = e.Prepare || el.boolean()
			} else {
				e.PartialTxn = e.PartialTxn || el.boolean()
			}
		}
	}
	if it.bad {
		return malformed(e.TS, "o", "corrupt BSON in applyOps")
	}
	return nil
}

// updateForm classifies an update's o by its first field, as MongoDB's
// UpdateModification parser does, and checks the operators an oplog entry can
// hold.
func updateForm(ts primitive.Timestamp, o bson.Raw) (UpdateForm, error) {
	first, ok := firstElement(o)
	if !ok || len(first.name) == 0 || first.name[0] != '$' {
		if !topLevelOK(o) {
			return 0, malformed(ts, "o", "corrupt BSON in the replacement document")
		}
		return UpdateReplacement, nil
	}
	form := UpdateModifier
	it, _ := newIter(o)
	var hasDiff, hasOps bool
	for {
		el, ok := it.next()
		if !ok {
			break
		}
		switch string(el.name) {
		case "$v":
			v, f, ok := el.number()
			switch {
			case !ok:
				return 0, malformed(ts, "o.$v", "is %s, want a number", typeName(el.t))
			case v == 2 && f == 2:
				form = UpdateDiff
			case v == 1 && f == 1:
			default:
				return 0, malformed(ts, "o.$v", "unknown update version %v", f)
			}
		case "$set", "$unset":
			if el.t != bsontype.EmbeddedDocument {
				return 0, malformed(ts, "o."+string(el.name), "is %s, want a document", typeName(el.t))
			}
			hasOps = true
		case "diff":
			if el.t != bsontype.EmbeddedDocument {
				return 0, malformed(ts, "o.diff", "is %s, want a document", typeName(el.t))
			}
			hasDiff = true
		default:
			return 0, malformed(ts, "o."+string(el.name), "not an operator an oplog update can hold")
		}
	}
	if it.bad {
		return 0, malformed(ts, "o", "corrupt BSON in the update")
	}
	switch {
	case form == UpdateDiff && !hasDiff:
		return 0, malformed(ts, "o.diff", "missing from a $v: 2 update")
	case form == UpdateDiff && hasOps:
		return 0, malformed(ts, "o", "a $v: 2 update holds only a diff")
	case form != UpdateDiff && hasDiff:
		return 0, malformed(ts, "o.diff", "a diff needs $v: 2")
	}
	return form, nil
}

func typeName(t bsontype.Type) string {
	switch t {
	case bsontype.Double:
		return "a double"
	case bsontype.String:
		return "a string"
	case bsontype.EmbeddedDocument:
		return "a document"
	case bsontype.Array:
		return "an array"
	case bsontype.Binary:
		return "binary data"
	case bsontype.ObjectID:
		return "an ObjectId"
	case bsontype.Boolean:
		return "a boolean"
	case bsontype.DateTime:
		return "a date"
	case bsontype.Null:
		return "null"
	case bsontype.Int32:
		return "an int32"
	case bsontype.Timestamp:
		return "a timestamp"
	case bsontype.Int64:
		return "an int64"
	case bsontype.Decimal128:
		return "a decimal"
	}
	return "type " + t.String()
}
