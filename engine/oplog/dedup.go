package oplog

import (
	"crypto/sha256"
	"encoding/binary"
)

// DDLKey identifies a DDL by what it does: its kind, namespaces, collection UUID
// and a SHA-256 digest of everything else it carries. Two shards' copies of one
// command have the same key (a sharded collection has one UUID on every shard).
type DDLKey [sha256.Size]byte

// Key returns the DDL's key.
func (d *DDL) Key() DDLKey {
	h := sha256.New()
	var b []byte
	b = append(b, byte(d.Kind))
	b = append(b, d.NS.DB...)
	b = append(b, 0)
	b = append(b, d.NS.Coll...)
	b = append(b, 0)
	b = append(b, d.To.DB...)
	b = append(b, 0)
	b = append(b, d.To.Coll...)
	b = append(b, 0)
	if d.DropTarget {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.Options)))
	b = append(b, d.Options...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.Indexes)))
	for _, ix := range d.Indexes {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ix)))
		b = append(b, ix...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.IndexNames)))
	for _, n := range d.IndexNames {
		b = append(b, n...)
		b = append(b, 0)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(d.UUID)))
	b = append(b, d.UUID...)
	h.Write(b)
	var k DDLKey
	h.Sum(k[:0])
	return k
}
