package sandbox

import (
	"time"

	"github.com/shardlift/shardlift/sandbox/shard"
)

// Replica set hooks: each shard is a replica set of Options.Members members (package
// shard, replset.go). They serve tests and a DBA's failure drills (--control).

// ShardMembers describes a shard's members: address, state, last applied optime, lag.
func (c *Cluster) ShardMembers(name string) ([]shard.Member, error) {
	f, err := c.front(name)
	if err != nil {
		return nil, err
	}
	return f.Members()
}

// StepDown makes a shard's most advanced secondary its primary (see shard.Front.StepDown):
// after it catches up, or with rollback, where it is, the old primary rolling back what
// it had not replicated. The router and drivers follow through hello.
func (c *Cluster) StepDown(name string, rollback bool) (shard.StepDownReport, error) {
	f, err := c.front(name)
	if err != nil {
		return shard.StepDownReport{}, err
	}
	return f.StepDown(rollback)
}

// SetReplicationLag makes a shard's member apply its primary's entries only once they are
// d old; d < 0 holds its replication until the next call; member -1 means every member
// (the primary's own lag matters once it is a secondary).
func (c *Cluster) SetReplicationLag(name string, member int, d time.Duration) error {
	f, err := c.front(name)
	if err != nil {
		return err
	}
	return f.SetLag(member, d)
}

// MajorityOpTime is a shard's majority commit point.
func (c *Cluster) MajorityOpTime(name string) (shard.OpTime, error) {
	f, err := c.front(name)
	if err != nil {
		return shard.OpTime{}, err
	}
	return f.MajorityOpTime()
}

// HideNextEntries makes a shard primary's next n oplog entries of writes invisible to
// the oplog's readers, the entries after them visible, until RevealEntries: oplog
// holes placed exactly.
func (c *Cluster) HideNextEntries(name string, n int) error {
	f, err := c.front(name)
	if err != nil {
		return err
	}
	return f.HideNextEntries(n)
}

// RevealEntries closes the holes HideNextEntries opened on a shard.
func (c *Cluster) RevealEntries(name string) error {
	f, err := c.front(name)
	if err != nil {
		return err
	}
	return f.RevealEntries()
}

// ShardReads are the finds and getMores each member of a shard served its clients
// (the router's left out), by member index: which members a client reads.
func (c *Cluster) ShardReads(name string) ([]shard.MemberReads, error) {
	f, err := c.front(name)
	if err != nil {
		return nil, err
	}
	return f.Reads(), nil
}
