package gui

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"image/color"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/app/api"
	"github.com/shardlift/shardlift/app/diagnostics"
	"github.com/shardlift/shardlift/assets"
	"github.com/shardlift/shardlift/store"
	"github.com/shardlift/shardlift/ui"
)

// The desktop app, which `shardlift` without arguments starts:
//
//	display check ─► logger (ring + stderr) ─► state file (taken over from a background
//	Shardlift if one holds it) ─► bridge ─► ui.New ─► ShowAndRun ... window closed
//	    ─► migrations handed to the background keep syncing, headless, until they end,
//	       a signal arrives, or a new Shardlift asks to take over ─► bridge.Close
//
// A plain `go build` behaves like `fyne build`: the metadata of FyneApp.toml is set
// here, from package diagnostics's (a test keeps the two equal), with the fyneDo
// migration on.

// screenshotsEnv names a folder: the app then walks its own screens through the
// sandbox flow, saves a PNG of each, and quits (make screenshots).
const screenshotsEnv = "SHARDLIFT_SCREENSHOTS"

// handoverWait bounds how long a new Shardlift waits for a background one to pause
// its migrations and release the state file.
const handoverWait = 2 * time.Minute

func appMetadata() fyne.AppMetadata {
	return fyne.AppMetadata{
		ID: diagnostics.AppID, Name: diagnostics.AppName, Version: diagnostics.AppVersion, Build: diagnostics.AppBuild, Icon: assets.Icon,
		Migrations: map[string]bool{"fyneDo": true},
	}
}

// Run runs the desktop app until its window is closed and the migrations handed
// to the background have ended. It returns false when the app could not run or the
// screenshot tour failed, having said why on stderr.
func Run(ctx context.Context, stderr io.Writer) (ok bool) {
	if err := displayAvailable(); err != nil {
		fmt.Fprintf(stderr, "shardlift: %v.\n\nThe desktop app needs a graphical session. Without one, use the headless commands:\n"+
			"  shardlift validate --source URI --destination URI\n"+
			"  shardlift migrate --source URI --destination URI --state FILE [--api ADDR]\n"+
			"  shardlift sandbox\n"+
			"Run 'shardlift --help' for every command.\n", err)
		return false
	}
	secrets := &diagnostics.SecretSet{}
	ring := diagnostics.NewLogRing(diagnostics.LogRingSize, secrets)
	path, err := store.DefaultPath()
	var logs *diagnostics.MigrationLogs // the migrations' log files, next to the state file
	if err == nil {
		logs = diagnostics.NewMigrationLogs(diagnostics.LogDir(path), secrets)
	}
	log := diagnostics.NewAppLogger(ring, stderr, secrets, logs)

	var st *store.Store
	var handed []string
	if err == nil {
		st, handed, err = openStateFile(ctx, path, stderr)
	}
	if err != nil {
		log.Warn("the state file is not available", "err", err)
	}
	b := newBridge(ctx, bridgeConfig{
		Store: st, StoreErr: err, Keyring: store.NewSecrets(0), Log: log, Ring: ring, Secrets: secrets, Logs: logs,
	})
	defer func() {
		if err := b.Close(); err != nil {
			fmt.Fprintf(stderr, "shardlift: %v\n", err)
		}
	}()

	resumeHandedOver(ctx, b, handed)
	fyneapp.SetMetadata(appMetadata())
	fa := fyneapp.NewWithID(diagnostics.AppID)
	u := ui.New(fa, b)
	if tray, ok := fa.(desktop.App); ok && desktopHasTray() {
		u.UseSystemTray(tray)
	}
	win := u.Window()
	if err != nil {
		showStateFileProblem(win, path, err)
	}

	// A signal closes the window; the migrations then stop at their checkpoints.
	guiDone := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			fyne.Do(win.Close)
		case <-guiDone:
		}
	}()
	var tourErr chan error
	tourCtx, stopTour := context.WithCancel(ctx)
	defer stopTour()
	if dir := os.Getenv(screenshotsEnv); dir != "" {
		tourErr = make(chan error, 1)
		go func() { tourErr <- runTour(tourCtx, u, b, dir, stderr) }()
	}
	u.ShowAndRun()
	close(guiDone)

	ok = true
	if tourErr != nil {
		// The tour closes the window when it is over; a window closed otherwise
		// leaves it waiting on an event loop that has stopped.
		stopTour()
		select {
		case err := <-tourErr:
			if err != nil {
				fmt.Fprintf(stderr, "shardlift: screenshots: %v\n", err)
				ok = false
			}
		case <-time.After(5 * time.Second):
			fmt.Fprintln(stderr, "shardlift: screenshots: the window closed before the tour was over")
			ok = false
		}
	}
	keepSyncing(ctx, b, path, stderr)
	return ok
}

