package shardkey

import "errors"

// Sentinel errors. Functions wrap them with the field or bound involved, so test
// with errors.Is.
var (
	// ErrArrayInShardKey: a document holds an array at a shard key path or on the
	// way to it. MongoDB refuses such documents in a sharded collection
	// (ShardKeyNotFound, "Shard key cannot contain array values or array
	// descendants"), so one showing up means the source data or the key pattern
	// is not what the migration assumed.
	ErrArrayInShardKey = errors.New("shard key values cannot be arrays or lie inside arrays")

	// ErrInvalidPattern: a shard key pattern is not one MongoDB accepts (empty,
	// an empty path part, a value other than 1 or "hashed", or two hashed fields).
	ErrInvalidPattern = errors.New("invalid shard key pattern")

	// ErrMalformedBSON: bytes that were supposed to be a BSON document are not.
	ErrMalformedBSON = errors.New("malformed BSON")

	// ErrInconsistentChunks: chunk bounds overlap, leave a gap, do not cover the
	// whole key space, or do not match each other's shape. config.chunks read
	// while a split or migration committed can look like this: stop the balancer
	// and read the chunks again.
	ErrInconsistentChunks = errors.New("inconsistent chunk bounds")
)
