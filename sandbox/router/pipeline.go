package router

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/bsontype"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"

	"github.com/shardlift/shardlift/sandbox/match"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// The router runs aggregation pipelines itself, on the merged (orphan-free)
// documents of the shards: a leading $match becomes the shards' find filter and
// every stage runs here. Only the small set of stages tools and tests use is
// supported: $match, $project, $sort, $skip, $limit, $group ($sum, $count, $avg,
// $min, $max, $first, $last) and $count.

// stage turns one document stream into another.
type stage func(in docIter) (docIter, error)

// parsePipeline splits a pipeline into the filter pushed to the shards and the
// stages the router runs.
func parsePipeline(pipeline bson.Raw) (filter bson.Raw, stages []stage, err error) {
	vals, err := pipeline.Values()
	if err != nil {
		return nil, nil, wire.BadValue("pipeline must be an array of stage documents")
	}
	for i, v := range vals {
		doc, ok := v.DocumentOK()
		if !ok {
			return nil, nil, wire.BadValue("each pipeline stage must be a document")
		}
		elems, _ := doc.Elements()
		if len(elems) != 1 {
			return nil, nil, wire.BadValue("a pipeline stage specification object must contain exactly one field")
		}
		name, spec := elems[0].Key(), elems[0].Value()
		if i == 0 && name == "$match" {
			if filter, ok = spec.DocumentOK(); !ok {
				return nil, nil, wire.BadValue("$match must be a document")
			}
			continue
		}
		st, err := parseStage(name, spec)
		if err != nil {
			return nil, nil, err
		}
		stages = append(stages, st)
	}
	return filter, stages, nil
}

func parseStage(name string, spec bson.RawValue) (stage, error) {
	switch name {
	case "$match":
		doc, ok := spec.DocumentOK()
		if !ok {
			return nil, wire.BadValue("$match must be a document")
		}
		m, err := match.Compile(doc)
		if err != nil {
			return nil, wire.BadValue(err.Error())
		}
		return func(in docIter) (docIter, error) {
			return &funcIter{in: in, fn: func(d bson.Raw) (bson.Raw, bool) { return d, m.Match(d) }}, nil
		}, nil
	case "$project":
		doc, ok := spec.DocumentOK()
		if !ok {
			return nil, wire.BadValue("$project must be a document")
		}
		p, err := parseProjection(doc, true)
		if err != nil {
			return nil, err
		}
		return func(in docIter) (docIter, error) {
			return &funcIter{in: in, fn: func(d bson.Raw) (bson.Raw, bool) { return p.apply(d), true }}, nil
		}, nil
	case "$sort":
		doc, ok := spec.DocumentOK()
		if !ok {
			return nil, wire.BadValue("$sort must be a document")
		}
		s, err := parseSort(doc)
		if err != nil {
			return nil, err
		}
		return func(in docIter) (docIter, error) { return &sortIter{in: in, spec: s}, nil }, nil
	case "$skip", "$limit":
		n, ok := asInt64(spec)
		if !ok || n < 0 || (name == "$limit" && n == 0) {
			return nil, wire.BadValue(fmt.Sprintf("%s must be a positive number", name))
		}
		if name == "$skip" {
			return func(in docIter) (docIter, error) { return &limitIter{in: in, skip: n}, nil }, nil
		}
		return func(in docIter) (docIter, error) { return &limitIter{in: in, limit: n}, nil }, nil
	case "$count":
		field, ok := spec.StringValueOK()
		if !ok || field == "" || strings.HasPrefix(field, "$") || strings.Contains(field, ".") {
			return nil, wire.BadValue("the count field must be a non-empty string without '$' or '.'")
		}
		return func(in docIter) (docIter, error) { return &countIter{in: in, field: field}, nil }, nil
	case "$group":
		doc, ok := spec.DocumentOK()
		if !ok {
			return nil, wire.BadValue("$group must be a document")
		}
		g, err := parseGroup(doc)
		if err != nil {
			return nil, err
		}
		return func(in docIter) (docIter, error) { return &groupIter{in: in, spec: g}, nil }, nil
	}
	return nil, &wire.Error{Code: 40324, Name: "Location40324", Msg: fmt.Sprintf(
		"Unrecognized pipeline stage name: '%s' (the sandbox router runs only $match, $project, $sort, $skip, $limit, $group and $count, $collStats first and $out or $merge last)", name)}
}

// funcIter maps and filters a stream.
type funcIter struct {
	in docIter
	fn func(bson.Raw) (bson.Raw, bool)
}

func (f *funcIter) Next(ctx context.Context) (bson.Raw, bool, error) {
	for {
		d, ok, err := f.in.Next(ctx)
		if err != nil || !ok {
			return nil, false, err
		}
		if out, keep := f.fn(d); keep {
			return out, true, nil
		}
	}
}

