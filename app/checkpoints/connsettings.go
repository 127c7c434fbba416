package checkpoints

import (
	"slices"
	"strings"
	"time"

	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/store"
)

// ConnSettings are what the state file keeps of an endpoint: hosts, user, TLS, the
// connection string without its secrets and the host map (which a GUI resuming this
// record connects with), never the password.
func ConnSettings(e topology.Endpoint, caFile string) store.ConnSettings {
	list := e.Hosts // a host list; else the connection string's hosts
	if e.URI != "" {
		rest := e.URI[strings.Index(e.URI, "://")+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			rest = rest[at+1:]
		}
		if end := strings.IndexAny(rest, "/?"); end >= 0 {
			rest = rest[:end]
		}
		list = strings.Split(rest, ",")
	}
	var hosts []string
	for _, h := range list {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	user, _ := topology.URIUser(e.URI)
	q := strings.ToLower(e.URI)
	tls := strings.HasPrefix(q, "mongodb+srv://") || strings.Contains(q, "tls=true") || strings.Contains(q, "ssl=true") || caFile != ""
	return store.ConnSettings{Hosts: hosts, Username: user, TLS: tls, CAFile: caFile, URI: store.RedactURI(e.URI), HostMap: e.HostMap,
		ReadPreference: e.ReadPreference, ShardReadPreferences: e.ShardReadPreferences}
}

// EndpointOf rebuilds an endpoint from what the state file kept (the
// mechanism, the client certificate's path and the host map included) and the
// password, to resume a migration: the connection string as entered (without its
// secrets) when there is one, so authSource, replicaSet, an SRV name and every other
// option apply again; else the host list. Records written before the connection
// string was kept have only the host list, and resume as they always did.
func EndpointOf(s store.ConnSettings, password string, timeout time.Duration) topology.Endpoint {
	e := topology.Endpoint{Username: s.Username, Password: password, TLS: s.TLS, CAFile: s.CAFile, Timeout: timeout,
		AuthMechanism: s.AuthMechanism, AuthMechanismProperties: s.AuthMechanismProperties, CertificateKeyFile: s.CertificateKeyFile, ReadPreference: s.ReadPreference,
		ShardReadPreferences: s.ShardReadPreferences}
	if len(s.HostMap) > 0 {
		e.HostMap = topology.HostMap(s.HostMap)
	}
	if s.URI != "" {
		e.URI = s.URI
	} else {
		e.Hosts = s.Hosts
	}
	if s.CAPEM != "" {
		e.CAPEM = []byte(s.CAPEM)
	}
	return e
}
