package topology

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
)

// MemberOpTime is where one data-bearing member of a replica set is, as its
// primary's replSetGetStatus reports it.
type MemberOpTime struct {
	Name  string // host:port, as the set's config names it
	State string // stateStr: PRIMARY, SECONDARY, RECOVERING, (not reachable/healthy), ...
	// Reachable is false when the primary's heartbeats do not reach the member
	// (health 0): its optime is then the last one it reported, or none.
	Reachable bool
	TS        primitive.Timestamp // its last applied entry (zero: unknown)
}

// MemberOpTimes reads replSetGetStatus on the set client reaches (its primary) for
// the last applied entry of each data-bearing member (arbiters hold no data and
// are left out). It needs the clusterMonitor role, as the majority commit point's
// fallback does; callers treat an error as "not known".
func MemberOpTimes(ctx context.Context, client *mongo.Client) ([]MemberOpTime, error) {
	st, err := runCommand(ctx, client, DefaultTimeout, "admin", bson.D{{Key: "replSetGetStatus", Value: 1}})
	if err != nil {
		return nil, fmt.Errorf("replSetGetStatus: %w", err)
	}
	return memberOpTimesOf(st)
}

// memberOpTimesOf reads the members of a replSetGetStatus reply.
func memberOpTimesOf(st bson.Raw) ([]MemberOpTime, error) {
	arr, ok := st.Lookup("members").ArrayOK()
	if !ok {
		return nil, fmt.Errorf("replSetGetStatus has no members array: %v", st)
	}
	vals, _ := arr.Values()
	var out []MemberOpTime
	for _, v := range vals {
		m, ok := v.DocumentOK()
		if !ok {
			continue
		}
		state := str(m, "stateStr")
		if state == "ARBITER" {
			continue
		}
		health, _ := asInt64(m.Lookup("health"))
		ts, _, _ := opTimeAt(m, "optime")
		out = append(out, MemberOpTime{Name: str(m, "name"), State: state, Reachable: health > 0, TS: ts})
	}
	return out, nil
}

// Behind is how far the member's last applied entry is behind ts, in whole
// seconds of the entries' timestamps (zero when it is at or past ts).
func (m MemberOpTime) Behind(ts primitive.Timestamp) time.Duration {
	if m.TS.T >= ts.T {
		return 0
	}
	return time.Duration(ts.T-m.TS.T) * time.Second
}