// displayAvailable reports why the app cannot open a window, if it cannot. Fyne
// draws through X11 on Linux (XWayland under Wayland), so DISPLAY must name a
// server that accepts connections: Fyne would crash rather than return an error.
// Windows and macOS always have their desktop.
func displayAvailable() error {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" {
		return nil
	}
	display := os.Getenv("DISPLAY")
	if display == "" {
		if os.Getenv("WAYLAND_DISPLAY") != "" {
			return errors.New("no X display: WAYLAND_DISPLAY is set but DISPLAY is not, and Shardlift draws through X11 (enable XWayland)")
		}
		return errors.New("no display: neither DISPLAY nor WAYLAND_DISPLAY is set")
	}
	host, num, ok := strings.Cut(display, ":")
	if !ok {
		return fmt.Errorf("DISPLAY=%q is not of the form [host]:number", display)
	}
	num, _, _ = strings.Cut(num, ".")
	n, err := strconv.Atoi(num)
	if err != nil {
		return fmt.Errorf("DISPLAY=%q is not of the form [host]:number", display)
	}
	var addrs [][2]string
	if host == "" || host == "unix" {
		sock := fmt.Sprintf("/tmp/.X11-unix/X%d", n)
		addrs = [][2]string{{"unix", sock}, {"unix", "@" + sock}}
	} else {
		addrs = [][2]string{{"tcp", net.JoinHostPort(host, strconv.Itoa(6000+n))}}
	}
	var last error
	for _, a := range addrs {
		c, err := net.DialTimeout(a[0], a[1], 2*time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		last = err
	}
	return fmt.Errorf("no X server answers on DISPLAY=%s (%v)", display, last)
}

// openStateFile opens the state file. When a background Shardlift holds it, that
// one is asked to pause its migrations and release it, so that this window shows
// them and resumes them: handed lists the ids of those that were syncing.
func openStateFile(ctx context.Context, path string, stderr io.Writer) (st *store.Store, handed []string, err error) {
	st, err = store.Open(path, store.Options{})
	if !errors.Is(err, store.ErrLocked) {
		return st, nil, err
	}
	fmt.Fprintln(stderr, "shardlift: another Shardlift holds the state file; asking it to hand its migrations over…")
	handed, herr := requestHandover(ctx, path)
	if herr != nil {
		var refused *handoverRefused
		if errors.As(herr, &refused) {
			return nil, nil, fmt.Errorf("%w %s: %w", store.ErrLocked, path, refused)
		}
		// The store's message names the CLI's --state flag; the app has none.
		return nil, nil, fmt.Errorf("%w %s: close it, then open Shardlift again", store.ErrLocked, path)
	}
	st, err = store.Open(path, store.Options{Timeout: 10 * time.Second})
	return st, handed, err
}

// resumeHandedOver resumes, in this process, the migrations a background Shardlift
// was syncing when it handed them over: the user asked them to keep syncing, so the
// pause of the handover must not last. One whose passwords the keyring cannot give
// back waits in the list for them.
func resumeHandedOver(ctx context.Context, b *bridge, ids []string) {
	for _, id := range ids {
		if _, err := b.Open(ctx, id, nil); err != nil {
			b.log.Warn("resume a migration taken over from the background: open it from the list", "migration", id, "err", err)
		}
	}
}

// showStateFileProblem says why no migration can be listed, started or resumed.
func showStateFileProblem(win fyne.Window, path string, err error) {
	title := "The state file cannot be used"
	var what string
	var refused *handoverRefused
	switch {
	case errors.As(err, &refused):
		title = "A migration syncs in the background"
		what = fmt.Sprintf("Another Shardlift uses the state file %s: %s.", path, refused.why)
	case errors.Is(err, store.ErrLocked):
		title = "Shardlift is already running"
		what = fmt.Sprintf("Another Shardlift is using the state file %s: it is open in another window, or it runs a migration "+
			"in the background and did not hand it over. Close it (or quit it), then open Shardlift again.", path)
	default:
		what = err.Error()
	}
	msg := widget.NewLabel(what + "\n\nMeanwhile this window can validate clusters and try the sandbox, " +
		"but it cannot list, start or resume migrations.")
	msg.Wrapping = fyne.TextWrapWord
	width := canvas.NewRectangle(color.Transparent)
	width.SetMinSize(fyne.NewSize(560, 0)) // wrapped text has no width of its own
	d := dialog.NewCustom(title, "OK", container.NewStack(width, msg), win)
	d.Show()
}