func (f *funcIter) Close(ctx context.Context) { f.in.Close(ctx) }

// limitIter skips and limits a stream (limit 0: no limit).
type limitIter struct {
	in          docIter
	skip, limit int64
	seen        int64
	sent        int64
}

func (l *limitIter) Next(ctx context.Context) (bson.Raw, bool, error) {
	if l.limit > 0 && l.sent >= l.limit {
		l.in.Close(ctx)
		return nil, false, nil
	}
	for l.seen < l.skip {
		_, ok, err := l.in.Next(ctx)
		if err != nil || !ok {
			return nil, false, err
		}
		l.seen++
	}
	d, ok, err := l.in.Next(ctx)
	if err != nil || !ok {
		return nil, false, err
	}
	l.sent++
	return d, true, nil
}

func (l *limitIter) Close(ctx context.Context) { l.in.Close(ctx) }

// sortIter reads its whole input, then serves it sorted.
type sortIter struct {
	in     docIter
	spec   sortSpec
	sorted *sliceIter
}

func (s *sortIter) Next(ctx context.Context) (bson.Raw, bool, error) {
	if s.sorted == nil {
		docs, err := drain(ctx, s.in)
		if err != nil {
			return nil, false, err
		}
		slices.SortStableFunc(docs, s.spec.compare)
		s.sorted = &sliceIter{docs: docs}
	}
	return s.sorted.Next(ctx)
}

func (s *sortIter) Close(ctx context.Context) { s.in.Close(ctx) }

// countIter is $count: one document {field: n}, none for an empty input.
type countIter struct {
	in    docIter
	field string
	done  bool
}

func (c *countIter) Next(ctx context.Context) (bson.Raw, bool, error) {
	if c.done {
		return nil, false, nil
	}
	c.done = true
	var n int64
	for {
		_, ok, err := c.in.Next(ctx)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			break
		}
		n++
	}
	if n == 0 {
		return nil, false, nil
	}
	return rawDoc(bson.D{{Key: c.field, Value: narrowInt(n)}}), true, nil
}

func (c *countIter) Close(ctx context.Context) { c.in.Close(ctx) }

// narrowInt is how MongoDB returns counts: int32 when it fits.
func narrowInt(n int64) any {
	if n >= math.MinInt32 && n <= math.MaxInt32 {
		return int32(n)
	}
	return n
}

type groupSpec struct {
	id   bson.RawValue
	accs []accumulatorSpec
}

type accumulatorSpec struct {
	field string
	op    string
	expr  bson.RawValue
}

func parseGroup(doc bson.Raw) (*groupSpec, error) {
	g := &groupSpec{}
	elems, _ := doc.Elements()
	hasID := false
	for _, e := range elems {
		if e.Key() == "_id" {
			if err := checkExpr(e.Value()); err != nil {
				return nil, err
			}
			g.id, hasID = e.Value(), true
			continue
		}
		acc, ok := e.Value().DocumentOK()
		if !ok {
			return nil, wire.BadValue(fmt.Sprintf("the field '%s' must be an accumulator object", e.Key()))
		}
		ae, _ := acc.Elements()
		if len(ae) != 1 {
			return nil, wire.BadValue(fmt.Sprintf("the field '%s' must specify one accumulator", e.Key()))
		}
		op := ae[0].Key()
		switch op {
		case "$sum", "$avg", "$min", "$max", "$first", "$last", "$count":
		default:
			return nil, wire.BadValue(fmt.Sprintf("the sandbox router's $group supports $sum, $count, $avg, $min, $max, $first and $last, not %s", op))
		}
		if err := checkExpr(ae[0].Value()); err != nil {
			return nil, err
		}
		g.accs = append(g.accs, accumulatorSpec{field: e.Key(), op: op, expr: ae[0].Value()})
	}
	if !hasID {
		return nil, wire.BadValue("a group specification must include an _id")
	}
	return g, nil
}

// groupKey identifies a group; numbers that compare equal share a key, as they do
// in MongoDB ($group treats 1 and 1.0 as the same _id).
func groupKey(v bson.RawValue) string {
	switch v.Type {
	case bsontype.Int32, bsontype.Int64, bsontype.Double:
		f := 0.0
		switch v.Type {
		case bsontype.Int32:
			f = float64(v.Int32())
		case bsontype.Int64:
			f = float64(v.Int64())
		default:
			f = v.Double()
		}
		return "n" + strconv.FormatFloat(f, 'g', -1, 64)
	}
	return string([]byte{byte(v.Type)}) + string(v.Value)
}

type groupState struct {
	id   bson.RawValue
	accs []accState
}

