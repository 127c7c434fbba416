package ui

import (
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
)

// Desktop notifications: a copy takes hours and the DBA is elsewhere. Each tick's
// snapshot of the attached migration is compared with the previous one (apply), also
// while the window is hidden in the system tray, and what changed is sent through
// Fyne's notifications. Each kind can be turned off; the choice is kept in the app's
// preferences.

// notificationKind is one reason to notify.
type notificationKind string

const (
	notifyReady        notificationKind = "ready"        // every shard in sync: the cutover can start
	notifyTrouble      notificationKind = "trouble"      // a shard failed or fell behind while ready
	notifyWindow       notificationKind = "window"       // 6 h and 1 h before the cutover window closes
	notifyVerification notificationKind = "verification" // a verification ended
	notifyEnded        notificationKind = "ended"        // done, cancelled or expired
)

// notificationKinds lists the kinds in the order the settings show them.
var notificationKinds = []struct {
	kind  notificationKind
	label string
}{
	{notifyReady, "When the migration is ready for cutover"},
	{notifyTrouble, "When a shard fails or falls behind while ready"},
	{notifyWindow, "6 hours and 1 hour before the cutover window closes"},
	{notifyVerification, "When a verification ends"},
	{notifyEnded, "When the migration is done, cancelled or expired"},
}

// windowWarnings are how long before the cutover window closes a notification says
// so, the earliest first.
var windowWarnings = []struct {
	before time.Duration
	text   string
}{{6 * time.Hour, "6 hours"}, {time.Hour, "1 hour"}}

// notice is one notification to send.
type notice struct {
	kind           notificationKind
	title, content string
}

// notices compares two snapshots of one migration, taken at prevAt and now, and
// says what to tell the DBA. The first snapshot after opening a migration is no
// news (prev has no ID then).
func notices(prev, cur engine.Snapshot, prevAt, now time.Time) []notice {
	if prev.ID == "" || prev.ID != cur.ID {
		return nil
	}
	var out []notice
	add := func(k notificationKind, title, format string, a ...any) {
		out = append(out, notice{kind: k, title: title, content: fmt.Sprintf(format, a...)})
	}
	if cur.State != prev.State {
		switch cur.State {
		case engine.Ready:
			add(notifyReady, "Ready for cutover", "Every shard of %s is in sync. The cutover window closes %s.",
				cur.Name, cur.TimerDeadline.Local().Format("Mon 15:04"))
		case engine.Done:
			add(notifyEnded, "Migration done", "%s is finalized: point the applications at the destination.", cur.Name)
		case engine.Cancelled:
			add(notifyEnded, "Migration cancelled", "%s stopped syncing; the migrated data stays on the destination.", cur.Name)
		case engine.Expired:
			add(notifyEnded, "Cutover window expired", "%s stopped syncing: the cutover window closed before the cutover.", cur.Name)
		}
	}
	if prev.State == engine.Ready {
		failed := false
		for _, sh := range cur.Shards {
			if sh.Phase != engine.ShardFailed {
				continue
			}
			failed = true
			if shardPhase(prev, sh.Name) != engine.ShardFailed {
				add(notifyTrouble, "Shard "+sh.Name+" failed", "%s: %s", cur.Name, sh.Error)
			}
		}
		if !failed && cur.State == engine.Syncing {
			_, why := cur.CanStartCutover()
			add(notifyTrouble, "A shard fell behind", "%s is not ready for cutover any more: %s.", cur.Name, why)
		}
	}
	switch cur.State {
	case engine.Syncing, engine.Ready, engine.CuttingOver:
		if d := cur.TimerDeadline; !d.IsZero() {
			// Only the most urgent warning crossed since the previous snapshot.
			for i := len(windowWarnings) - 1; i >= 0; i-- {
				w := windowWarnings[i]
				if left := d.Sub(now); d.Sub(prevAt) > w.before && left <= w.before && left > 0 {
					add(notifyWindow, "Cutover window closes in "+w.text, "%s: the cutover window closes at %s; "+
						"syncing stops then. Start the cutover, or extend the window.", cur.Name, d.Local().Format("Mon 15:04"))
					break
				}
			}
		}
	}
	if v := cur.Verification; v != nil && (prev.Verification == nil || !prev.Verification.At.Equal(v.At)) {
		if v.OK() {
			add(notifyVerification, "Verification passed", "%s: %d of %d ranges match.", cur.Name, v.Matched, v.Ranges)
		} else {
			add(notifyVerification, "Verification found differences", "%s: %s; see the migration's screen.", cur.Name, v.Differences())
		}
	}
	return out
}

func shardPhase(s engine.Snapshot, name string) engine.Phase {
	for _, sh := range s.Shards {
		if sh.Name == name {
			return sh.Phase
		}
	}
	return ""
}

func notificationPref(k notificationKind) string { return "notify." + string(k) }

// notificationsOn reports whether notifications of kind k are wanted (the default).
func (a *App) notificationsOn(k notificationKind) bool {
	return a.fa.Preferences().BoolWithFallback(notificationPref(k), true)
}

// sendNotices sends the notices whose kind is on.
func (a *App) sendNotices(ns []notice) {
	for _, n := range ns {
		if a.notificationsOn(n.kind) {
			a.notify(fyne.NewNotification(n.title, n.content))
		}
	}
}

// showNotificationSettings lets the user turn each kind of notification on or off.
func (a *App) showNotificationSettings() {
	box := container.NewVBox(wrapped("Shardlift tells the desktop when something needs you, also while its window is closed and the migration syncs in the background:"))
	for _, k := range notificationKinds {
		check := widget.NewCheck(k.label, func(on bool) { a.fa.Preferences().SetBool(notificationPref(k.kind), on) })
		check.SetChecked(a.notificationsOn(k.kind))
		box.Add(check)
	}
	a.showDialog(dialog.NewCustom("Notifications", "Close", fixedWidth(dialogWidth, box), a.win))
}
