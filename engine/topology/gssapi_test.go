//go:build !gssapi

package topology

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/sandbox/wire"
)

// Without the gssapi build tag the driver cannot speak Kerberos: the failure says
// how to get a build that does, instead of "authentication failed".
func TestGSSAPIWithoutTheBuildTagSaysHowToBuildIt(t *testing.T) {
	t.Parallel()
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{})
	e := Endpoint{URI: "mongodb://dba%40EXAMPLE.COM@" + s.Addr() + "/?authMechanism=GSSAPI", Timeout: shortTimeout}
	_, err := Connect(context.Background(), e)
	expectKind(t, err, ErrMechanismUnavailable, "")
	if !strings.Contains(Fix(err), "-tags gssapi") {
		t.Errorf("fix %q does not say how to build with Kerberos", Fix(err))
	}
}

// A binary without Kerberos does not offer it in the forms.
func TestGSSAPIIsNotOfferedWithoutTheBuildTag(t *testing.T) {
	t.Parallel()
	offered := OfferedMechanisms()
	if slices.Contains(offered, MechanismGSSAPI) || len(offered) != len(Mechanisms)-1 {
		t.Fatalf("offered %v", offered)
	}
}
