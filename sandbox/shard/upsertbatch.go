package shard

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/match"
)

// Replace-upserts inserted together. An update command whose statements replace
// documents by their _id with upsert (what an oplog replay sends for the inserts it
// applies) ran each statement alone: a lookup of the _id (two SQL statements, each
// parsed anew) and, when nothing matched, FerretDB's insert of one document, a round
// trip and a commit each. A replace-upsert cost 14 times an insert, where a mongod's
// costs about what an insert does. Now the command's plain upserts (plainUpserts) are
// looked up in one SQL statement before the first runs, and a run of them whose _ids
// have no document is inserted in one FerretDB insert; each still logs its own insert
// entry, in statement order, and counts as upserted. Every other statement, and a
// plain upsert whose _id may have a document, runs alone as before, in its place.

// plainUpsert is a statement replacing the document of one _id with upsert: the
// document it inserts when the _id has none, and the texts under which FerretDB may
// store that _id (keyed.go).
type plainUpsert struct {
	doc  bson.Raw
	keys []string
}

// plainUpserts returns, by statement, the plain upserts of an update command whose
// documents may be inserted with others; nil for the other statements. None when a
// statement that does not pin its _id may upsert (its document's _id, from its
// replacement, is known only once it runs), and only a _id's first statement: one
// that follows another of the same _id finds what that one wrote.
func plainUpserts(stmts []bson.Raw, rw *retryable) []*plainUpsert {
	plain := make([]*plainUpsert, len(stmts))
	seen := map[string]bool{}
	count := 0
	for i, stmt := range stmts {
		q, _ := stmt.Lookup("q").DocumentOK()
		m, err := match.Compile(q)
		var id bson.RawValue
		pinned := false
		if err == nil {
			id, pinned = m.IDEquality()
		}
		if !pinned {
			if truthy(stmt.Lookup("upsert")) {
				return nil
			}
			continue
		}
		keys, ok := idKeys(id)
		if !ok {
			continue
		}
		first := true
		for _, k := range keys {
			first = first && !seen[k]
			seen[k] = true
		}
		if !first || (rw != nil && rw.written(i)) {
			continue
		}
		if doc, ok := plainReplacement(stmt, m); ok {
			plain[i] = &plainUpsert{doc: doc, keys: keys}
			count++
		}
	}
	if count < minUpsertRun {
		return nil // (no look-up for a command that has no run to insert)
	}
	return plain
}

// plainReplacement is the document a replace-upsert pinned to one _id inserts when
// nothing matches (as upsertReplacement builds it); false for any other statement,
// and for a replacement naming another _id.
func plainReplacement(stmt bson.Raw, m *match.Matcher) (bson.Raw, bool) {
	u := stmt.Lookup("u")
	if !isReplacement(u) || !truthy(stmt.Lookup("upsert")) || truthy(stmt.Lookup("multi")) {
		return nil, false
	}
	for _, f := range []string{"arrayFilters", "collation", "c"} {
		if stmt.Lookup(f).Type != 0 {
			return nil, false
		}
	}
	id, _ := m.IDEquality()
	repl := u.Document()
	if own, err := repl.LookupErr("_id"); err == nil && !own.Equal(id) {
		return nil, false
	}
	return replacementWithID(repl, id), true
}

