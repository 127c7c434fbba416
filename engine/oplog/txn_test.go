package oplog

import (
	"errors"
	"strings"
	"testing"
)

const (
	lsidA    = `lsid: {id: {$binary: {base64: 'DK+8+nZ+Eem9p6vK9BEt9g==', subType: '04'}}, uid: {$binary: {base64: '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', subType: '00'}}}`
	lsidB    = `lsid: {id: {$binary: {base64: 'DK+8+nZ+Eem9p6vK9BEt9g==', subType: '04'}}, uid: {$binary: {base64: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=', subType: '00'}}}`
	nullPrev = `prevOpTime: {ts: {$timestamp: {t: 0, i: 0}}, t: {$numberLong: '-1'}}`
)

func prevAt(i int) string {
	return `prevOpTime: {ts: {$timestamp: {t: 1700000000, i: ` + itoa(i) + `}}, t: {$numberLong: '1'}}`
}

func tsAt(i int) string {
	return `ts: {$timestamp: {t: 1700000000, i: ` + itoa(i) + `}}, t: {$numberLong: '1'}`
}

// txnEntry is an applyOps entry of a 4.2+ transaction.
func txnEntry(i int, lsid string, txn int, ops string, flags string, prev string) string {
	o := `{applyOps: [` + ops + `]`
	if flags != "" {
		o += `, ` + flags
	}
	o += `}`
	return `{op: 'c', ns: 'admin.$cmd', o: ` + o + `, ` + lsid + `, txnNumber: {$numberLong: '` + itoa(txn) + `'}, ` + prev + `, ` + tsAt(i) + `}`
}

func ins(id int) string {
	return `{op: 'i', ns: 'shop.orders', ui: {$binary: {base64: '4p4kSLicSracQeNvveXz3g==', subType: '04'}}, o: {_id: ` + itoa(id) + `, qty: 1}}`
}

func TestPartialTransactionEntriesAreHeldUntilCommit(t *testing.T) {
	tr := NewTranslator(Config{})
	items := process(t, tr,
		txnEntry(1, lsidA, 1, ins(1)+`, `+ins(2), `partialTxn: true`, nullPrev),
		txnEntry(2, lsidA, 1, ins(3), `partialTxn: true`, prevAt(1)),
	)
	if len(items) != 0 {
		t.Fatalf("partial entries yielded %d items; their positions must not be checkpointed", len(items))
	}
	floor, open := tr.OpenTxnFloor()
	if !open || floor != ts(1700000000, 1) {
		t.Fatalf("OpenTxnFloor = %v %v, want the first entry's ts", floor, open)
	}
	items = process(t, tr, txnEntry(3, lsidA, 1, ins(4), `count: 4`, prevAt(2)))
	if len(items) != 4 {
		t.Fatalf("commit yielded %d items, want 4 writes", len(items))
	}
	for i, it := range items {
		if it.Kind != ItemWrite || it.TS != ts(1700000000, 3) {
			t.Errorf("item %d: kind %v ts %v, want a write at the commit ts", i, it.Kind, it.TS)
		}
		if id, _ := lookup(it.Write.Filter, "_id"); id.int32() != int32(i+1) {
			t.Errorf("item %d writes _id %d, want oplog order", i, id.int32())
		}
	}
	if _, open := tr.OpenTxnFloor(); open {
		t.Error("transaction still open after its commit")
	}
}

func TestPreparedTransactionAppliesAtCommitEntryTS(t *testing.T) {
	tr := NewTranslator(Config{})
	items := process(t, tr,
		txnEntry(1, lsidA, 5, ins(1), `partialTxn: true`, nullPrev),
		txnEntry(2, lsidA, 5, ins(2), `prepare: true`, prevAt(1)),
		`{op: 'n', ns: '', o: {msg: 'periodic noop'}, `+tsAt(3)+`}`,
		`{op: 'c', ns: 'admin.$cmd', o: {commitTransaction: 1, commitTimestamp: {$timestamp: {t: 1700000000, i: 2}}}, `+lsidA+`, txnNumber: {$numberLong: '5'}, `+prevAt(2)+`, `+tsAt(9)+`}`,
	)
	if len(items) != 3 || items[0].Kind != ItemPosition {
		t.Fatalf("items %+v, want the no-op's position then two writes", items)
	}
	for _, it := range items[1:] {
		if it.Kind != ItemWrite || it.TS != ts(1700000000, 9) {
			t.Errorf("got %v at %v, want a write at the commitTransaction entry's ts", it.Kind, it.TS)
		}
	}
}

