package topology

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ParseHostList parses "host1:port1, host2:port2"; a host without a port is on 27017.
func ParseHostList(s string) ([]string, error) {
	var out []string
	for _, h := range strings.Split(s, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, fmt.Errorf("%q has an empty entry: separate the mongos hosts with single commas", s)
		}
		if strings.ContainsAny(h, "@/? \t") {
			return nil, fmt.Errorf("%q is not host:port: enter each mongos as host:port (the user and password go in their own fields)", MaskHostUser(h))
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			if strings.Count(h, ":") > 0 && !strings.HasPrefix(h, "[") {
				return nil, fmt.Errorf("%q is not host:port: %v", h, err)
			}
			host, port = strings.Trim(h, "[]"), "27017"
		}
		if host == "" {
			return nil, fmt.Errorf("%q has no host name before the port", h)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: the port must be a number from 1 to 65535", h)
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out, nil
}

// MaskHostUser hides what precedes an '@' in a host entry: it may be user:password.
func MaskHostUser(h string) string {
	if i := strings.LastIndex(h, "@"); i >= 0 {
		return "****" + h[i:]
	}
	return h
}
