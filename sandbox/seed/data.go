package seed

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
)

// Collection is one collection of the data set: where it lives, how it is sharded, which
// indexes it has, and which of its fields a write load may change (never part of the
// document key, so a write never moves a document between shards).
type Collection struct {
	DB, Name string
	// Key is the shard key pattern; nil for an unsharded collection.
	Key bson.D
	// Unique is the shardCollection unique option.
	Unique bool
	// Indexes are created on top of _id and the shard key's own index.
	Indexes []Index

	// Counter is a numeric field for $inc.
	Counter string
	// Field is a field that $set changes; SetValue draws a new value for it.
	Field string
	// Optional is a field that $set adds and $unset removes.
	Optional string
	// Array is an array of documents that $push grows and $pop shrinks; Element draws one.
	Array string
	// Tags is an array of strings from a small vocabulary, shrunk by $pull.
	Tags string

	ids      IDs
	share    int // percent of the data set's documents
	padField string
	seedKey  func(r *rand.Rand, n int, counts map[string]int) bson.D
	// splitAt is the k-th of shards-1 split points of a ranged collection, given how
	// many documents each collection gets; nil when there is none.
	splitAt  func(k, shards int, counts map[string]int) bson.D
	body     func(r *rand.Rand, key bson.D) bson.D
	setValue func(r *rand.Rand) any
	element  func(r *rand.Rand) bson.D
}

// Index is a secondary index definition.
type Index struct {
	Name   string
	Keys   bson.D
	Unique bool
	// TTL is expireAfterSeconds when positive or zero; -1 means no TTL.
	TTL int32
}

// Namespace is "db.collection".
func (c Collection) Namespace() string { return c.DB + "." + c.Name }

// Hashed reports whether the shard key is hashed.
func (c Collection) Hashed() bool {
	for _, e := range c.Key {
		if e.Value == "hashed" {
			return true
		}
	}
	return false
}

// KeyFields are the fields of a document key, _id first, then the shard key's other fields.
func (c Collection) KeyFields() []string {
	fields := []string{"_id"}
	for _, e := range c.Key {
		if e.Key != "_id" {
			fields = append(fields, e.Key)
		}
	}
	return fields
}

// Document builds a document with the given document key (_id and the shard key fields,
// as KeyFields orders them) and random contents; sizes vary from about 200 bytes to 4 KiB.
func (c Collection) Document(r *rand.Rand, key bson.D) bson.D {
	doc := append(append(bson.D{}, key...), c.body(r, key)...)
	target := int(200 * math.Pow(4096.0/200.0, r.Float64()))
	raw, err := bson.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("seed: document for %s does not marshal: %v", c.Namespace(), err))
	}
	// A string element costs its name, a type byte, a length, and a terminating zero.
	if pad := target - len(raw) - len(c.padField) - 6; pad > 0 {
		doc = append(doc, bson.E{Key: c.padField, Value: text(r, pad)})
	}
	return doc
}

// NewKey draws the document key of a new document. Its _id is a fresh ObjectId or
// number (unique across runs, unlike seeded ids, which are fixed): a number when like's
// is one, else as the collection's IDs say; like is an existing key of the same
// collection whose shard key values the new document may share, or nil.
func (c Collection) NewKey(r *rand.Rand, like bson.D) bson.D {
	oid := primitive.NewObjectID()
	var id any = oid
	if c.ids == NumberIDs || isNumber(like) {
		id = newNumberID(r)
	}
	switch c.Namespace() {
	case "shop.customers":
		return bson.D{{Key: "_id", Value: "C-" + oid.Hex()}}
	case "shop.orders":
		customer := any(customerID(r.IntN(1000)))
		if v, ok := lookup(like, "customerId"); ok {
			customer = v
		}
		return bson.D{{Key: "_id", Value: id}, {Key: "customerId", Value: customer}}
	case "inventory.items":
		return bson.D{{Key: "_id", Value: id}, {Key: "sku", Value: "SKU-" + oid.Hex()}}
	}
	return bson.D{{Key: "_id", Value: id}}
}