func TestAbortedTransactionIsDropped(t *testing.T) {
	tr := NewTranslator(Config{TxnBufferBytes: 1 << 10})
	items := process(t, tr,
		txnEntry(1, lsidA, 5, ins(1)+`, `+ins(2), `prepare: true`, nullPrev),
		`{op: 'c', ns: 'admin.$cmd', o: {abortTransaction: 1}, `+lsidA+`, txnNumber: {$numberLong: '5'}, `+prevAt(1)+`, `+tsAt(2)+`}`,
	)
	if len(items) != 1 || items[0].Kind != ItemPosition || items[0].TS != ts(1700000000, 2) {
		t.Fatalf("items %+v, want only the abort's position", items)
	}
	if _, open := tr.OpenTxnFloor(); open || tr.held != 0 {
		t.Errorf("aborted transaction still held (%d bytes)", tr.held)
	}
	// An abort of a transaction never seen (prepared before the sync started)
	// has nothing to undo.
	items = process(t, tr, `{op: 'c', ns: 'admin.$cmd', o: {abortTransaction: 1}, `+lsidB+`, txnNumber: {$numberLong: '1'}, `+prevAt(1)+`, `+tsAt(3)+`}`)
	if len(items) != 1 || items[0].Kind != ItemPosition {
		t.Fatalf("items %+v, want a position", items)
	}
}

func TestTransactionsAreKeyedBySessionAndTxnNumber(t *testing.T) {
	tr := NewTranslator(Config{})
	items := process(t, tr,
		txnEntry(1, lsidA, 1, ins(1), `partialTxn: true`, nullPrev),
		txnEntry(2, lsidB, 1, ins(2), `partialTxn: true`, nullPrev),
		txnEntry(3, lsidA, 2, ins(3), `partialTxn: true`, nullPrev),
		txnEntry(4, lsidB, 1, ins(4), ``, prevAt(2)),
	)
	if ids := writtenIDs(items); ids != "2 4" {
		t.Fatalf("committing (lsidB, 1) wrote %q, want its own documents 2 4", ids)
	}
	if floor, _ := tr.OpenTxnFloor(); floor != ts(1700000000, 1) {
		t.Errorf("floor %v, want the oldest open transaction's first ts", floor)
	}
	items = process(t, tr, txnEntry(5, lsidA, 1, ins(5), ``, prevAt(1)))
	if ids := writtenIDs(items); ids != "1 5" {
		t.Fatalf("committing (lsidA, 1) wrote %q, want 1 5", ids)
	}
}

func writtenIDs(items []Item) string {
	var ids []string
	for _, w := range writes(items) {
		id, _ := lookup(w.Filter, "_id")
		ids = append(ids, itoa(int(id.int32())))
	}
	return strings.Join(ids, " ")
}

func TestTransactionStartedBeforeResumeIsAnError(t *testing.T) {
	cases := map[string]string{
		"continuation": txnEntry(2, lsidA, 1, ins(2), `partialTxn: true`, prevAt(1)),
		"final entry":  txnEntry(2, lsidA, 1, ins(2), ``, prevAt(1)),
		"prepare":      txnEntry(2, lsidA, 1, ins(2), `prepare: true`, prevAt(1)),
		"commit":       `{op: 'c', ns: 'admin.$cmd', o: {commitTransaction: 1, commitTimestamp: {$timestamp: {t: 1, i: 1}}}, ` + lsidA + `, txnNumber: {$numberLong: '1'}, ` + prevAt(1) + `, ` + tsAt(3) + `}`,
	}
	for name, entry := range cases {
		t.Run(name, func(t *testing.T) {
			e := decode(t, entry)
			items, err := NewTranslator(Config{}).Process(&e, nil)
			if !errors.Is(err, ErrTxnIncomplete) || len(items) != 0 {
				t.Fatalf("Process = %d items, %v; want ErrTxnIncomplete and nothing", len(items), err)
			}
		})
	}
}

