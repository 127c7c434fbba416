package topology

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ErrMetadata is matched (errors.Is) by every *MetadataError.
var ErrMetadata = errors.New("the cluster's sharding metadata is malformed")

// MetadataError is sharding metadata Shardlift cannot use as it is: a host string
// that does not parse, a chunk without a bound, a document of the wrong shape. A
// migration planned on it would be wrong, so discovery reports it instead of guessing.
type MetadataError struct {
	// Where names the document, such as `config.shards "shard0"` or `config.chunks of db.c`.
	Where string
	// Reason says what is wrong.
	Reason string
}

func (e *MetadataError) Error() string {
	return fmt.Sprintf("%s: %s (check the cluster's sharding metadata with the mongo shell; Shardlift cannot migrate it as it is)", e.Where, e.Reason)
}

// Is makes errors.Is(err, ErrMetadata) true.
func (e *MetadataError) Is(target error) bool { return target == ErrMetadata }

// ParseHostString parses a shard or config server connection string as listShards,
// getShardMap and serverStatus report it: "rsName/host1:port1,host2:port2" for a
// replica set, or a bare "host1:port1,host2:port2" (a standalone shard, or legacy
// mirrored config servers). Every host must be host:port with a port in 1..65535;
// anything else is a *MetadataError naming the string.
func ParseHostString(s string) (setName string, hosts []string, err error) {
	fail := func(reason string) (string, []string, error) {
		return "", nil, &MetadataError{Where: fmt.Sprintf("host string %q", s), Reason: reason}
	}
	if s == "" {
		return fail("it is empty")
	}
	list := s
	if slash := strings.IndexByte(s, '/'); slash >= 0 {
		setName, list = s[:slash], s[slash+1:]
		if setName == "" {
			return fail("the replica set name before / is empty")
		}
		if strings.ContainsAny(setName, ", ") {
			return fail(fmt.Sprintf("replica set name %q contains a comma or a space", setName))
		}
		if strings.IndexByte(list, '/') >= 0 {
			return fail("it has more than one /")
		}
	}
	if list == "" {
		return fail("it lists no hosts")
	}
	seen := map[string]bool{}
	for _, h := range strings.Split(list, ",") {
		if err := checkHostPort(h); err != nil {
			return fail(fmt.Sprintf("host %q: %s", h, err))
		}
		if seen[h] {
			return fail(fmt.Sprintf("host %q is listed twice", h))
		}
		seen[h] = true
		hosts = append(hosts, h)
	}
	return setName, hosts, nil
}

// checkHostPort accepts host:port (or [ipv6]:port) with a valid port.
func checkHostPort(h string) error {
	if h == "" {
		return errors.New("empty host")
	}
	if strings.ContainsAny(h, " \t") {
		return errors.New("contains a space")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		return errors.New("not host:port")
	}
	if host == "" {
		return errors.New("no host name before the port")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number in 1..65535", port)
	}
	return nil
}
