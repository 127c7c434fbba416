package app

import (
	"context"
	"fmt"

	"github.com/shardlift/shardlift/engine/prepare"
	"github.com/shardlift/shardlift/engine/topology"
)

const clearMarkerDescription = `While a migration runs, its destination holds Shardlift's marker (the database
` + topology.MarkerDatabase + `), which refuses a second migration into it; the migration removes it
when it is done, cancelled or expires. This command clears a marker whose migration
is known dead: its Shardlift no longer runs (say, its workstation was lost) and its
state file will not be resumed.

Without --confirm it shows the destination and the marker, and changes nothing.
With --confirm set to the destination's clusterId, as shown, it clears that marker.
A migration whose marker was cleared puts it back when it resumes; meanwhile another
migration could start into the destination, so clear only a dead one's.

Exit status: 0 when there was no marker or it was cleared, 1 when it was not (no
confirmation, or another marker), 2 for bad usage.`

func runClearMarker(ctx context.Context, s streams, args []string) int {
	f := newFlags("clear-marker", "--destination URI [--confirm CLUSTERID] [flags]", clearMarkerDescription)
	destination := f.String("destination", "", "the destination cluster's mongos connection string `URI`")
	destinationCA := f.String("destination-ca", "", "PEM `FILE` of the CA that signed the destination's certificates (turns TLS on)")
	confirm := f.String("confirm", "", "the destination's `CLUSTERID`, as shown without it: clears the marker")
	timeout := f.Duration("timeout", topology.DefaultTimeout, "wait at most `D` for the connection and each command")
	if code, ok := f.parse(s, args); !ok {
		return code
	}
	switch {
	case f.NArg() > 0:
		return usageError(s, f.prog, "unexpected argument %q", f.Arg(0))
	case *destination == "":
		return usageError(s, f.prog, "--destination is required")
	case *timeout <= 0:
		return usageError(s, f.prog, "--timeout %v: the timeout must be positive", *timeout)
	}
	dst, err := endpointFor("--destination", *destination, *destinationCA, envDestinationPassword, *timeout)
	if err != nil {
		return usageError(s, f.prog, "%v", err)
	}
	secrets := endpointSecrets(dst)
	out := &redactingWriter{w: s.out, secrets: secrets}
	errw := &redactingWriter{w: s.err, secrets: secrets}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(errw, f.prog+": "+format+"\n", a...)
		return exitFail
	}

	client, err := topology.Connect(ctx, dst)
	if err != nil {
		return fail("destination %s: %v", dst, err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	id, err := topology.IdentityOf(ctx, client, dst)
	if err != nil {
		return fail("destination %s: %v", dst, err)
	}
	m, err := topology.ReadMarker(ctx, client)
	if err != nil {
		return fail("destination %s: %v", dst, err)
	}
	fmt.Fprintf(out, "destination: %s is %s\n", dst, id)
	if m == nil {
		fmt.Fprintln(out, "marker: none; no migration holds this destination, nothing to clear")
		return exitOK
	}
	fmt.Fprintf(out, "marker: %s\n", m)
	if *confirm == "" {
		return fail("nothing cleared. Clear the marker only if that migration is dead: its Shardlift no longer runs (on %s) and will not be resumed. To clear it, run again with --confirm %s", m.Workstation, id.ClusterID.Hex())
	}
	gone, err := prepare.ClearMarker(ctx, client, id, *confirm, m.MigrationID)
	switch {
	case err != nil:
		return fail("%v", err)
	case gone:
		fmt.Fprintln(out, "cleared: the marker was already gone")
	default:
		fmt.Fprintf(out, "cleared: the marker of migration %s is removed from %s; a new migration may start into it\n", m.MigrationID, id)
	}
	return exitOK
}
