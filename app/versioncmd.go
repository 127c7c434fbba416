package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/shardlift/shardlift/app/diagnostics"
)

const versionDescription = `Prints Shardlift's version, as the desktop app shows it, the Go version it was built
with and, for a build from a git checkout, its commit. 'shardlift --version' does the same.`

func runVersion(_ context.Context, s streams, args []string) int {
	f := newFlags("version", "", versionDescription)
	if code, ok := f.parse(s, args); !ok {
		return code
	}
	if f.NArg() > 0 {
		return usageError(s, f.prog, "unexpected argument %q", f.Arg(0))
	}
	fmt.Fprint(s.out, versionText(diagnostics.VersionInfo()))
	return exitOK
}

// versionText is the version for people: "Shardlift 0.1.0 (build 1)", the Go version
// and platform, and the commit when the build has one.
func versionText(v diagnostics.Version) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s (build %d)\n%s %s/%s\n", v.App, v.Version, v.Build, v.Go, v.OS, v.Arch)
	if v.Revision != "" {
		var about []string
		if v.RevisionAt != "" {
			about = append(about, v.RevisionAt)
		}
		if v.Modified == "true" {
			about = append(about, "with uncommitted changes")
		}
		fmt.Fprintf(&b, "commit %s", v.Revision)
		if len(about) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(about, ", "))
		}
		b.WriteString("\n")
	}
	return b.String()
}
