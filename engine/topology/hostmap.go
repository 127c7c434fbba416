package topology

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
)

// HostMap maps the host:port a cluster names its members by (listShards, hello,
// the config server string) to the host:port this workstation reaches them at: a
// cluster behind its own DNS (private names, Kubernetes services, cloud private
// addresses) reached through a VPN, a tunnel or a load balancer's port.
//
// Shardlift keeps the cluster's own names everywhere (replica set discovery, TLS
// server names, messages) and only dials the mapped address.
type HostMap map[string]string

// HostMapFormat is how ParseHostMap reads a host map, for help texts.
const HostMapFormat = `one mapping per line, INTERNAL_HOST:PORT=REACHABLE_HOST:PORT (or separated by spaces); blank lines and lines starting with # are ignored`

// ParseHostMap reads a host map in HostMapFormat; a line that is not a mapping is an
// error naming it.
func ParseHostMap(r io.Reader) (HostMap, error) {
	m := HostMap{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := m.Add(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	return m, sc.Err()
}

// Add adds one mapping, INTERNAL:PORT=REACHABLE:PORT (or the two separated by spaces).
func (m HostMap) Add(mapping string) error {
	from, to, ok := strings.Cut(mapping, "=")
	if !ok {
		if f := strings.Fields(mapping); len(f) == 2 {
			from, to, ok = f[0], f[1], true
		}
	}
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	if !ok || from == "" || to == "" {
		return fmt.Errorf("%q is not INTERNAL_HOST:PORT=REACHABLE_HOST:PORT", mapping)
	}
	for _, h := range []string{from, to} {
		if err := checkHostPort(h); err != nil {
			return fmt.Errorf("%q: %s: %v (write host:port)", mapping, h, err)
		}
	}
	key := hostKey(from)
	if prev, dup := m[key]; dup && prev != to {
		return fmt.Errorf("%s is mapped twice, to %s and %s", from, prev, to)
	}
	m[key] = to
	return nil
}

// Reachable is where to dial host: its mapping, else host itself.
func (m HostMap) Reachable(host string) string {
	if to, ok := m[hostKey(withPort(host))]; ok {
		return to
	}
	return host
}

// hostKey compares host names as DNS does, without case.
func hostKey(hostPort string) string {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return strings.ToLower(hostPort)
	}
	return net.JoinHostPort(strings.ToLower(host), port)
}

// mappingDialer dials the mapped address of each server the driver connects to.
type mappingDialer struct {
	hosts HostMap
	d     net.Dialer
}

func (d *mappingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return d.d.DialContext(ctx, network, d.hosts.Reachable(address))
}