// keepSyncing runs headless while migrations handed to the background still sync:
// until they end, a signal arrives, or a new Shardlift takes over (it asks through
// a socket next to the state file, and opens the file once this process released it).
func keepSyncing(ctx context.Context, b *bridge, path string, stderr io.Writer) {
	bg := b.detachedRunning()
	if len(bg) == 0 {
		return
	}
	var names []string
	for _, l := range bg {
		names = append(names, l.name)
	}
	fmt.Fprintf(stderr, "shardlift: the window is closed; syncing continues in the background (process %d): %s.\n"+
		"Open Shardlift again to see it: the new window takes it over from this process. Ctrl-C or SIGTERM pauses it at its checkpoints.\n",
		os.Getpid(), strings.Join(names, "; "))
	b.log.Info("running in the background", "pid", os.Getpid(), "migrations", len(bg))
	requests := make(chan net.Conn)
	sock := handoverPath(path)
	_ = os.Remove(sock) // a socket left by a background Shardlift that crashed; this process holds the state file
	token, _, err := api.LoadOrCreateToken(handoverTokenPath(path))
	var ln net.Listener
	if err == nil {
		ln, err = net.Listen("unix", sock)
	}
	if err != nil {
		fmt.Fprintf(stderr, "shardlift: a new window cannot take the migrations over (%v): quit this process first to open it.\n", err)
	} else {
		stop := make(chan struct{})
		defer func() {
			close(stop)
			ln.Close()
		}()
		go acceptHandovers(ln, token, requests, stop)
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(stderr, "shardlift: stopping; the migrations pause at their checkpoints and resume when Shardlift is opened again.")
			return
		case <-b.changed:
			if len(b.detachedRunning()) == 0 {
				fmt.Fprintln(stderr, "shardlift: the migrations in the background have stopped; see their state in Shardlift.")
				return
			}
		case c := <-requests:
			if why := b.cannotHandOver(); why != "" {
				b.log.Info("a new Shardlift window asked for the migrations; refused", "why", why)
				_, _ = fmt.Fprintf(c, "refused %s\n", why)
				c.Close()
				continue
			}
			b.log.Info("a new Shardlift window takes the migrations over")
			var ids []string
			for _, l := range b.detachedRunning() {
				ids = append(ids, l.id)
			}
			if err := b.Close(); err != nil {
				b.log.Warn("release for the new window", "err", err)
			}
			// The new window resumes the migrations that were syncing.
			_, _ = c.Write([]byte(strings.TrimSpace("released "+strings.Join(ids, " ")) + "\n"))
			c.Close()
			return
		}
	}
}

// cannotHandOver says why the migrations cannot move to another process: the
// sandbox clusters of a sandbox migration live in this one, and would stop with it.
func (b *bridge) cannotHandOver() string {
	for _, l := range b.detachedRunning() {
		if l.sandbox {
			return fmt.Sprintf("the sandbox clusters of %s run inside the background Shardlift (process %d) and would stop with it: "+
				"wait until that migration ends, or stop that process (its migration pauses)", l.name, os.Getpid())
		}
	}
	return ""
}

// acceptHandovers passes on the connections that ask for a handover with the token,
// until stop is closed (and ln with it). The token (in an owner-only file next to
// the state file) keeps other users of the workstation from making this process
// release its migrations, as --api-token-file does for the API.
func acceptHandovers(ln net.Listener, token string, requests chan<- net.Conn, stop <-chan struct{}) {
	want := []byte("handover " + token)
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(handoverWait))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(line)), want) != 1 {
			c.Close()
			continue
		}
		select {
		case requests <- c:
		case <-stop:
			c.Close()
			return
		}
	}
}

// requestHandover asks the background Shardlift of the state file at statePath to
// release it, with the handover token, and waits until it has. It returns the ids of
// the migrations that were syncing there ("released id1 id2").
func requestHandover(ctx context.Context, statePath string) ([]string, error) {
	token, err := api.ReadToken(handoverTokenPath(statePath))
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "unix", handoverPath(statePath))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(handoverWait))
	if _, err := c.Write([]byte("handover " + token + "\n")); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("the background Shardlift did not release the state file: %w", err)
	}
	answer := strings.TrimSpace(line)
	if why, ok := strings.CutPrefix(answer, "refused "); ok {
		return nil, &handoverRefused{why: why}
	}
	fields := strings.Fields(answer)
	if len(fields) == 0 || fields[0] != "released" {
		return nil, fmt.Errorf("unexpected answer %q from the background Shardlift", answer)
	}
	return fields[1:], nil
}

// handoverRefused is a background Shardlift keeping its migrations, and why.
type handoverRefused struct{ why string }

func (e *handoverRefused) Error() string {
	return "the Shardlift syncing in the background keeps its migrations: " + e.why
}

// handoverPath is the socket a background Shardlift listens on, next to its state file.
func handoverPath(statePath string) string { return statePath + ".sock" }

// handoverTokenPath is the owner-only file of the token a handover request carries.
func handoverTokenPath(statePath string) string { return statePath + ".token" }