// seedKeyOf is the document key of seeded document n, its _id a number when the
// collection's IDs say so.
func (c Collection) seedKeyOf(r *rand.Rand, n int, counts map[string]int) bson.D {
	key := c.seedKey(r, n, counts)
	if c.ids != NumberIDs {
		return key
	}
	for i, e := range key {
		if _, ok := e.Value.(primitive.ObjectID); ok && e.Key == "_id" {
			key[i].Value = seedNumberID(n)
		}
	}
	return key
}

// IDs is the type of _id the data set gives the collections whose _ids are generated
// (all but shop.customers, whose _ids are customer numbers orders refer to).
type IDs int

const (
	// ObjectIDs are ObjectIds, as drivers make them: the default.
	ObjectIDs IDs = iota
	// NumberIDs are numbers, as applications with counters and snowflake ids have:
	// ints, longs and doubles mixed in each collection.
	NumberIDs
)

var idsNames = []string{ObjectIDs: "objectid", NumberIDs: "number"}

func (ids IDs) String() string {
	if ids < 0 || int(ids) >= len(idsNames) {
		return fmt.Sprintf("IDs(%d)", int(ids))
	}
	return idsNames[ids]
}

// ParseIDs reads an IDs name: "objectid" or "number".
func ParseIDs(s string) (IDs, error) {
	for i, name := range idsNames {
		if strings.EqualFold(s, name) {
			return IDs(i), nil
		}
	}
	return 0, fmt.Errorf("unknown _id type %q: use %s", s, strings.Join(idsNames, " or "))
}

// seedNumberID is the numeric _id of seeded document n: a counter (int) for a third of
// them, a snowflake id (long: a millisecond time in 2023 over 22 bits of sequence) for
// another, a double for the rest. The three never hold equal values.
func seedNumberID(n int) any {
	switch n % 3 {
	case 0:
		return int32(n)
	case 1:
		return snowflake(1_685_577_600_000+int64(n), int64(n))
	}
	return float64(n) + 0.5
}

// newNumberSeq makes new numeric _ids unique in a run and, as it starts from the clock,
// unlikely to meet a previous run's.
var newNumberSeq atomic.Int64

func init() { newNumberSeq.Store(time.Now().UnixMilli() * 1000) }

// newNumberID draws the numeric _id of a new document: a negative int or double (seeded
// ones are positive) or a snowflake of now.
func newNumberID(r *rand.Rand) any {
	seq := newNumberSeq.Add(1)
	switch r.IntN(3) {
	case 0:
		return -1 - int32(seq%math.MaxInt32)
	case 1:
		return snowflake(time.Now().UnixMilli(), seq)
	}
	return -float64(seq%(1<<40)) - 0.5
}

func snowflake(ms, seq int64) int64 { return ms<<22 | seq&(1<<22-1) }

// isNumber reports whether a document key's _id is a number.
func isNumber(key bson.D) bool {
	id, _ := lookup(key, "_id")
	switch id.(type) {
	case int32, int64, float64:
		return true
	}
	return false
}

// SetValue draws a new value for Field.
func (c Collection) SetValue(r *rand.Rand) any { return c.setValue(r) }

// Element draws an element for Array.
func (c Collection) Element(r *rand.Rand) bson.D { return c.element(r) }

// Tag draws one of the tags Tags holds.
func Tag(r *rand.Rand) string { return tagWords[r.IntN(len(tagWords))] }

// Collections is the data set with ObjectId _ids, in the order Populate creates it.
func Collections() []Collection { return CollectionsWith(ObjectIDs) }

