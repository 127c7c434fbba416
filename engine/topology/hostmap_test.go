package topology

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/sandbox/wire"
)

func TestParseHostMapReadsTheDocumentedFormat(t *testing.T) {
	m, err := ParseHostMap(strings.NewReader(`
# shards of the production cluster, through the bastion's tunnels
rs0-a.prod.svc.cluster.local:27018=127.0.0.1:37018
  RS0-B.prod.svc.cluster.local:27018   10.0.0.12:27018
`))
	if err != nil {
		t.Fatal(err)
	}
	want := HostMap{"rs0-a.prod.svc.cluster.local:27018": "127.0.0.1:37018", "rs0-b.prod.svc.cluster.local:27018": "10.0.0.12:27018"}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("map %v, want %v", m, want)
	}
	if got := m.Reachable("rs0-b.PROD.svc.cluster.local:27018"); got != "10.0.0.12:27018" {
		t.Errorf("Reachable ignores case badly: %s", got)
	}
	if got := m.Reachable("mongos:27017"); got != "mongos:27017" {
		t.Errorf("an unmapped host is dialed at %s", got)
	}
	for _, bad := range []string{"a:1", "a:1=b", "a=b:2", "a:1=b:2 c:3", "a:1=b:2\na:1=c:3"} {
		if _, err := ParseHostMap(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// A member named by a name that does not resolve here is reached through the host
// map, with TLS checked against the cluster's own name; without the map the error
// names the host and suggests the map.
func TestHostMapReachesMembersByTheirClusterNames(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	s := startNode(t, fakeNode{role: "mongos"}, wire.Config{TLS: ca.serverTLSFor(t, []string{"rs0-a.cluster.invalid"}, nil)})
	const internal = "rs0-a.cluster.invalid:27018"
	e := Endpoint{Hosts: []string{"127.0.0.1:1"}, CAPEM: ca.pem, Timeout: shortTimeout}
	member := e.ForHosts([]string{internal}, "")

	_, err := Connect(context.Background(), member)
	expectKind(t, err, ErrDNS, internal)
	if !strings.Contains(Fix(err), "--map-host") {
		t.Errorf("the fix does not suggest the host map: %s", Fix(err))
	}

	e.HostMap = HostMap{internal: s.Addr()}
	client, err := Connect(context.Background(), e.ForHosts([]string{internal}, ""))
	if err != nil {
		t.Fatalf("through the host map: %v", err)
	}
	disconnect(context.Background(), client, time.Second)

	// A mapping to a dead address says which address the host map sent it to.
	e.HostMap = HostMap{internal: freeAddr(t)}
	_, err = Connect(context.Background(), e.ForHosts([]string{internal}, ""))
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), internal) || !strings.Contains(err.Error(), e.HostMap[internal]) {
		t.Errorf("mapped to a closed port: %v; want refused naming both addresses", err)
	}
}
