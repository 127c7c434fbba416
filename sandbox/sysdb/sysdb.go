// Package sysdb describes the collections MongoDB keeps for itself in the admin,
// config and local databases, so that every sandbox node (router, config server,
// shard fronts) can present the ones a real node of its release has: their
// listCollections entries, index specifications and documents. It holds them in
// memory; the node that presents a collection decides where its documents come from
// (the cluster's catalog, the node's own start-up, its sessions).
//
//	catalog, node state ─► []Collection ─► listCollections / listIndexes / find / listDatabases
package sysdb

import (
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/shardlift/shardlift/sandbox/release"
)

// Internal reports whether a database is one of MongoDB's own.
func Internal(db string) bool { return db == "admin" || db == "config" || db == "local" }

// Collection is one internal collection as a node presents it.
type Collection struct {
	DB, Name string
	// UUID is the collection's uuid (listCollections info.uuid), zero for none.
	UUID primitive.Binary
	// Options are listCollections' options (capped, size...).
	Options bson.D
	// Indexes are the index specifications besides _id_ (key and name, plus options).
	Indexes []bson.D
	// NoIDIndex is set for collections without an _id index (the oplog).
	NoIDIndex bool
	Docs      []bson.Raw
}

// NS is "db.name".
func (c Collection) NS() string { return c.DB + "." + c.Name }

// Index builds an index specification {key, name} plus options.
func Index(key bson.D, name string, opts ...bson.E) bson.D {
	return append(bson.D{{Key: "key", Value: key}, {Key: "name", Value: name}}, opts...)
}

// IndexSpecs is what listIndexes returns: {v: 2, key, name, ...}, with the ns field
// index specifications carried until 4.4 (SERVER-41696 removed it).
func (c Collection) IndexSpecs(rel release.Release) []bson.D {
	var out []bson.D
	if !c.NoIDIndex {
		out = append(out, c.spec(rel, Index(bson.D{{Key: "_id", Value: int32(1)}}, "_id_")))
	}
	for _, ix := range c.Indexes {
		out = append(out, c.spec(rel, ix))
	}
	return out
}

func (c Collection) spec(rel release.Release, ix bson.D) bson.D {
	out := bson.D{{Key: "v", Value: int32(2)}}
	out = append(out, ix...)
	if !rel.AtLeast(release.V44) {
		out = append(out, bson.E{Key: "ns", Value: c.NS()})
	}
	return out
}

// ListEntry is the collection's listCollections entry (only name and type when
// nameOnly is set).
func (c Collection) ListEntry(rel release.Release, nameOnly bool) bson.D {
	d := bson.D{{Key: "name", Value: c.Name}, {Key: "type", Value: "collection"}}
	if nameOnly {
		return d
	}
	opts := c.Options
	if opts == nil {
		opts = bson.D{}
	}
	info := bson.D{{Key: "readOnly", Value: false}}
	if len(c.UUID.Data) == 16 {
		info = append(info, bson.E{Key: "uuid", Value: c.UUID})
	}
	d = append(d, bson.E{Key: "options", Value: opts}, bson.E{Key: "info", Value: info})
	if !c.NoIDIndex {
		d = append(d, bson.E{Key: "idIndex", Value: c.IndexSpecs(rel)[0]})
	}
	return d
}

// Size is the documents' size in bytes.
func (c Collection) Size() int64 {
	var n int64
	for _, d := range c.Docs {
		n += int64(len(d))
	}
	return n
}

// Set is a node's internal collections.
type Set []Collection

// Find returns one collection.
func (s Set) Find(db, name string) (Collection, bool) {
	for _, c := range s {
		if c.DB == db && c.Name == name {
			return c, true
		}
	}
	return Collection{}, false
}

// In lists a database's collections, sorted by name.
func (s Set) In(db string) []Collection {
	var out []Collection
	for _, c := range s {
		if c.DB == db {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b Collection) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// DBSize is the bytes a database's collections hold, as listDatabases' sizeOnDisk
// reports them (at least one 4 KiB page per collection, as WiredTiger files are).
func (s Set) DBSize(db string) int64 {
	var n int64
	for _, c := range s.In(db) {
		n += max(4096, (c.Size()+4095)/4096*4096)
	}
	return n
}

// Raw marshals a document built by the sandbox itself.
func Raw(d any) bson.Raw {
	b, err := bson.Marshal(d)
	if err != nil {
		panic("sysdb: cannot encode " + err.Error())
	}
	return b
}

// Raws marshals documents.
func Raws[T any](docs []T) []bson.Raw {
	out := make([]bson.Raw, len(docs))
	for i, d := range docs {
		out[i] = Raw(d)
	}
	return out
}

// NewUUID is a random (version 4) UUID as BSON binary subtype 4.
func NewUUID() primitive.Binary {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("sysdb: no randomness for a UUID: " + err.Error())
	}
	return UUIDFrom(b)
}

// UUIDFrom turns 16 bytes into a version 4 UUID.
func UUIDFrom(b []byte) primitive.Binary {
	u := slices.Clone(b[:16])
	u[6] = (u[6] & 0x0f) | 0x40
	u[8] = (u[8] & 0x3f) | 0x80
	return primitive.Binary{Subtype: 4, Data: u}
}

// FCVDocument is admin.system.version's featureCompatibilityVersion document.
func FCVDocument(fcv string) bson.D {
	return bson.D{{Key: "_id", Value: "featureCompatibilityVersion"}, {Key: "version", Value: fcv}}
}

// SessionUID is a logical session's uid: the SHA-256 of the user's "name@db", or of ""
// without authentication (src/mongo/db/logical_session_id_helpers.cpp).
func SessionUID(user string) primitive.Binary {
	in := ""
	if user != "" {
		in = user + "@admin"
	}
	sum := sha256.Sum256([]byte(in))
	return primitive.Binary{Subtype: 0, Data: sum[:]}
}