// CollectionsWith is the data set whose generated _ids are of the given type.
func CollectionsWith(ids IDs) []Collection {
	colls := []Collection{
		{
			DB: "shop", Name: "customers", Key: bson.D{{Key: "_id", Value: "hashed"}},
			Indexes: []Index{
				{Name: "email_1", Keys: bson.D{{Key: "email", Value: 1}}, TTL: -1},
				{Name: "address.city_1_name.last_1", Keys: bson.D{{Key: "address.city", Value: 1}, {Key: "name.last", Value: 1}}, TTL: -1},
			},
			Counter: "loyalty.points", Field: "loyalty.tier", Optional: "note", Array: "contacts", Tags: "tags",
			share: 15, padField: "notes",
			seedKey: func(r *rand.Rand, n int, _ map[string]int) bson.D {
				return bson.D{{Key: "_id", Value: customerID(n)}}
			},
			body:     customer,
			setValue: func(r *rand.Rand) any { return pick(r, tiers) },
			element:  contact,
		},
		{
			DB: "shop", Name: "orders", Key: bson.D{{Key: "customerId", Value: 1}, {Key: "_id", Value: 1}},
			Indexes: []Index{
				{Name: "status_1_createdAt_-1", Keys: bson.D{{Key: "status", Value: 1}, {Key: "createdAt", Value: -1}}, TTL: -1},
				{Name: "items.sku_1", Keys: bson.D{{Key: "items.sku", Value: 1}}, TTL: -1},
			},
			Counter: "revision", Field: "status", Optional: "giftMessage", Array: "items", Tags: "tags",
			share: 40, padField: "comment",
			seedKey: func(r *rand.Rand, n int, counts map[string]int) bson.D {
				customers := max(counts["shop.customers"], 1)
				return bson.D{{Key: "_id", Value: seedObjectID(r, n)}, {Key: "customerId", Value: customerID(r.IntN(customers))}}
			},
			splitAt: func(k, shards int, counts map[string]int) bson.D {
				n := k * counts["shop.customers"] / shards
				if n == 0 {
					return nil
				}
				return bson.D{{Key: "customerId", Value: customerID(n)}, {Key: "_id", Value: primitive.MinKey{}}}
			},
			body:     order,
			setValue: func(r *rand.Rand) any { return pick(r, statuses) },
			element:  orderLine,
		},
		{
			DB: "inventory", Name: "items", Key: bson.D{{Key: "sku", Value: 1}}, Unique: true,
			Indexes: []Index{
				{Name: "category_1_price_1", Keys: bson.D{{Key: "category", Value: 1}, {Key: "price", Value: 1}}, TTL: -1},
			},
			Counter: "stock", Field: "price", Optional: "promotion", Array: "suppliers", Tags: "tags",
			share: 10, padField: "description",
			seedKey: func(r *rand.Rand, n int, _ map[string]int) bson.D {
				return bson.D{{Key: "_id", Value: seedObjectID(r, n)}, {Key: "sku", Value: skuOf(n)}}
			},
			splitAt: func(k, shards int, counts map[string]int) bson.D {
				n := k * counts["inventory.items"] / shards
				if n == 0 {
					return nil
				}
				return bson.D{{Key: "sku", Value: skuOf(n)}}
			},
			body:     item,
			setValue: func(r *rand.Rand) any { return price(r) },
			element:  supplier,
		},
		{
			DB: "analytics", Name: "pageviews",
			Indexes: []Index{
				{Name: "expireAt_1", Keys: bson.D{{Key: "expireAt", Value: 1}}, TTL: 0},
				{Name: "path_1_at_-1", Keys: bson.D{{Key: "path", Value: 1}, {Key: "at", Value: -1}}, TTL: -1},
			},
			Counter: "hits", Field: "referrer", Optional: "campaign", Array: "events", Tags: "tags",
			share: 25, padField: "payload",
			seedKey: func(r *rand.Rand, n int, _ map[string]int) bson.D {
				return bson.D{{Key: "_id", Value: seedObjectID(r, n)}}
			},
			body:     pageview,
			setValue: func(r *rand.Rand) any { return pick(r, referrers) },
			element:  event,
		},
		{
			DB: "analytics", Name: "sessions",
			Indexes: []Index{
				{Name: "token_1", Keys: bson.D{{Key: "token", Value: 1}}, Unique: true, TTL: -1},
				{Name: "expireAt_1", Keys: bson.D{{Key: "expireAt", Value: 1}}, TTL: 3600},
			},
			Counter: "pageCount", Field: "lastSeenAt", Optional: "campaign", Array: "cart", Tags: "tags",
			share: 10, padField: "state",
			seedKey: func(r *rand.Rand, n int, _ map[string]int) bson.D {
				return bson.D{{Key: "_id", Value: seedObjectID(r, n)}}
			},
			body:     session,
			setValue: func(r *rand.Rand) any { return date(r, pastBase) },
			element:  cartLine,
		},
	}
	for i := range colls {
		colls[i].ids = ids
	}
	return colls
}

