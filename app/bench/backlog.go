package bench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/x/bsonx/bsoncore"
)

// backlogColl is the collection the replay backlog writes (on the destination only).
const backlogColl = "backlog"

// backlog is a captured oplog: one stream of raw entries per source shard, each in
// ts order, every document's entries in one stream (as a shard owns a document).
type backlog struct {
	streams [][]byte
	entries int
	// counts are the entries by form, for the report.
	counts map[string]int
	// live is the number of documents the backlog leaves.
	live int
}

// The backlog's forms of entries and how often each is drawn (out of their sum).
var backlogForms = []struct {
	name   string
	weight int
}{
	{"insert", 30},
	{"$v:2 u (set fields)", 15},
	{"$v:2 i (new field)", 8},
	{"$v:2 d + nested s", 7},
	{"$v:2 array a/u", 7},
	{"$v:1 $set/$unset", 8},
	{"replacement", 5},
	{"delete", 20},
}

// makeBacklog draws n entries on bench.backlog over the given number of streams,
// from a fixed random source: inserts of ~300-byte documents, updates of several
// forms of live documents, and deletes.
func makeBacklog(n, streams int) (*backlog, error) {
	b := &backlog{streams: make([][]byte, streams), counts: map[string]int{}}
	r := rand.New(rand.NewPCG(8, 8))
	total := 0
	for _, f := range backlogForms {
		total += f.weight
	}
	var live []int // document numbers
	next := 0
	base := uint32(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix())
	for i := range n {
		ts := primitive.Timestamp{T: base + uint32(i/1000), I: uint32(i%1000) + 1}
		pick := r.IntN(total)
		form := 0
		for pick >= backlogForms[form].weight {
			pick -= backlogForms[form].weight
			form++
		}
		if len(live) == 0 {
			form = 0
		}
		var doc int
		if form == 0 {
			doc = next
			next++
			live = append(live, doc)
		} else {
			k := r.IntN(len(live))
			doc = live[k]
			if backlogForms[form].name == "delete" {
				live[k] = live[len(live)-1]
				live = live[:len(live)-1]
			}
		}
		raw, err := backlogEntry(form, doc, i, ts)
		if err != nil {
			return nil, err
		}
		s := doc % streams
		b.streams[s] = append(b.streams[s], raw...)
		b.counts[backlogForms[form].name]++
		b.entries++
	}
	b.live = len(live)
	return b, nil
}

// backlogDoc is document doc of the backlog as inserted: about 300 bytes.
func backlogDoc(doc int) bson.D {
	return bson.D{
		{Key: "_id", Value: objectID(idBacklog, doc)},
		{Key: "cust", Value: bson.D{{Key: "id", Value: int32(doc % 5000)}, {Key: "email", Value: fmt.Sprintf("c%d@example.com", doc)}}},
		{Key: "status", Value: "new"},
		{Key: "items", Value: bson.A{
			bson.D{{Key: "sku", Value: "SKU-1001"}, {Key: "qty", Value: int32(2)}, {Key: "price", Value: 19.99}},
			bson.D{{Key: "sku", Value: "SKU-2002"}, {Key: "qty", Value: int32(1)}, {Key: "price", Value: 5.5}},
		}},
		{Key: "total", Value: 45.48},
		{Key: "notes", Value: "Leave at the door, ring twice. Fragile contents. Deliver between nine and five."},
		{Key: "n", Value: int32(0)},
	}
}

// backlogEntry is entry i, of form, on document doc, as MongoDB 7.0 writes it for
// a collection sharded on _id: o2 holds the document key.
func backlogEntry(form, doc, i int, ts primitive.Timestamp) (bson.Raw, error) {
	id := objectID(idBacklog, doc)
	key := bson.D{{Key: "_id", Value: id}}
	e := bson.D{{Key: "ts", Value: ts}, {Key: "t", Value: int64(1)}, {Key: "v", Value: int64(2)}, {Key: "ns", Value: benchDB + "." + backlogColl}}
	switch backlogForms[form].name {
	case "insert":
		e = append(e, bson.E{Key: "op", Value: "i"}, bson.E{Key: "o", Value: backlogDoc(doc)}, bson.E{Key: "o2", Value: key})
	case "$v:2 u (set fields)":
		e = append(e, bson.E{Key: "op", Value: "u"}, bson.E{Key: "o", Value: bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{
			{Key: "u", Value: bson.D{{Key: "status", Value: "paid"}, {Key: "n", Value: int32(i)}}}}}}}, bson.E{Key: "o2", Value: key})
	case "$v:2 i (new field)":
		e = append(e, bson.E{Key: "op", Value: "u"}, bson.E{Key: "o", Value: bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{
			{Key: "i", Value: bson.D{{Key: "shippedAt", Value: primitive.DateTime(int64(ts.T) * 1000)}}}}}}}, bson.E{Key: "o2", Value: key})
	case "$v:2 d + nested s":
		e = append(e, bson.E{Key: "op", Value: "u"}, bson.E{Key: "o", Value: bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{
			{Key: "d", Value: bson.D{{Key: "notes", Value: false}}},
			{Key: "scust", Value: bson.D{{Key: "u", Value: bson.D{{Key: "email", Value: fmt.Sprintf("n%d@example.com", i)}}}}}}}}}, bson.E{Key: "o2", Value: key})
	case "$v:2 array a/u":
		e = append(e, bson.E{Key: "op", Value: "u"}, bson.E{Key: "o", Value: bson.D{{Key: "$v", Value: int32(2)}, {Key: "diff", Value: bson.D{
			{Key: "sitems", Value: bson.D{{Key: "a", Value: true}, {Key: "s0", Value: bson.D{{Key: "u", Value: bson.D{{Key: "qty", Value: int32(i % 9)}}}}}}}}}}}, bson.E{Key: "o2", Value: key})
	case "$v:1 $set/$unset":
		upd := bson.D{{Key: "$v", Value: int32(1)}, {Key: "$set", Value: bson.D{{Key: "total", Value: float64(i%10000) / 100}}}}
		if i%2 == 0 {
			upd = append(upd, bson.E{Key: "$unset", Value: bson.D{{Key: "shippedAt", Value: true}}})
		}
		e = append(e, bson.E{Key: "op", Value: "u"}, bson.E{Key: "o", Value: upd}, bson.E{Key: "o2", Value: key})
	case "replacement":
		d := backlogDoc(doc)
		d[2].Value = "replaced"
		d[6].Value = int32(i)
		e = append(e, bson.E{Key: "op", Value: "u"}, bson.E{Key: "o", Value: d}, bson.E{Key: "o2", Value: key})
	case "delete":
		e = append(e, bson.E{Key: "op", Value: "d"}, bson.E{Key: "o", Value: key})
	}
	raw, err := bson.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("build backlog entry %d: %w", i, err)
	}
	return raw, nil
}

// rawEntries splits a stream of concatenated BSON documents.
func rawEntries(stream []byte) ([]bson.Raw, error) {
	var out []bson.Raw
	for len(stream) > 0 {
		n, _, ok := bsoncore.ReadLength(stream)
		if !ok || n < 5 || int(n) > len(stream) {
			return nil, fmt.Errorf("a backlog stream is cut at %d bytes", len(stream))
		}
		out = append(out, bson.Raw(stream[:n]))
		stream = stream[n:]
	}
	return out, nil
}