type accState struct {
	sum     numSum
	val     bson.RawValue
	has     bool
	numeric int64
}

// groupIter is $group: it reads its whole input, then serves one document per group
// in the order the groups first appeared.
type groupIter struct {
	in   docIter
	spec *groupSpec
	out  *sliceIter
}

func (g *groupIter) Next(ctx context.Context) (bson.Raw, bool, error) {
	if g.out == nil {
		docs, err := g.run(ctx)
		if err != nil {
			return nil, false, err
		}
		g.out = &sliceIter{docs: docs}
	}
	return g.out.Next(ctx)
}

func (g *groupIter) run(ctx context.Context) ([]bson.Raw, error) {
	groups := map[string]*groupState{}
	var order []*groupState
	for {
		d, ok, err := g.in.Next(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		id, ok := evalExpr(d, g.spec.id)
		if !ok {
			id = nullValue
		}
		k := groupKey(id)
		st := groups[k]
		if st == nil {
			st = &groupState{id: id, accs: make([]accState, len(g.spec.accs))}
			groups[k] = st
			order = append(order, st)
		}
		for i, a := range g.spec.accs {
			accumulate(&st.accs[i], a, d)
		}
	}
	out := make([]bson.Raw, 0, len(order))
	for _, st := range order {
		idx, doc := bsoncore.AppendDocumentStart(nil)
		doc = bsoncore.AppendValueElement(doc, "_id", core(st.id))
		for i, a := range g.spec.accs {
			doc = bsoncore.AppendValueElement(doc, a.field, core(result(&st.accs[i], a)))
		}
		doc, _ = bsoncore.AppendDocumentEnd(doc, idx)
		out = append(out, doc)
	}
	return out, nil
}

func (g *groupIter) Close(ctx context.Context) { g.in.Close(ctx) }

func accumulate(st *accState, a accumulatorSpec, d bson.Raw) {
	if a.op == "$count" {
		st.sum.add(rawValue(int32(1)))
		return
	}
	v, ok := evalExpr(d, a.expr)
	switch a.op {
	case "$sum", "$avg":
		if ok && st.sum.add(v) {
			st.numeric++
		}
	case "$min", "$max":
		if !ok || v.Type == bsontype.Null || v.Type == bsontype.Undefined {
			return
		}
		c := 0
		if st.has {
			c = compareValues(v, st.val)
		}
		if !st.has || (a.op == "$min" && c < 0) || (a.op == "$max" && c > 0) {
			st.val, st.has = v, true
		}
	case "$first":
		if !st.has {
			st.val, st.has = v, ok
			if !ok {
				st.val, st.has = nullValue, true
			}
		}
	case "$last":
		st.val, st.has = v, true
		if !ok {
			st.val = nullValue
		}
	}
}

func result(st *accState, a accumulatorSpec) bson.RawValue {
	switch a.op {
	case "$sum", "$count":
		return st.sum.value()
	case "$avg":
		if st.numeric == 0 {
			return nullValue
		}
		return rawValue(st.sum.float() / float64(st.numeric))
	}
	if !st.has {
		return nullValue
	}
	return st.val
}

// numSum adds BSON numbers with MongoDB's type promotion: int32 until it would
// overflow, then int64, then double once a double is seen.
type numSum struct {
	kind bsontype.Type // 0 (nothing yet, reads as int32 0), Int32, Int64 or Double
	i    int64
	f    float64
}

// add adds v if it is a number and reports whether it was.
func (s *numSum) add(v bson.RawValue) bool {
	switch v.Type {
	case bsontype.Int32, bsontype.Int64:
		n, _ := asInt64(v)
		if s.kind == bsontype.Double {
			s.f += float64(n)
			return true
		}
		sum := s.i + n
		overflow := (n > 0 && sum < s.i) || (n < 0 && sum > s.i)
		if overflow {
			s.kind, s.f = bsontype.Double, float64(s.i)+float64(n)
			return true
		}
		s.i = sum
		if v.Type == bsontype.Int64 || s.kind == bsontype.Int64 || sum > math.MaxInt32 || sum < math.MinInt32 {
			s.kind = bsontype.Int64
		} else {
			s.kind = bsontype.Int32
		}
		return true
	case bsontype.Double:
		if s.kind != bsontype.Double {
			s.f = float64(s.i)
		}
		s.kind = bsontype.Double
		s.f += v.Double()
		return true
	}
	return false
}

func (s *numSum) float() float64 {
	if s.kind == bsontype.Double {
		return s.f
	}
	return float64(s.i)
}

func (s *numSum) value() bson.RawValue {
	switch s.kind {
	case bsontype.Double:
		return rawValue(s.f)
	case bsontype.Int64:
		return rawValue(s.i)
	}
	return rawValue(int32(s.i))
}