func TestTransactionChainWithAMissingLinkIsAnError(t *testing.T) {
	tr := NewTranslator(Config{})
	process(t, tr, txnEntry(1, lsidA, 1, ins(1), `partialTxn: true`, nullPrev))
	e := decode(t, txnEntry(3, lsidA, 1, ins(3), ``, prevAt(2)))
	if _, err := tr.Process(&e, nil); !errors.Is(err, ErrTxnIncomplete) {
		t.Fatalf("got %v, want ErrTxnIncomplete for a chain missing the entry at i=2", err)
	}
}

func TestTransactionBufferIsBoundedByBytes(t *testing.T) {
	tr := NewTranslator(Config{TxnBufferBytes: 300})
	process(t, tr, txnEntry(1, lsidA, 1, ins(1), `partialTxn: true`, nullPrev))
	e := decode(t, txnEntry(2, lsidA, 1, ins(2)+`, `+ins(3)+`, `+ins(4), `partialTxn: true`, prevAt(1)))
	_, err := tr.Process(&e, nil)
	if !errors.Is(err, ErrTxnTooLarge) {
		t.Fatalf("got %v, want ErrTxnTooLarge", err)
	}
	if !strings.Contains(err.Error(), "300 bytes") {
		t.Errorf("error %q does not state the limit", err)
	}
}

// applyOps entries without a session (4.0 and earlier, the applyOps command)
// and 8.0 batched writes (multiOpType 1, chained by prevOpTime like retryable
// writes) apply at once, nested applyOps included.
func TestApplyOpsOutsideTransactionsApplyAtOnce(t *testing.T) {
	tr := NewTranslator(Config{})
	items := process(t, tr,
		`{op: 'c', ns: 'admin.$cmd', o: {applyOps: [`+ins(1)+`, {op: 'c', ns: 'admin.$cmd', o: {applyOps: [`+ins(2)+`]}}]}, `+tsAt(1)+`}`,
		`{op: 'c', ns: 'admin.$cmd', o: {applyOps: [`+ins(3)+`]}, `+lsidA+`, txnNumber: {$numberLong: '1'}, `+prevAt(1)+`, multiOpType: 1, `+tsAt(2)+`}`,
	)
	if ids := writtenIDs(items); ids != "1 2 3" {
		t.Fatalf("wrote %q, want 1 2 3", ids)
	}
}

func TestTransactionInnerOperationsAreFilteredOneByOne(t *testing.T) {
	ops := ins(1) + `,
		{op: 'i', ns: 'config.system.sessions', o: {_id: 1}},
		{op: 'i', ns: 'shop.orders', o: {_id: 2}, fromMigrate: true},
		{op: 'c', ns: 'shop.$cmd', o: {create: 'invoices', idIndex: {v: 2, key: {_id: 1}, name: '_id_'}}},
		{op: 'n', ns: '', o: {msg: 'noop'}}`
	items := process(t, NewTranslator(Config{}), txnEntry(1, lsidA, 1, ops, ``, nullPrev))
	if len(items) != 2 || items[0].Kind != ItemWrite || items[1].Kind != ItemDDL {
		t.Fatalf("items %+v, want the shop.orders insert and the create", items)
	}
	if items[1].DDL.Kind != DDLCreateCollection || items[1].DDL.NS.String() != "shop.invoices" {
		t.Errorf("DDL %+v", items[1].DDL)
	}
}

func TestMalformedInnerOperationNamesItsPlace(t *testing.T) {
	e := decode(t, txnEntry(1, lsidA, 1, ins(1)+`, {op: 'i', ns: 'shop.orders'}`, ``, nullPrev))
	_, err := NewTranslator(Config{}).Process(&e, nil)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Field != "o.applyOps.1.o" || ee.TS != ts(1700000000, 1) {
		t.Fatalf("got %v, want a malformed o.applyOps.1.o at the entry's ts", err)
	}
}

// Buffered operations are copies: the tailer may reuse its buffer.
func TestBufferedTransactionSurvivesReuseOfTheEntryBytes(t *testing.T) {
	tr := NewTranslator(Config{})
	raw := doc(t, txnEntry(1, lsidA, 1, ins(7), `partialTxn: true`, nullPrev))
	e, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Process(&e, nil); err != nil {
		t.Fatal(err)
	}
	clear(raw)
	items := process(t, tr, txnEntry(2, lsidA, 1, ins(8), ``, prevAt(1)))
	if ids := writtenIDs(items); ids != "7 8" {
		t.Fatalf("wrote %q, want 7 8", ids)
	}
}
