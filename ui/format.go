package ui

import (
	"fmt"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/shardlift/shardlift/engine"
)

// countText is a document count for people: "412,345", "12.4 M", "1.4 B".
func countText(n int64) string {
	switch {
	case n < 1_000_000:
		return humanize.Comma(max(n, 0))
	case n < 1_000_000_000:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/1e6)) + " M"
	default:
		return trimZero(fmt.Sprintf("%.1f", float64(n)/1e9)) + " B"
	}
}

// rateText is the number of a per-second rate: "2.1 M", "12,400", "3.5"; the caller
// says what per second.
func rateText(r float64) string {
	switch {
	case r < 10:
		return trimZero(fmt.Sprintf("%.1f", max(r, 0)))
	case r < 1e6:
		return humanize.Comma(int64(r + 0.5))
	default:
		return countText(int64(r))
	}
}

func trimZero(s string) string { return strings.TrimSuffix(s, ".0") }

// clockText is a lag or an optime gap as Atlas shows it: "0:07", "12:30", "1:02:03".
// It truncates to whole seconds, so "0:00" means less than a second.
func clockText(d time.Duration) string {
	s := int64(max(d, 0) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// unknown stands for a lag or an optime gap nobody measured yet: a shard that
// does not replay its oplog has none.
const unknown = "—"

// lagText is a lag or an optime gap when it is known, else unknown.
func lagText(d time.Duration, known bool) string {
	if !known {
		return unknown
	}
	return clockText(d)
}

// ofTotal is "copied of total" for people; a total that is still an estimate reads
// "about": "412 GiB of about 640 GiB".
func ofTotal(copied, total string, estimated bool) string {
	if estimated {
		return copied + " of about " + total
	}
	return copied + " of " + total
}

// durationText is an elapsed or remaining time: "< 1 min", "28 min", "1 h 12 min", "2 d 3 h".
func durationText(d time.Duration) string {
	m := int64(max(d, 0) / time.Minute)
	switch {
	case m < 1:
		return "< 1 min"
	case m < 60:
		return fmt.Sprintf("%d min", m)
	case m < 24*60:
		return fmt.Sprintf("%d h %d min", m/60, m%60)
	default:
		return fmt.Sprintf("%d d %d h", m/(24*60), m/60%24)
	}
}

// countdownText is the cutover timer: "2 d 23 h 58 min", "5 h 0 min", "12 min".
func countdownText(d time.Duration) string {
	m := int64(max(d, 0) / time.Minute)
	switch {
	case m < 1:
		return "< 1 min"
	case m < 60:
		return fmt.Sprintf("%d min", m)
	case m < 24*60:
		return fmt.Sprintf("%d h %d min", m/60, m%60)
	default:
		return fmt.Sprintf("%d d %d h %d min", m/(24*60), m/60%24, m%60)
	}
}

// phaseText is a shard phase for people.
func phaseText(p engine.Phase) string {
	switch p {
	case engine.Pending:
		return "waiting"
	case engine.Clearing:
		return "clearing"
	case engine.Copying:
		return "copying"
	case engine.BuildingIndexes:
		return "building indexes"
	case engine.CatchingUp:
		return "catching up"
	case engine.Synced:
		return "in sync"
	case engine.ShardFailed:
		return "failed"
	}
	return string(p)
}

// stateText is a migration state for people.
func stateText(s engine.State) string {
	switch s {
	case engine.Draft, engine.Validated:
		return "not started"
	case engine.Starting:
		return "starting"
	case engine.Syncing:
		return "syncing"
	case engine.Ready:
		return "ready for cutover"
	case engine.CuttingOver:
		return "cutting over"
	case engine.Finalizing:
		return "finalizing"
	case engine.Done:
		return "done"
	case engine.Cancelled:
		return "cancelled"
	case engine.Expired:
		return "expired"
	case engine.Failed:
		return "failed"
	}
	return string(s)
}

// running reports whether the engine is working on a migration in state s: closing
// the window then needs a decision.
func running(s engine.State) bool {
	switch s {
	case engine.Starting, engine.Syncing, engine.Ready, engine.CuttingOver, engine.Finalizing:
		return true
	}
	return false
}

// remaining is a progress row's time-left estimate.
func remaining(p engine.Progress, phase engine.Phase) string {
	switch {
	case phase == engine.Synced:
		return "-"
	case p.CopyRemaining > 0 || p.CatchUpRemaining > 0:
		return durationText(p.CopyRemaining + p.CatchUpRemaining)
	default:
		return "estimating"
	}
}

// userText is one user or role to re-create: "app@admin: readWrite@shop, read@crm".
func userText(u engine.User) string {
	kind := "user"
	if u.IsRole {
		kind = "role"
	}
	roles := "no roles"
	if len(u.Roles) > 0 {
		roles = strings.Join(u.Roles, ", ")
	}
	return fmt.Sprintf("%s %s@%s: %s", kind, u.Name, u.DB, roles)
}

// mongoshScript turns the users to re-create into mongosh commands that prompt for
// each password; roles are listed as comments because their privileges are not known.
func mongoshScript(users []engine.User) string {
	var b strings.Builder
	for _, u := range users {
		if u.IsRole {
			fmt.Fprintf(&b, "// re-create role %s@%s with its privileges (inherits: %s)\n", u.Name, u.DB, strings.Join(u.Roles, ", "))
			continue
		}
		var roles []string
		for _, r := range u.Roles {
			name, db, ok := strings.Cut(r, "@")
			if !ok {
				db = u.DB
			}
			roles = append(roles, fmt.Sprintf("{role: %q, db: %q}", name, db))
		}
		fmt.Fprintf(&b, "db.getSiblingDB(%q).createUser({user: %q, pwd: passwordPrompt(), roles: [%s]})\n",
			u.DB, u.Name, strings.Join(roles, ", "))
	}
	return b.String()
}