// manyDB is the database of ManyCollections.
const manyDB = "many"

// ManyCollections are n sharded collections shaped as inventory.items, named
// many.items_0001 and on. Together they hold as many documents as
// inventory.items: PopulateWith scales the standard collections' shares by n
// (share divides by the sum of the shares).
func ManyCollections(n int, ids IDs) []Collection {
	if n <= 0 {
		return nil
	}
	var template Collection
	std := CollectionsWith(ids)
	for _, c := range std {
		if c.Namespace() == "inventory.items" {
			template = c
		}
	}
	out := make([]Collection, n)
	for i := range out {
		c := template
		c.DB, c.Name = manyDB, fmt.Sprintf("items_%04d", i+1)
		ns := c.Namespace()
		c.splitAt = func(k, shards int, counts map[string]int) bson.D {
			at := k * counts[ns] / shards
			if at == 0 {
				return nil
			}
			return bson.D{{Key: "sku", Value: skuOf(at)}}
		}
		out[i] = c
	}
	return out
}

// Dates: created/seen dates lie in 2024; expiry dates lie in 2100, so no TTL index ever
// deletes a seeded document.
var (
	pastBase   = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	futureBase = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

func date(r *rand.Rand, base time.Time) primitive.DateTime {
	return primitive.NewDateTimeFromTime(base.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour)))).Truncate(time.Millisecond))
}

func customerID(n int) string { return fmt.Sprintf("C%07d", n) }

func skuOf(n int) string { return fmt.Sprintf("SKU-%06d", n) }

// seedObjectID is the ObjectId of seeded document n: its time is a fixed day in 2023
// plus n seconds (so it never equals an id a driver makes now), the rest is drawn.
func seedObjectID(r *rand.Rand, n int) primitive.ObjectID {
	var id primitive.ObjectID
	base := uint32(time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC).Unix())
	binary.BigEndian.PutUint32(id[:4], base+uint32(n))
	binary.BigEndian.PutUint64(id[4:], r.Uint64())
	return id
}

func lookup(d bson.D, key string) (any, bool) {
	for _, e := range d {
		if e.Key == key {
			return e.Value, true
		}
	}
	return nil, false
}

func customer(r *rand.Rand, key bson.D) bson.D {
	first, last := pick(r, firstNames), pick(r, lastNames)
	id, _ := lookup(key, "_id")
	hash := make([]byte, 16)
	for i := range hash {
		hash[i] = byte(r.UintN(256))
	}
	d := bson.D{
		{Key: "name", Value: bson.D{{Key: "first", Value: first}, {Key: "last", Value: last}}},
		{Key: "email", Value: strings.ToLower(fmt.Sprintf("%s.%s.%v@example.com", first, last, id))},
		{Key: "address", Value: address(r)},
		{Key: "loyalty", Value: bson.D{{Key: "tier", Value: pick(r, tiers)}, {Key: "points", Value: r.Int64N(100000)}}},
		{Key: "contacts", Value: documents(r, 0, 3, contact)},
		{Key: "tags", Value: tags(r)},
		{Key: "createdAt", Value: date(r, pastBase)},
		{Key: "marketingOptIn", Value: r.IntN(2) == 0},
		{Key: "avatarHash", Value: primitive.Binary{Subtype: 0, Data: hash}},
	}
	if r.IntN(4) == 0 {
		d = append(d, bson.E{Key: "note", Value: nil})
	}
	return d
}

