package gui

import (
	"context"
	"errors"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
	"github.com/shardlift/shardlift/store"
	"github.com/shardlift/shardlift/ui"
)

// The form's mechanism, properties, client certificate and host map reach the
// endpoint and the state file's settings (the key password only the keyring), and a
// resumed endpoint connects with all of them again.
func TestFormAuthenticationAndHostMapReachTheEndpointAndTheStateFile(t *testing.T) {
	const keyPassword = "k3y-Pw&"
	certFile := writeEncryptedClientCert(t, keyPassword)
	hostMap := map[string]string{"s0.cluster.internal:27018": "10.0.0.5:27018"}
	c := ui.Connection{Hosts: "db1.example:27017", Username: "dba@EXAMPLE.COM", Password: "pw", AuthMechanism: topology.MechanismGSSAPI,
		AuthMechanismProperties: "SERVICE_NAME:mongo", CertificateKeyFile: certFile, CertificateKeyPassword: keyPassword, HostMap: hostMap}
	got, err := connOf(ui.Source, c, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e, set := got.endpoint, got.settings
	if e.AuthMechanism != topology.MechanismGSSAPI || e.AuthMechanismProperties["SERVICE_NAME"] != "mongo" || e.CertificateKeyFile != certFile ||
		e.CertificateKeyPassword != keyPassword || e.HostMap.Reachable("s0.cluster.internal:27018") != "10.0.0.5:27018" || !e.TLS {
		t.Fatalf("endpoint %+v", e)
	}
	if got.keyPassword != keyPassword {
		t.Fatalf("the key password for the keyring: %q", got.keyPassword)
	}
	if set.AuthMechanism != topology.MechanismGSSAPI || set.CertificateKeyFile != certFile || !reflect.DeepEqual(set.HostMap, hostMap) || !set.TLS {
		t.Fatalf("settings for the state file %+v", set)
	}
	resumed := checkpoints.EndpointOf(set, "pw", time.Second)
	if resumed.AuthMechanism != topology.MechanismGSSAPI || resumed.AuthMechanismProperties["SERVICE_NAME"] != "mongo" ||
		resumed.HostMap.Reachable("s0.cluster.internal:27018") != "10.0.0.5:27018" || resumed.CertificateKeyFile != certFile {
		t.Fatalf("resumed endpoint %+v", resumed)
	}
	if _, err := resumed.ClientOptions(); !errors.Is(err, topology.ErrClientKeyPassword) {
		t.Fatalf("resumed without the key password: %v, want %v", err, topology.ErrClientKeyPassword)
	}
	resumed.CertificateKeyPassword = keyPassword
	if _, err := resumed.ClientOptions(); err != nil {
		t.Fatalf("resumed with the key password: %v", err)
	}
}

// What the form cannot take says which field and what to do.
func TestFormAuthenticationMistakesPointAtTheirField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		c     ui.Connection
		field ui.Field
		says  string
	}{
		{"session token", ui.Connection{Hosts: "db1:27017", AuthMechanism: topology.MechanismAWS, AuthMechanismProperties: "AWS_SESSION_TOKEN:FQoGZXIvYXdzE"},
			ui.FieldMechanismProperties, "environment variable"},
		{"properties", ui.Connection{Hosts: "db1:27017", AuthMechanism: topology.MechanismGSSAPI, AuthMechanismProperties: "SERVICE_NAME"},
			ui.FieldMechanismProperties, "NAME:VALUE"},
		{"host map", ui.Connection{Hosts: "db1:27017", HostMap: map[string]string{"s0.internal:27018": "10.0.0.5"}},
			ui.FieldHostMap, "host:port"},
		{"certificate", ui.Connection{Hosts: "db1:27017", CertificateKeyFile: "/nonexistent/client.pem"},
			ui.FieldClientCert, "/nonexistent/client.pem"},
		{"key password", ui.Connection{Hosts: "db1:27017", CertificateKeyFile: writeEncryptedClientCert(t, "right"), CertificateKeyPassword: "wrong"},
			ui.FieldKeyPassword, "does not decrypt"},
	} {
		_, err := connOf(ui.Destination, tc.c, time.Second)
		var fe *ui.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field || fe.Side != ui.Destination || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v (%+v), want a destination field %d error saying %q", tc.name, err, fe, tc.field, tc.says)
		}
		if strings.Contains(err.Error(), "FQoGZXIvYXdzE") || strings.Contains(err.Error(), "wrong") {
			t.Errorf("%s: the error repeats the secret: %v", tc.name, err)
		}
	}
}

