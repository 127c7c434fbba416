package engine

import (
	"os"
	"testing"
	"time"

	"github.com/shardlift/shardlift/sandbox"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// Migrations to done, verified, with the users of real deployments on both sides: an
// X.509 user (client certificates required on every router, config server and shard
// member) and a PLAIN (LDAP) user on $external. Shardlift reaches each shard directly
// with the same credential as the router. With SHARDLIFT_TEST_SOURCE_URI and
// SHARDLIFT_TEST_DESTINATION_URI set, these run against those clusters, whose URIs
// carry their own mechanism and certificates.
func TestSandboxMigrationsWithExternalUsersEndDoneAndVerified(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape func(side string, o *sandbox.Options)
	}{
		{"X.509 on both sides", func(_ string, o *sandbox.Options) { o.X509 = true }},
		{"PLAIN on $external", func(_ string, o *sandbox.Options) {
			o.Plain = &wire.Credentials{User: "ldap-migrator", Password: "Ld@p-Passw0rd"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shape := tc.shape
			if os.Getenv(sourceEnv) != "" && os.Getenv(destinationEnv) != "" {
				shape = nil // the real clusters' URIs say how to authenticate
			}
			e := startE2EShaped(t, 1500, "", shape)
			e.startLoad(50)
			m := e.migration(newMemCheckpoints("e2e-auth"))
			r := run(m, StartOptions{WipeDestination: true})
			await(t, m, 3*time.Minute, "ready", isState(Ready))
			s := e.finish(m)
			if err := <-r.done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			if v := s.Verification; s.State != Done || !v.OK() || v.Ranges == 0 || v.Matched != v.Ranges {
				t.Fatalf("state %s verification %+v", s.State, v)
			}
			t.Logf("done and verified: %d documents compared independently", e.sameData())
		})
	}
}