func address(r *rand.Rand) bson.D {
	return bson.D{
		{Key: "street", Value: fmt.Sprintf("%d %s Street", 1+r.IntN(999), pick(r, lastNames))},
		{Key: "city", Value: pick(r, cities)},
		{Key: "zip", Value: fmt.Sprintf("%05d", r.IntN(100000))},
		{Key: "country", Value: pick(r, countries)},
	}
}

func contact(r *rand.Rand) bson.D {
	if r.IntN(2) == 0 {
		return bson.D{{Key: "kind", Value: "phone"}, {Key: "value", Value: fmt.Sprintf("+1-555-%04d", r.IntN(10000))}, {Key: "primary", Value: r.IntN(3) == 0}}
	}
	return bson.D{{Key: "kind", Value: "email"}, {Key: "value", Value: fmt.Sprintf("%s@example.org", pick(r, tagWords))}, {Key: "primary", Value: false}}
}

func order(r *rand.Rand, _ bson.D) bson.D {
	lines := documents(r, 1, 12, orderLine)
	var total float64
	for _, l := range lines {
		line := l.(bson.D)
		qty, _ := lookup(line, "qty")
		p, _ := lookup(line, "price")
		total += float64(qty.(int32)) * p.(float64)
	}
	return bson.D{
		{Key: "status", Value: pick(r, statuses)},
		{Key: "createdAt", Value: date(r, pastBase)},
		{Key: "items", Value: lines},
		{Key: "total", Value: math.Round(total*100) / 100},
		{Key: "shipping", Value: bson.D{{Key: "method", Value: pick(r, shippingMethods)}, {Key: "address", Value: address(r)}}},
		{Key: "revision", Value: int32(0)},
		{Key: "tags", Value: tags(r)},
	}
}

func orderLine(r *rand.Rand) bson.D {
	return bson.D{{Key: "sku", Value: skuOf(r.IntN(5000))}, {Key: "qty", Value: int32(1 + r.IntN(5))}, {Key: "price", Value: price(r)}}
}

func price(r *rand.Rand) float64 { return float64(100+r.IntN(99900)) / 100 }

func item(r *rand.Rand, _ bson.D) bson.D {
	return bson.D{
		{Key: "name", Value: fmt.Sprintf("%s %s %s", pick(r, colors), pick(r, loremWords), pick(r, categories))},
		{Key: "category", Value: pick(r, categories)},
		{Key: "price", Value: price(r)},
		{Key: "stock", Value: int32(r.IntN(1000))},
		{Key: "attributes", Value: bson.D{
			{Key: "color", Value: pick(r, colors)},
			{Key: "size", Value: pick(r, sizes)},
			{Key: "weightGrams", Value: int32(10 + r.IntN(5000))},
		}},
		{Key: "suppliers", Value: documents(r, 1, 4, supplier)},
		{Key: "tags", Value: tags(r)},
	}
}

func supplier(r *rand.Rand) bson.D {
	return bson.D{{Key: "name", Value: pick(r, lastNames) + " Supply"}, {Key: "leadDays", Value: int32(1 + r.IntN(60))}}
}

func pageview(r *rand.Rand, _ bson.D) bson.D {
	return bson.D{
		{Key: "path", Value: pick(r, paths)},
		{Key: "sessionId", Value: fmt.Sprintf("S%08x", r.Uint32())},
		{Key: "at", Value: date(r, pastBase)},
		{Key: "expireAt", Value: date(r, futureBase)},
		{Key: "referrer", Value: pick(r, referrers)},
		{Key: "hits", Value: int64(1 + r.IntN(10))},
		{Key: "timings", Value: bson.D{
			{Key: "dnsMs", Value: int32(r.IntN(50))},
			{Key: "ttfbMs", Value: int32(10 + r.IntN(400))},
			{Key: "loadMs", Value: float64(r.IntN(500000)) / 100},
		}},
		{Key: "events", Value: documents(r, 0, 5, event)},
		{Key: "tags", Value: tags(r)},
	}
}

