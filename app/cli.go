// Package app is Shardlift's entry point and its command line: main calls Run, which
// starts the desktop app (package gui) without arguments, or runs a command.
//
//	main ─► Run(args) ─► signal context (SIGINT/SIGTERM) ─┬─ no arguments: gui.Run (the desktop app)
//	                                                       └─ commands table ─► the command's own
//	                                                          FlagSet ─► the command's run ─► exit code
//
//	migrate ─► engine.Migration ─┬─ checkpoints (the state file)
//	                             ├─ diagnostics (its log file, secrets masked)
//	                             └─ api.NewHandler (--api) ◄── status, cutover, done, ... (apiclient.go)
//	validate, replay, sandbox, clear-marker, version: one file each (*cmd.go)
//
// The command line and Run share one package because the command table is the
// dispatch: what each command needs of the rest lives in packages of its own (api,
// checkpoints, diagnostics, gui), which never import app.
//
// Exit codes: 0 success, 1 failure, 2 bad usage (unknown command or flag, missing or
// invalid value).
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/shardlift/shardlift/app/gui"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// streams are where a command writes: results (what scripts read) on out, messages for
// people on err.
type streams struct {
	out, err io.Writer
}

// command is one subcommand. A new subcommand is one more entry in commands.
type command struct {
	name    string
	summary string // one line, shown in the command list
	run     func(ctx context.Context, s streams, args []string) int
}

// commands lists the subcommands, in the order the help shows them.
var commands = []command{
	{name: "validate", summary: "run the pre-migration checks on a source and a destination cluster", run: runValidate},
	{name: "replay", summary: "apply a file of oplog entries to a destination (a captured oplog into staging)", run: runReplay},
	{name: "sandbox", summary: "run local source and destination sandbox clusters (a test and demo tool)", run: runSandbox},
	{name: "migrate", summary: "migrate a sharded cluster into another, headless (resumes from --state)", run: runMigrate},
	{name: "clear-marker", summary: "clear the marker a dead migration left on its destination (shows it first)", run: runClearMarker},
	clientCommand("status"),
	clientCommand("cutover"),
	clientCommand("done"),
	clientCommand("cancel"),
	clientCommand("extend"),
	clientCommand("restart-shard"),
	clientCommand("verify"),
	{name: "version", summary: "print Shardlift's version, the Go version and the commit it was built from", run: runVersion},
}

// Run runs the command line args (without the program name) and returns the exit code.
// SIGINT and SIGTERM cancel the command's context; a second signal kills the process.
func Run(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Once the first signal has cancelled ctx, restore the default handling so that a
	// second one stops a shutdown that hangs.
	go func() {
		<-ctx.Done()
		stop()
	}()
	if len(args) == 0 {
		if !gui.Run(ctx, os.Stderr) {
			return exitFail
		}
		return exitOK
	}
	attachConsole()
	return run(ctx, streams{out: os.Stdout, err: os.Stderr}, args)
}

func run(ctx context.Context, s streams, args []string) int {
	if len(args) == 0 {
		// Run starts the desktop app without arguments; the command table alone
		// lists the commands.
		printHelp(s.out)
		return exitOK
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		printHelp(s.out)
		return exitOK
	case "-version", "--version":
		return runVersion(ctx, s, args[1:])
	case "help":
		if len(args) == 1 {
			printHelp(s.out)
			return exitOK
		}
		if cmd, ok := lookup(args[1]); ok {
			return cmd.run(ctx, s, []string{"--help"})
		}
		return usageError(s, "shardlift", "unknown command %q", args[1])
	}
	if strings.HasPrefix(name, "-") {
		return usageError(s, "shardlift", "unknown flag %s (flags go after the command)", name)
	}
	cmd, ok := lookup(name)
	if !ok {
		return usageError(s, "shardlift", "unknown command %q", name)
	}
	return cmd.run(ctx, s, args[1:])
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func printHelp(w io.Writer) {
	fmt.Fprint(w, "Shardlift live-migrates a MongoDB sharded cluster into another sharded cluster.\n\n")
	fmt.Fprint(w, "Usage:\n  shardlift COMMAND [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprint(w, "\nRun 'shardlift COMMAND --help' for a command's flags.\n")
}

// usageError reports bad usage of prog ("shardlift" or "shardlift CMD") and returns exitUsage.
func usageError(s streams, prog, format string, a ...any) int {
	fmt.Fprintf(s.err, "%s: %s\nRun '%s --help' for usage.\n", prog, fmt.Sprintf(format, a...), prog)
	return exitUsage
}

// flags is a subcommand's flag set and the text its --help shows.
type flags struct {
	*flag.FlagSet
	prog        string // "shardlift CMD"
	synopsis    string // after prog on the usage line, such as "[flags]"
	description string
}

// newFlags makes the flag set of subcommand name. Flags are written --name in the help;
// the flag package accepts -name too.
func newFlags(name, synopsis, description string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flags{FlagSet: fs, prog: "shardlift " + name, synopsis: synopsis, description: description}
}

// parse parses args. When it returns false, the command is over with the returned code:
// --help printed the usage (0), or the arguments were wrong (2).
func (f *flags) parse(s streams, args []string) (int, bool) {
	err := f.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		f.printUsage(s.out)
		return exitOK, false
	}
	if err != nil {
		return usageError(s, f.prog, "%v", err), false
	}
	return exitOK, true
}

func (f *flags) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s %s\n\n%s\n\nFlags:\n", f.prog, f.synopsis, f.description)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	f.VisitAll(func(fl *flag.Flag) {
		arg, usage := flag.UnquoteUsage(fl)
		if arg == "value" {
			arg = ""
		}
		if fl.DefValue != "" && fl.DefValue != "0" && fl.DefValue != "false" {
			usage += fmt.Sprintf(" (default %s)", fl.DefValue)
		}
		fmt.Fprintf(tw, "  --%s %s\t%s\n", fl.Name, arg, usage)
	})
	tw.Flush()
}