// Resuming a migration whose client certificate key is encrypted asks for the key's
// password when the keyring lacks it, and resumes with the one typed.
func TestOpenAsksForAClientKeyPasswordTheKeyringLacks(t *testing.T) {
	const keyPassword = "k3y-Pw"
	certFile := writeEncryptedClientCert(t, keyPassword)
	k := newMemKeyring()
	b := newTestBridge(t, k, "")
	settings := store.ConnSettings{Hosts: []string{"127.0.0.1:1"}, Username: "u", TLS: true, CertificateKeyFile: certFile}
	rec := store.Migration{ID: "m1", State: string(engine.Syncing), Source: store.ConnSettings{Hosts: []string{"127.0.0.1:2"}, Username: "u"}, Destination: settings}
	if err := b.st.SaveMigration(rec); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{store.RoleSource, store.RoleDestination} {
		if err := k.Set("m1", role, "user-pw"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.Open(context.Background(), "m1", nil)
	var pe *ui.PasswordsError
	if !errors.As(err, &pe) || pe.Users || !slices.Equal(pe.Keys, []ui.Side{ui.Destination}) || !errors.Is(err, ui.ErrPasswordsNeeded) {
		t.Fatalf("Open without the key password: %v (%+v), want the destination key's asked for", err, pe)
	}
	if _, err := b.Open(context.Background(), "m1", &ui.Passwords{DestinationKey: "wrong"}); !errors.As(err, &pe) {
		t.Fatalf("Open with a wrong key password: %v, want it asked for again", err)
	}
	m, err := b.Open(context.Background(), "m1", &ui.Passwords{DestinationKey: keyPassword})
	if err != nil {
		t.Fatalf("Open with the key password: %v", err)
	}
	m.Pause(context.Background())
}

// No mechanism's secret (a SCRAM or PLAIN password, an AWS secret key and session
// token, a Kerberos password, a client certificate key's password) reaches the
// checks shown, the logs or the state file, whether the connection is refused or
// the migration does not start.
func TestNoMechanismSecretReachesTheChecksLogsOrStateFile(t *testing.T) {
	const keyPassword = "Key-Pa55-w0rd"
	certFile := writeEncryptedClientCert(t, keyPassword)
	secrets := []string{"Pl4in-Passw0rd", "wJalrXUtnFEMI-K7MDENG", "FQoGZXIvYXdzEJr-token", "Kerb-Passw0rd", keyPassword}
	conns := []ui.Connection{
		{Hosts: "mongodb://ldapuser:Pl4in-Passw0rd@127.0.0.1:1/?authMechanism=PLAIN"},
		{Hosts: "mongodb://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI-K7MDENG@127.0.0.1:1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:FQoGZXIvYXdzEJr-token"},
		{Hosts: "127.0.0.1:1", Username: "dba@EXAMPLE.COM", Password: "Kerb-Passw0rd", AuthMechanism: topology.MechanismGSSAPI, AuthMechanismProperties: "SERVICE_NAME:mongodb"},
		{Hosts: "127.0.0.1:1", AuthMechanism: topology.MechanismX509, CertificateKeyFile: certFile, CertificateKeyPassword: keyPassword},
	}
	b := newTestBridge(t, newMemKeyring(), "")
	b.timeout = 2 * time.Second
	var shown, stateFiles strings.Builder
	for _, c := range conns {
		v, err := b.Validate(context.Background(), c, conns[3])
		if err != nil {
			shown.WriteString(err.Error() + "\n")
		}
		for _, ch := range v.Checks {
			shown.WriteString(ch.Title + ch.Detail + ch.Fix + "\n")
		}
		if _, err := b.Start(context.Background(), c, conns[3], false); err != nil {
			shown.WriteString(err.Error() + "\n")
		}
		// The refused migration's record is gone again: the file's pages still hold it.
		stateFile, err := os.ReadFile(b.path)
		if err != nil {
			t.Fatal(err)
		}
		stateFiles.Write(stateFile)
	}
	if !strings.Contains(shown.String(), "127.0.0.1:1") {
		t.Fatalf("the connections were not tried:\n%s", shown.String())
	}
	logs := strings.Join(b.ring.Lines(), "\n") + b.stderr.String()
	if !strings.Contains(stateFiles.String(), "AKIAIOSFODNN7EXAMPLE") {
		t.Fatal("the state file never held the refused migrations' records: the scan proves nothing")
	}
	for where, data := range map[string]string{"the screen": shown.String(), "the logs": logs, "the state file": stateFiles.String()} {
		for _, s := range secrets {
			if strings.Contains(data, s) {
				t.Errorf("%s holds the secret %q", where, s)
			}
		}
	}
}

// Validation gives the screen the source's shard members as listShards names them,
// with why each could not be reached: the rows of the Shard addresses table.
func TestValidationListsTheSourceShardMembersForTheHostMap(t *testing.T) {
	unresolved := &topology.Error{Kind: topology.ErrDNS, Host: "s0-b.internal:27018", Op: "connect"}
	src := &topology.Cluster{Shards: []topology.Shard{
		{Name: "shard0", Hosts: []string{"s0-a.internal:27018", "s0-b.internal:27018"},
			Members: []topology.Member{{Node: topology.Node{Host: "s0-a.internal:27018"}}, {Node: topology.Node{Host: "s0-b.internal:27018", Err: unresolved}}}},
		{Name: "shard1", Hosts: []string{"s1.internal:27018"}},
	}}
	got := checksOf(validate.Report{Source: src}).ShardHosts
	want := []ui.ShardHost{
		{Shard: "shard0", Host: "s0-a.internal:27018"},
		{Shard: "shard0", Host: "s0-b.internal:27018", Problem: unresolved.Error()},
		{Shard: "shard1", Host: "s1.internal:27018"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("shard hosts %+v, want %+v", got, want)
	}
	if got := checksOf(validate.Report{}).ShardHosts; got != nil {
		t.Fatalf("an unreachable source lists %+v", got)
	}
}

// A migration resumed from the state file gets its client certificate key's password
// back from the keyring: the connection string kept there has lost it.
func TestResumedEndpointsTakeTheKeyPasswordFromTheKeyring(t *testing.T) {
	const keyPassword = "K3y-from-the-keyring"
	entered := "mongodb://migrator@db1:27017/?tls=true&tlsCertificateKeyFile=" + url.QueryEscape(writeEncryptedClientCert(t, keyPassword)) +
		"&tlsCertificateKeyFilePassword=" + url.QueryEscape(keyPassword)
	c, err := connOf(ui.Destination, ui.Connection{Hosts: entered, Password: "pw"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c.settings.URI, keyPassword) {
		t.Fatalf("the settings keep the key password: %s", c.settings.URI)
	}
	rec := store.Migration{ID: "m1", State: string(engine.Syncing), Source: c.settings, Destination: c.settings}
	k := newMemKeyring()
	b := newTestBridge(t, k, "")
	if err := b.savePasswords("m1", c, c); err != nil {
		t.Fatal(err)
	}
	src, dst := b.resumedEndpoints("m1", engine.Syncing, rec, "pw", "pw", nil)
	for _, e := range []topology.Endpoint{src, dst} {
		if _, err := e.ClientOptions(); err != nil {
			t.Errorf("resumed endpoint: %v", err)
		}
	}
	k.DeleteAll("m1")
	src, _ = b.resumedEndpoints("m1", engine.Syncing, rec, "pw", "pw", nil)
	if _, err := src.ClientOptions(); !errors.Is(err, topology.ErrClientKeyPassword) {
		t.Errorf("without the keyring's key password: %v, want %v (else this test proves nothing)", err, topology.ErrClientKeyPassword)
	}
}
