package diagnostics_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/shardlift/shardlift/app/diagnostics"
)

func TestLogRingKeepsTheNewestLinesWithSecretsMasked(t *testing.T) {
	secrets := &diagnostics.SecretSet{}
	secrets.Add("p@ss word!", "abc")
	r := diagnostics.NewLogRing(3, secrets)
	for i := range 5 {
		fmt.Fprintf(r, "line %d uri=mongodb://u:%s@h p@ss word! abc\n", i, "p%40ss%20word%21")
	}
	got := r.Lines()
	// A connection string keeps its user, not even a masked password.
	want := []string{
		"line 2 uri=mongodb://u@h **** abc",
		"line 3 uri=mongodb://u@h **** abc",
		"line 4 uri=mongodb://u@h **** abc",
	}
	if !slices.Equal(got, want) {
		t.Errorf("lines\n%q\nwant\n%q", got, want)
	}
}
