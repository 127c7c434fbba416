package topology

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMaskURIHidesThePassword(t *testing.T) {
	for in, want := range map[string]string{
		"mongodb://u:s3cret@h1:1,h2:2/db?tls=true":   "mongodb://u:****@h1:1,h2:2/db?tls=true",
		"mongodb+srv://u:p%40ss@cluster.example.net": "mongodb+srv://u:****@cluster.example.net",
		"mongodb://u@h1:1":                           "mongodb://u@h1:1",
		"mongodb://h1:1/?appName=x":                  "mongodb://h1:1/?appName=x",
		"mongodb://u:pa@ss@h:1":                      "mongodb://u:****@h:1", // malformed: masked too much, never too little
	} {
		if got := MaskURI(in); got != want {
			t.Errorf("MaskURI(%q) = %q, want %q", in, got, want)
		}
	}
	e := Endpoint{URI: "mongodb://u:s3cret@h1:1"}
	if strings.Contains(e.String(), "s3cret") {
		t.Errorf("Endpoint.String() = %q shows the password", e)
	}
}

func TestClientOptionsFromHostsCarryCredentialsTLSAndTimeouts(t *testing.T) {
	ca := newCA(t, "ca")
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	e := Endpoint{Hosts: []string{"m1:27017", "m2:27017"}, Username: "migrator", Password: "pw", CAFile: path, Timeout: 4 * time.Second}
	opts, err := e.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(opts.Hosts, e.Hosts) {
		t.Errorf("hosts = %v", opts.Hosts)
	}
	if opts.Auth == nil || opts.Auth.Username != "migrator" || opts.Auth.Password != "pw" || opts.Auth.AuthSource != "admin" {
		t.Errorf("auth = %+v; want migrator on admin", opts.Auth)
	}
	if opts.TLSConfig == nil || opts.TLSConfig.RootCAs == nil {
		t.Error("a CA file did not turn TLS on with that CA")
	}
	if *opts.ServerSelectionTimeout != 4*time.Second || *opts.ConnectTimeout != 2*time.Second {
		t.Errorf("timeouts: selection %v connect %v; want 4s and 2s", *opts.ServerSelectionTimeout, *opts.ConnectTimeout)
	}
	if opts.Direct != nil && *opts.Direct {
		t.Error("two mongos hosts made a direct connection")
	}

	def, err := Endpoint{Hosts: []string{"m1:27017"}}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if *def.ServerSelectionTimeout != DefaultTimeout || def.Auth != nil || def.TLSConfig != nil || def.Direct == nil || !*def.Direct {
		t.Errorf("defaults: selection %v auth %v tls %v direct %v", *def.ServerSelectionTimeout, def.Auth, def.TLSConfig, def.Direct)
	}
}

func TestFieldsOverrideTheURIAndForHostsKeepsThem(t *testing.T) {
	ca := newCA(t, "ca")
	e := Endpoint{URI: "mongodb://migrator@router:27017/?tls=true&authSource=users", Password: "from-env", CAPEM: ca.pem}
	opts, err := e.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if opts.Auth.Username != "migrator" || opts.Auth.Password != "from-env" || opts.Auth.AuthSource != "users" {
		t.Errorf("auth = %+v; want the URI's user and authSource with the given password", opts.Auth)
	}
	if opts.TLSConfig == nil || opts.TLSConfig.RootCAs == nil {
		t.Error("TLS from the URI lost the pasted CA")
	}

	member := e.ForHosts([]string{"shard0-a:27018"}, "")
	mopts, err := member.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(mopts.Hosts, []string{"shard0-a:27018"}) || mopts.Direct == nil || !*mopts.Direct {
		t.Errorf("member hosts %v direct %v; want a direct connection to shard0-a", mopts.Hosts, mopts.Direct)
	}
	if mopts.Auth == nil || mopts.Auth.Username != "migrator" || mopts.Auth.Password != "from-env" || mopts.Auth.AuthSource != "users" {
		t.Errorf("member auth = %+v; want the same credentials", mopts.Auth)
	}
	if mopts.TLSConfig == nil || mopts.TLSConfig.RootCAs == nil {
		t.Error("member lost TLS or the CA")
	}

	withPassword := Endpoint{URI: "mongodb://u:in-uri@router:27017"}.ForHosts([]string{"a:1", "b:2"}, "rs1")
	wopts, err := withPassword.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if wopts.Auth.Password != "in-uri" || *wopts.ReplicaSet != "rs1" {
		t.Errorf("password %q replica set %v; want the URI's password and rs1", wopts.Auth.Password, wopts.ReplicaSet)
	}
}

func TestBadURIIsReportedWithoutItsPassword(t *testing.T) {
	_, err := Endpoint{URI: "mongodb://u:topsecret@h:1/?connectTimeoutMS=soon"}.ClientOptions()
	if !errors.Is(err, ErrInvalidURI) {
		t.Fatalf("error %v; want ErrInvalidURI", err)
	}
	if strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %q shows the password", err)
	}
	if _, err := (Endpoint{URI: "mongodb://h:1", Hosts: []string{"h:1"}}).ClientOptions(); !errors.Is(err, ErrInvalidURI) {
		t.Errorf("URI and hosts together: %v; want ErrInvalidURI", err)
	}
	if _, err := (Endpoint{}).ClientOptions(); !errors.Is(err, ErrInvalidURI) {
		t.Errorf("empty endpoint: %v; want ErrInvalidURI", err)
	}
}

// DBAs find Shardlift's connections in the servers' logs and currentOp by its appName;
// one the user wrote in the connection string is kept.
func TestAppNameIsShardliftUnlessTheURIGivesOne(t *testing.T) {
	for uri, want := range map[string]string{
		"mongodb://h1:1/":                    "shardlift",
		"mongodb://h1:1/?appName=nightly-mv": "nightly-mv",
	} {
		opts, err := Endpoint{URI: uri}.ClientOptions()
		if err != nil {
			t.Fatal(err)
		}
		if opts.AppName == nil || *opts.AppName != want {
			t.Errorf("%s: appName %v, want %q", uri, opts.AppName, want)
		}
	}
	opts, err := Endpoint{Hosts: []string{"h1:1"}}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	if opts.AppName == nil || *opts.AppName != "shardlift" {
		t.Errorf("host list: appName %v, want shardlift", opts.AppName)
	}
}
