package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// Verdict says whether a figure meets its target.
type Verdict int

const (
	NoTarget Verdict = iota
	Met
	Missed
)

func (v Verdict) String() string {
	switch v {
	case Met:
		return "yes"
	case Missed:
		return "NO"
	}
	return ""
}

// Row is one figure of the table.
type Row struct {
	Figure    string
	Shardlift string
	Ceiling   string // what the figure is compared with; "" when nothing
	// Ratio is Shardlift's figure over the ceiling (or over the reference figure); NaN
	// when there is none.
	Ratio   float64
	Target  string
	Verdict Verdict
}

// Ratio is v / ceiling, NaN when the ceiling is not a positive number.
func Ratio(v, ceiling float64) float64 {
	if !(ceiling > 0) || math.IsInf(ceiling, 0) {
		return math.NaN()
	}
	return v / ceiling
}

// AtLeast is Met when x >= min, Missed when below, NoTarget when x is NaN.
func AtLeast(x, min float64) Verdict {
	switch {
	case math.IsNaN(x):
		return NoTarget
	case x >= min:
		return Met
	}
	return Missed
}

// AtMost is Met when x <= max, Missed when above, NoTarget when x is NaN.
func AtMost(x, max float64) Verdict {
	switch {
	case math.IsNaN(x):
		return NoTarget
	case x <= max:
		return Met
	}
	return Missed
}

// Table is the benchmark's result: a title line, rows, and notes under them.
type Table struct {
	Title string
	Rows  []Row
	Notes []string
}

// Print writes the table in Markdown, columns padded so that it reads as text too.
func (t *Table) Print(w io.Writer) error {
	header := []string{"figure", "Shardlift", "ceiling", "ratio", "target", "met"}
	cells := [][]string{header}
	for _, r := range t.Rows {
		ratio := "-"
		if !math.IsNaN(r.Ratio) {
			ratio = fmt.Sprintf("%.2f", r.Ratio)
		}
		cells = append(cells, []string{r.Figure, orDash(r.Shardlift), orDash(r.Ceiling), ratio, orDash(r.Target), orDash(r.Verdict.String())})
	}
	widths := make([]int, len(header))
	for _, row := range cells {
		for i, c := range row {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	if t.Title != "" {
		b.WriteString(t.Title + "\n\n")
	}
	line := func(row []string) {
		b.WriteString("|")
		for i, c := range row {
			b.WriteString(" " + c + strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)) + " |")
		}
		b.WriteString("\n")
	}
	line(cells[0])
	b.WriteString("|")
	for _, w := range widths {
		b.WriteString(strings.Repeat("-", w+2) + "|")
	}
	b.WriteString("\n")
	for _, row := range cells[1:] {
		line(row)
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rate formats a throughput: "12,345 docs/s".
func rate(v float64, unit string) string {
	return thousands(int64(math.Round(v))) + " " + unit
}

// thousands writes n with comma separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