// dropPresent forgets the plain upserts whose _id may have a document: one SQL
// statement looks up every _id text of the command. A text stored for another _id
// counts too (FerretDB writes the int 42 and the date 42 alike): that statement then
// runs alone, which tells them apart as before.
func (n *node) dropPresent(ctx context.Context, db, coll string, plain []*plainUpsert) error {
	var keys []string
	for _, p := range plain {
		if p != nil {
			keys = append(keys, p.keys...)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	present, err := n.be.files.presentIDs(ctx, db, coll, keys)
	if err != nil {
		return err
	}
	for i, p := range plain {
		if p == nil {
			continue
		}
		for _, k := range p.keys {
			if present[k] {
				plain[i] = nil
				break
			}
		}
	}
	return nil
}

// minUpsertRun is the shortest run of plain upserts inserted together.
const minUpsertRun = 2

// upsertRun returns the end of the run of plain upserts starting at i.
func upsertRun(plain []*plainUpsert, i int) int {
	j := i
	for j < len(plain) && plain[j] != nil {
		j++
	}
	return j
}

// insertUpserts inserts the documents of the plain upserts i..end-1 in one insert,
// logs an insert entry for each in statement order and notes them in out. On a
// statement that fails (a unique index), the ones before it are done: it reports
// the statement after the failed one (whether the command goes on is the caller's).
func (n *node) insertUpserts(ctx context.Context, db, coll string, plain []*plainUpsert, i, end int, rw *retryable, out *updateOutcome) (next int, failed bool) {
	ns := db + "." + coll
	ci, err := n.ensureCollection(ctx, ns)
	if err != nil {
		out.note(i, updateResult{}, err, ns)
		return i + 1, true
	}
	docs := make([]bson.Raw, 0, end-i)
	for _, p := range plain[i:end] {
		docs = append(docs, p.doc)
	}
	inserted, werrs := n.insertDocs(ctx, db, coll, docs, true)
	var drafts []draft
	var stmts []int
	for k, ok := range inserted {
		if !ok {
			break
		}
		d := n.front.forms.insertDraft(ci, docs[k], false)
		if rw != nil {
			d.session = rw.session(i+k, k > 0)
		}
		drafts = append(drafts, d)
		stmts = append(stmts, i+k)
	}
	if len(drafts) > 0 {
		ts, err := n.oplog.write(drafts...)
		if err != nil {
			out.note(i, updateResult{}, err, ns)
			return i + 1, true
		}
		if rw != nil {
			rw.wrote(ts, stmts...)
		}
		n.upsertsTogether.Add(int64(len(stmts)))
		for _, s := range stmts {
			out.note(s, updateResult{upsertedID: plain[s].doc.Lookup("_id")}, nil, ns)
		}
	}
	if len(werrs) == 0 {
		return end, false
	}
	failedAt := i + werrs[0].index
	out.werrs = append(out.werrs, writeError{failedAt, werrs[0].code, werrs[0].msg})
	return failedAt + 1, true
}

// updateOutcome is what an update command's statements did, for its reply.
type updateOutcome struct {
	matched, modified int
	upserted          bson.A
	werrs             []writeError
}

// note adds statement i's result; it reports whether the statement failed.
func (o *updateOutcome) note(i int, res updateResult, err error, ns string) bool {
	o.matched += res.matched
	o.modified += res.modified
	if res.upsertedID.Type != 0 {
		o.matched++
		o.upserted = append(o.upserted, bson.D{{Key: "index", Value: int32(i)}, {Key: "_id", Value: res.upsertedID}})
	}
	if err == nil {
		return false
	}
	code, _, msg := classify(err, ns)
	o.werrs = append(o.werrs, writeError{i, code, msg})
	return true
}

// presentIDs returns which of the _id texts keys some row of db.coll stores. SQLite
// answers with the texts as given (each looked up through the _id index), not as it
// stores them, which may be written differently.
func (f *sqlFiles) presentIDs(ctx context.Context, db, coll string, keys []string) (map[string]bool, error) {
	present := map[string]bool{}
	conn, table, err := f.table(ctx, db, coll)
	if err != nil || table == "" {
		return present, err
	}
	const chunk = 500
	for start := 0; start < len(keys); start += chunk {
		part := keys[start:min(start+chunk, len(keys))]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		rows, err := conn.QueryContext(ctx, presentIDsSQL(table, len(part)), args...)
		if err != nil {
			return nil, fmt.Errorf("look up _ids in %s.%s: %w", db, coll, err)
		}
		for rows.Next() {
			var key string
			if err := rows.Scan(&key); err != nil {
				rows.Close()
				return nil, fmt.Errorf("look up _ids in %s.%s: %w", db, coll, err)
			}
			present[key] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("look up _ids in %s.%s: %w", db, coll, err)
		}
	}
	return present, nil
}

// presentIDsSQL selects those of n _id texts that a row of table stores.
func presentIDsSQL(table string, n int) string {
	return fmt.Sprintf(`SELECT column1 FROM (VALUES %s) WHERE EXISTS (SELECT 1 FROM %q WHERE %s = json(column1))`,
		strings.TrimSuffix(strings.Repeat("(?),", n), ","), table, idColumn)
}
