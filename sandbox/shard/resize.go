package shard

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// A member's oplog cap, once replSetResizeOplog changed it, is kept in this file of
// the member's directory: a real member keeps its resized oplog across restarts.
const oplogSizeFile = "oplog.size"

// Bounds of replSetResizeOplog's size, in MiB, as a real server checks them.
const (
	minOplogMiB = 990
	maxOplogMiB = 1 << 30 // 1 PB
)

// replSetResizeOplog changes this member's oplog cap, as on a real member (the DBA
// runs it on each member): {replSetResizeOplog: 1, size: MiB}, 990 MiB at least.
// Shrinking rolls the oldest entries off now.
func (n *node) replSetResizeOplog(cmd *wire.Command) bson.Raw {
	if r := adminOnly(cmd); r != nil {
		return r
	}
	if cmd.Lookup("minRetentionHours").Type != 0 {
		return wire.ErrorReply(&wire.Error{Code: 72, Name: "InvalidOptions",
			Msg: "the sandbox keeps oplog entries by size only: give size, not minRetentionHours"})
	}
	mib, ok := asFloat(cmd.Lookup("size"))
	switch {
	case !ok:
		return wire.ErrorReply(&wire.Error{Code: 72, Name: "InvalidOptions", Msg: "invalid size field, size should be a number"})
	case mib < minOplogMiB:
		return wire.ErrorReply(&wire.Error{Code: 72, Name: "InvalidOptions", Msg: "oplog size should be 990MB at least"})
	case mib > maxOplogMiB:
		return wire.ErrorReply(&wire.Error{Code: 72, Name: "InvalidOptions", Msg: fmt.Sprintf("oplog size cannot exceed the maximum of %dMB", maxOplogMiB)})
	}
	if err := n.resizeOplog(int64(math.Round(mib * (1 << 20)))); err != nil {
		return wire.ErrorReply(err)
	}
	return wire.OK()
}

// resizeOplog sets this member's oplog cap and keeps it for its restarts.
func (n *node) resizeOplog(bytes int64) error {
	if err := n.oplog.setMax(bytes); err != nil {
		return err
	}
	path := filepath.Join(n.front.memberDir(n.member), oplogSizeFile)
	if err := os.WriteFile(path, []byte(strconv.FormatInt(bytes, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("keep the oplog size: %w", err)
	}
	return nil
}

// memberOplogSize is member i's oplog cap: what replSetResizeOplog set, else the shard's.
func (f *Front) memberOplogSize(i int) int64 {
	b, err := os.ReadFile(filepath.Join(f.memberDir(i), oplogSizeFile))
	if err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
			return v
		}
	}
	return f.oplogSize()
}
