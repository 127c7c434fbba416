package engine

import (
	"errors"
	"testing"
	"time"
)

func TestEveryStateIsValidAndReachable(t *testing.T) {
	all := []State{Draft, Validated, Starting, Syncing, Ready, CuttingOver, Finalizing, Done, Cancelled, Expired, Failed}
	reached := map[State]bool{Draft: true}
	for _, s := range all {
		if !s.Valid() {
			t.Errorf("%s is not valid", s)
		}
		for _, next := range transitions[s] {
			reached[next] = true
		}
	}
	for _, s := range all {
		if !reached[s] {
			t.Errorf("no transition leads to %s", s)
		}
	}
	if State("paused").Valid() {
		t.Error("an unknown state is valid")
	}
}

func TestDoneOnlyAfterFinalizing(t *testing.T) {
	for s := range transitions {
		if s != Finalizing && s.CanMoveTo(Done) {
			t.Errorf("%s can become done without finalizing", s)
		}
	}
}

func TestTerminalStatesGoNowhere(t *testing.T) {
	for _, s := range []State{Done, Cancelled} {
		if !s.Terminal() || len(transitions[s]) != 0 {
			t.Errorf("%s must be terminal", s)
		}
	}
}

func TestRefusedTransitionSaysWhy(t *testing.T) {
	_, err := Transition(Syncing, Done, time.Now(), "")
	var te *TransitionError
	if !errors.As(err, &te) || te.From != Syncing || te.To != Done {
		t.Fatalf("got %v", err)
	}
	if err.Error() != "a migration that is syncing cannot become done" {
		t.Fatalf("message %q", err)
	}
	ev, err := Transition(Ready, CuttingOver, time.Unix(5, 0), "user pressed Start cutover")
	if err != nil || ev.From != "ready" || ev.To != "cutting_over" || ev.Reason == "" {
		t.Fatalf("allowed transition: %+v, %v", ev, err)
	}
}
