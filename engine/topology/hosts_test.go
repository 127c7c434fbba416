package topology

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseHostStringReadsReplicaSetAndBareForms(t *testing.T) {
	for _, tc := range []struct {
		in      string
		setName string
		hosts   []string
	}{
		{"rs0/h1:27017,h2:27018", "rs0", []string{"h1:27017", "h2:27018"}},
		{"shard-a/10.0.0.1:27018", "shard-a", []string{"10.0.0.1:27018"}},
		{"cfg/[::1]:27019,[fe80::1]:27019", "cfg", []string{"[::1]:27019", "[fe80::1]:27019"}},
		{"c1:27019,c2:27019,c3:27019", "", []string{"c1:27019", "c2:27019", "c3:27019"}},
		{"standalone.example.com:27018", "", []string{"standalone.example.com:27018"}},
	} {
		setName, hosts, err := ParseHostString(tc.in)
		if err != nil {
			t.Errorf("ParseHostString(%q): %v", tc.in, err)
			continue
		}
		if setName != tc.setName || !reflect.DeepEqual(hosts, tc.hosts) {
			t.Errorf("ParseHostString(%q) = %q, %q; want %q, %q", tc.in, setName, hosts, tc.setName, tc.hosts)
		}
	}
}

func TestParseHostStringRejectsMalformedStringsNamingThem(t *testing.T) {
	for _, in := range []string{
		"",
		"rs0/",
		"/h1:1",
		"rs0/h1",           // no port
		"rs0/h1:0",         // port out of range
		"rs0/h1:65536",     // port out of range
		"rs0/h1:27017,",    // empty host
		"rs0/h1:abc",       // port not a number
		"rs0/h1:1/h2:2",    // two slashes
		"rs 0/h1:1",        // space in the set name
		"rs0/h1:1, h2:2",   // space before a host
		"rs0/:27017",       // no host name
		"rs0/h1:1,h1:1",    // duplicate
		"rs0/h1:27017:123", // not host:port
	} {
		_, _, err := ParseHostString(in)
		if err == nil {
			t.Errorf("ParseHostString(%q) accepted a malformed host string", in)
			continue
		}
		if !errors.Is(err, ErrMetadata) {
			t.Errorf("ParseHostString(%q): %v does not match ErrMetadata", in, err)
		}
		if !strings.Contains(err.Error(), `"`+in+`"`) {
			t.Errorf("ParseHostString(%q): error %q does not name the string", in, err)
		}
	}
}
