package engine

import (
	"fmt"
	"time"
)

// State is where a migration is in its lifecycle (DESIGN section 3). The strings are
// part of the headless API (`GET /status`) and of the state file: never rename one.
type State string

const (
	Draft       State = "draft"
	Validated   State = "validated"
	Starting    State = "starting"
	Syncing     State = "syncing"
	Ready       State = "ready"
	CuttingOver State = "cutting_over"
	Finalizing  State = "finalizing"
	Done        State = "done"
	Cancelled   State = "cancelled"
	Expired     State = "expired"
	Failed      State = "failed"
)

// transitions lists, for each state, the states it may move to. It is the one place
// the lifecycle's rules live; every change of state goes through Transition. A
// ready migration whose shard fails, falls behind or restarts is syncing again; its
// cutover window keeps running, so a syncing migration can expire too.
var transitions = map[State][]State{
	Draft:       {Validated, Failed},
	Validated:   {Validated, Starting, Failed},
	Starting:    {Syncing, Cancelled, Failed},
	Syncing:     {Ready, Expired, Cancelled, Failed},
	Ready:       {CuttingOver, Syncing, Expired, Cancelled, Failed},
	CuttingOver: {Finalizing, Expired, Cancelled, Failed},
	Finalizing:  {Done, Cancelled, Failed},
	Failed:      {Starting, Cancelled},
	Expired:     {Cancelled},
}

// Terminal reports whether nothing more happens to a migration in state s.
func (s State) Terminal() bool { return s == Done || s == Cancelled }

// Valid reports whether s is one of the lifecycle's states.
func (s State) Valid() bool {
	_, ok := transitions[s]
	return ok || s.Terminal()
}

// CanMoveTo reports whether the lifecycle allows going from s to next.
func (s State) CanMoveTo(next State) bool {
	for _, t := range transitions[s] {
		if t == next {
			return true
		}
	}
	return false
}

// Event is one recorded transition of a migration or of one of its shards.
type Event struct {
	At    time.Time
	Shard string // "" for the migration itself
	From  string
	To    string
	// Reason says why, in words a DBA can act on ("oplog of shard rs2 no longer reaches
	// back to 10:02:11: restart this shard").
	Reason string
}

// TransitionError is returned for a move the lifecycle does not allow.
type TransitionError struct {
	From, To State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("a migration that is %s cannot become %s", e.From, e.To)
}

// Transition checks a move from one state to another and returns the event to record.
func Transition(from, to State, at time.Time, reason string) (Event, error) {
	if !from.CanMoveTo(to) {
		return Event{}, &TransitionError{From: from, To: to}
	}
	return Event{At: at, From: string(from), To: string(to), Reason: reason}, nil
}

// Phase is where one shard's sync is.
type Phase string

const (
	Pending Phase = "pending"
	// Clearing is a restarted shard deleting what it owns on the destination
	// before it copies again. It is a phase of the snapshot only: the checkpoint
	// says Pending meanwhile, so that a restart clears again.
	Clearing        Phase = "clearing"
	Copying         Phase = "copying"
	BuildingIndexes Phase = "building_indexes"
	CatchingUp      Phase = "catching_up"
	Synced          Phase = "synced"
	ShardFailed     Phase = "failed"
)
