package faults

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one scenario's outcome.
type Row struct {
	Scenario string
	Seed     uint64
	Diff     Diff
	// Converge is the time from the end of the scenario's last fault (the last
	// restart, the healed shard) until the migration ended with the destination
	// finalized (I'm done), or cancelled or expired once everything was applied.
	Converge time.Duration
	// Notes says what happened worth knowing (kills made, phases hit).
	Notes string
	Err   error
}

// Passed is true when the scenario ran through and nothing differs.
func (r Row) Passed() bool { return r.Err == nil && r.Diff.OK() }

// WriteTable prints one line per scenario and a total line.
func WriteTable(w io.Writer, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tseed\tdocuments\tlost\tduplicated\tdifferent\textra\tconverge\tresult\t")
	var total Diff
	var converge time.Duration
	passed := 0
	for _, r := range rows {
		result := "ok"
		if !r.Passed() {
			result = "FAIL"
		} else {
			passed++
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", r.Scenario, r.Seed, r.Diff.Documents, r.Diff.Lost,
			r.Diff.Duplicated, r.Diff.Different, r.Diff.Extra, r.Converge.Round(100*time.Millisecond), result)
		total.Documents += r.Diff.Documents
		total.Lost += r.Diff.Lost
		total.Duplicated += r.Diff.Duplicated
		total.Different += r.Diff.Different
		total.Extra += r.Diff.Extra
		converge += r.Converge
	}
	fmt.Fprintf(tw, "total (%d/%d passed)\t\t%d\t%d\t%d\t%d\t%d\t%s\t\t\n", passed, len(rows), total.Documents, total.Lost,
		total.Duplicated, total.Different, total.Extra, converge.Round(100*time.Millisecond))
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		var notes []string
		if r.Notes != "" {
			notes = append(notes, r.Notes)
		}
		if r.Err != nil {
			notes = append(notes, "error: "+r.Err.Error())
		}
		for _, s := range r.Diff.Samples {
			notes = append(notes, "differs: "+s)
		}
		if len(notes) > 0 {
			fmt.Fprintf(w, "%s: %s\n", r.Scenario, strings.Join(notes, "; "))
		}
	}
	return nil
}