func event(r *rand.Rand) bson.D {
	return bson.D{{Key: "type", Value: pick(r, eventTypes)}, {Key: "atMs", Value: int32(r.IntN(60000))}}
}

func session(r *rand.Rand, key bson.D) bson.D {
	id, _ := lookup(key, "_id")
	token := fmt.Sprintf("%v", id)
	if oid, ok := id.(primitive.ObjectID); ok {
		token = oid.Hex()
	}
	return bson.D{
		// The token is unique (a unique index covers it) because the _id is.
		{Key: "token", Value: "tok-" + token},
		{Key: "customerId", Value: customerID(r.IntN(1000))},
		{Key: "startedAt", Value: date(r, pastBase)},
		{Key: "lastSeenAt", Value: date(r, pastBase)},
		{Key: "expireAt", Value: date(r, futureBase)},
		{Key: "device", Value: bson.D{{Key: "os", Value: pick(r, oses)}, {Key: "browser", Value: pick(r, browsers)}, {Key: "mobile", Value: r.IntN(3) == 0}}},
		{Key: "pageCount", Value: int32(r.IntN(40))},
		{Key: "cart", Value: documents(r, 0, 6, cartLine)},
		{Key: "tags", Value: tags(r)},
	}
}

func cartLine(r *rand.Rand) bson.D {
	return bson.D{{Key: "sku", Value: skuOf(r.IntN(5000))}, {Key: "qty", Value: int32(1 + r.IntN(3))}}
}

func documents(r *rand.Rand, lo, hi int, gen func(*rand.Rand) bson.D) bson.A {
	a := bson.A{}
	for range lo + r.IntN(hi-lo+1) {
		a = append(a, gen(r))
	}
	return a
}

func tags(r *rand.Rand) bson.A {
	a := bson.A{}
	for range r.IntN(5) {
		a = append(a, Tag(r))
	}
	return a
}

func pick(r *rand.Rand, words []string) string { return words[r.IntN(len(words))] }

// text is about n bytes of lowercase words.
func text(r *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(pick(r, loremWords))
	}
	return b.String()[:n]
}

var (
	firstNames      = []string{"Ada", "Alan", "Barbara", "Charles", "Dennis", "Edsger", "Frances", "Grace", "Hedy", "John", "Ken", "Linus", "Margaret", "Niklaus", "Radia", "Tim"}
	lastNames       = []string{"Lovelace", "Turing", "Liskov", "Babbage", "Ritchie", "Dijkstra", "Allen", "Hopper", "Lamarr", "Backus", "Thompson", "Torvalds", "Hamilton", "Wirth", "Perlman", "Berners-Lee"}
	cities          = []string{"Amsterdam", "Berlin", "Dublin", "Lisbon", "Madrid", "Oslo", "Paris", "Prague", "Rome", "Vienna", "Warsaw", "Zurich"}
	countries       = []string{"NL", "DE", "IE", "PT", "ES", "NO", "FR", "CZ", "IT", "AT", "PL", "CH"}
	tiers           = []string{"bronze", "silver", "gold", "platinum"}
	statuses        = []string{"pending", "paid", "packed", "shipped", "delivered", "returned", "cancelled"}
	shippingMethods = []string{"standard", "express", "pickup"}
	categories      = []string{"books", "garden", "kitchen", "music", "outdoor", "tools", "toys"}
	colors          = []string{"black", "blue", "green", "red", "white", "yellow"}
	sizes           = []string{"XS", "S", "M", "L", "XL"}
	paths           = []string{"/", "/cart", "/checkout", "/search", "/account", "/items/garden", "/items/tools", "/help"}
	referrers       = []string{"direct", "search", "newsletter", "partner", "social"}
	eventTypes      = []string{"scroll", "click", "hover", "submit", "copy"}
	oses            = []string{"linux", "macos", "windows", "android", "ios"}
	browsers        = []string{"firefox", "chrome", "safari", "edge"}
	tagWords        = []string{"new", "sale", "vip", "gift", "eco", "bulk", "promo", "return"}
	loremWords      = []string{"lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua"}
)
