// Package shardkey reproduces, byte for byte, how MongoDB places a document on a
// shard: the canonical BSON sort order, shard key extraction, the hashed-key hash
// and the chunk lookup. The sandbox router uses it to route writes; the sync
// engine uses it to tell the documents a shard owns from orphans.
//
//	document ──Pattern.Extract──► Key {a: v, "b.c": w, h: NumberLong(Hash64(x))}
//	                                │
//	config.chunks ──NewChunkMap─────┼──► ChunkMap.Owner(Key) ─► shard name     (router)
//	                  └─ChunkMap.Ranges(shard)──► Ranges.Contains(Key) ─► owned or orphan
//
// Every rule here was checked against MongoDB's own source:
//   - Compare is BSONElement::woCompare without collation (bsonelement.cpp
//     compareElements, canonicalizeBSONType in bsontypes.h, BSONObj::woCompare).
//   - Hash64 is BSONElementHasher::hash64 with seed 0 (db/hasher.cpp), the hash
//     hashed indexes, hashed chunk bounds and convertShardKeyToHashed use.
//   - Pattern.Extract is ShardKeyPattern::extractShardKeyFromDoc (4.4+: a missing
//     field is null; an array on the path is an error).
//   - Keys are compared value by value in key-pattern order, as the routing table
//     does (field names of a shard key are fixed by the pattern).
//
// The package does no I/O, starts no goroutines and is safe for concurrent use:
// Pattern, ChunkMap and Ranges are immutable once built.
package shardkey
