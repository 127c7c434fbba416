package gui

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/x/mongo/driver/connstring"

	"github.com/shardlift/shardlift/app/checkpoints"
	"github.com/shardlift/shardlift/app/diagnostics"
	"github.com/shardlift/shardlift/engine"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/engine/validate"
	"github.com/shardlift/shardlift/internal/sandboxtest"
	"github.com/shardlift/shardlift/internal/units"
	"github.com/shardlift/shardlift/store"
	"github.com/shardlift/shardlift/ui"
)

// memKeyring is a keyring in memory; setErr makes every Set fail with it.
type memKeyring struct {
	mu      sync.Mutex
	m       map[string]string
	setErr  error
	deleted []string
}

func newMemKeyring() *memKeyring { return &memKeyring{m: map[string]string{}} }

func (k *memKeyring) Set(id, role, pw string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.setErr != nil {
		return k.setErr
	}
	k.m[id+"/"+role] = pw
	return nil
}

func (k *memKeyring) Get(id, role string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	pw, ok := k.m[id+"/"+role]
	if !ok {
		return "", fmt.Errorf("read the %s password of migration %s: %w", role, id, store.ErrSecretNotFound)
	}
	return pw, nil
}

func (k *memKeyring) DeleteAll(id string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, role := range []string{store.RoleSource, store.RoleDestination, store.RoleSourceKey, store.RoleDestinationKey} {
		delete(k.m, id+"/"+role)
	}
	k.deleted = append(k.deleted, id)
	return nil
}

// testBridge is a bridge on a state file in a temporary folder.
type testBridge struct {
	*bridge
	path   string
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestBridge(t *testing.T, k secretStore, path string) *testBridge {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "state.db")
	}
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return newTestBridgeOn(t, k, st, path)
}

func newTestBridgeOn(t *testing.T, k secretStore, st *store.Store, path string) *testBridge {
	t.Helper()
	secrets := &diagnostics.SecretSet{}
	ring := diagnostics.NewLogRing(diagnostics.LogRingSize, secrets)
	logs := diagnostics.NewMigrationLogs(diagnostics.LogDir(path), secrets)
	stderr := &syncBuffer{}
	b := newBridge(context.Background(), bridgeConfig{
		Store: st, Keyring: k, Log: diagnostics.NewAppLogger(ring, stderr, secrets, logs), Ring: ring, Secrets: secrets, Logs: logs,
		Timeout: 30 * time.Second, Sandbox: sandboxOptions{Docs: 1000, Rate: 20}, PollEvery: 100 * time.Millisecond,
	})
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close the bridge: %v", err)
		}
	})
	return &testBridge{bridge: b, path: path, stderr: stderr}
}

// serialApp is Fyne's test app with fyne.Do serialized, as the event goroutine of a
// real display does: the test driver runs it on the calling goroutine, so the
// screens' background results would race with each other and with the test.
type serialApp struct {
	fyne.App
	driver serialDriver
}

type serialDriver struct {
	fyne.Driver
	mu *sync.Mutex
}

func (d serialDriver) DoFromGoroutine(f func(), wait bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Driver.DoFromGoroutine(f, wait)
}

func (a serialApp) Driver() fyne.Driver { return a.driver }

func newSerialApp(t *testing.T) fyne.App {
	base := test.NewTempApp(t)
	a := serialApp{App: base, driver: serialDriver{Driver: base.Driver(), mu: &sync.Mutex{}}}
	fyne.SetCurrentApp(a)
	return a
}

// writeCA writes a self-signed CA certificate in PEM and returns its path and text.
func writeCA(t *testing.T) (string, string) {
	t.Helper()
	_, der := selfSigned(t, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	})
	text := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, text
}

func TestConnectionFormsMapToEndpointsAndPasswordlessSettings(t *testing.T) {
	caFile, caPEM := writeCA(t)
	cases := []struct {
		name     string
		in       ui.Connection
		endpoint topology.Endpoint
		settings store.ConnSettings
		password string
	}{
		{
			name:     "host list with spaces and a default port",
			in:       ui.Connection{Hosts: " db1:27017, db2 ", Username: " admin ", Password: "hunter2-pw"},
			endpoint: topology.Endpoint{Hosts: []string{"db1:27017", "db2:27017"}, Username: "admin", Password: "hunter2-pw"},
			settings: store.ConnSettings{Hosts: []string{"db1:27017", "db2:27017"}, Username: "admin"},
			password: "hunter2-pw",
		},
		{
			name:     "connection string carrying the user, the password and TLS",
			in:       ui.Connection{Hosts: "mongodb://migrator:s3cr%40t@h1:27017,h2:27018/?tls=true"},
			endpoint: topology.Endpoint{URI: "mongodb://migrator:s3cr%40t@h1:27017,h2:27018/?tls=true"},
			settings: store.ConnSettings{Hosts: []string{"h1:27017", "h2:27018"}, Username: "migrator", TLS: true, URI: "mongodb://migrator@h1:27017,h2:27018/?tls=true"},
			password: "s3cr@t",
		},
		{
			name:     "CA file turns TLS on",
			in:       ui.Connection{Hosts: "db1:27017", TLS: true, CAFile: caFile},
			endpoint: topology.Endpoint{Hosts: []string{"db1:27017"}, TLS: true, CAFile: caFile},
			settings: store.ConnSettings{Hosts: []string{"db1:27017"}, TLS: true, CAFile: caFile},
		},
		{
			name:     "pasted CA",
			in:       ui.Connection{Hosts: "[::1]:27017", TLS: true, CAPEM: caPEM},
			endpoint: topology.Endpoint{Hosts: []string{"[::1]:27017"}, TLS: true, CAPEM: []byte(strings.TrimSpace(caPEM))},
			settings: store.ConnSettings{Hosts: []string{"[::1]:27017"}, TLS: true, CAPEM: strings.TrimSpace(caPEM)},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := connOf(ui.Source, c.in, 7*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c.endpoint.Timeout = 7 * time.Second
			e := got.endpoint
			if e.URI != c.endpoint.URI || !slices.Equal(e.Hosts, c.endpoint.Hosts) || e.Username != c.endpoint.Username ||
				e.Password != c.endpoint.Password || e.TLS != c.endpoint.TLS || e.CAFile != c.endpoint.CAFile ||
				!bytes.Equal(e.CAPEM, c.endpoint.CAPEM) || e.Timeout != c.endpoint.Timeout {
				t.Errorf("endpoint %+v, want %+v", e, c.endpoint)
			}
			s := got.settings
			if !slices.Equal(s.Hosts, c.settings.Hosts) || s.Username != c.settings.Username || s.TLS != c.settings.TLS ||
				s.CAFile != c.settings.CAFile || s.CAPEM != c.settings.CAPEM || s.URI != c.settings.URI {
				t.Errorf("settings %+v, want %+v", s, c.settings)
			}
			if got.password != c.password {
				t.Errorf("password %q, want %q", got.password, c.password)
			}
			raw, err := bson.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if c.password != "" && bytes.Contains(raw, []byte(c.password)) {
				t.Errorf("the settings for the state file hold the password: %s", bson.Raw(raw))
			}
		})
	}
}

func TestConnectionFieldErrorsNameTheFieldAndNeverThePassword(t *testing.T) {
	caFile, caPEM := writeCA(t)
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		in    ui.Connection
		field ui.Field
		say   string
	}{
		{"empty", ui.Connection{Hosts: "  "}, ui.FieldHosts, "enter the mongos host:port list"},
		{"empty entry", ui.Connection{Hosts: "a:1,,b:2"}, ui.FieldHosts, "empty entry"},
		{"credentials in a host", ui.Connection{Hosts: "admin:topsecret@db1:27017"}, ui.FieldHosts, "is not host:port"},
		{"bad port", ui.Connection{Hosts: "db1:99999"}, ui.FieldHosts, "from 1 to 65535"},
		{"not mongodb", ui.Connection{Hosts: "http://admin:topsecret@db1"}, ui.FieldHosts, "not a mongodb://"},
		{"bad URI", ui.Connection{Hosts: "mongodb://admin:topsecret@db1:27017/?w=&&&foo"}, ui.FieldHosts, "the connection string is not valid"},
		{"unescaped @ in the password", ui.Connection{Hosts: "mongodb://admin:top@secret@db1:27017/"}, ui.FieldHosts, "must be percent-encoded"},
		{"missing CA file", ui.Connection{Hosts: "db1", TLS: true, CAFile: filepath.Join(t.TempDir(), "none.pem")}, ui.FieldCA, "the CA file cannot be read (no such file or directory)"},
		{"missing CA file in the URI", ui.Connection{Hosts: "mongodb://db1/?tls=true&tlsCAFile=" + filepath.Join(t.TempDir(), "none.pem")}, ui.FieldCA, "the CA file cannot be read"},
		{"CA file not PEM", ui.Connection{Hosts: "db1", TLS: true, CAFile: notPEM}, ui.FieldCA, "not a PEM certificate"},
		{"pasted private key", ui.Connection{Hosts: "db1", TLS: true, CAPEM: caPEM + "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"}, ui.FieldCA, "private key"},
	}
	_ = caFile
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := connOf(ui.Destination, c.in, time.Second)
			var fe *ui.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a *ui.FieldError", err)
			}
			if fe.Side != ui.Destination || fe.Field != c.field {
				t.Errorf("field error on %v field %v, want destination field %v", fe.Side, fe.Field, c.field)
			}
			if !strings.Contains(err.Error(), c.say) {
				t.Errorf("error %q does not say %q", err, c.say)
			}
			if fix := topology.Fix(fe.Err); fe.Fix != fix {
				t.Errorf("fix %q, want the classified error's %q", fe.Fix, fix)
			}
			if strings.Contains(err.Error(), "topsecret") || strings.Contains(err.Error(), "secret@") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestChecksKeepEveryFindingAndANotRunCheckBlocksTheStart(t *testing.T) {
	r := validate.Report{
		Findings: []validate.Finding{
			{ID: "source.reachable", Status: validate.Passed, Title: "Source reachable", Detail: "connected"},
			{ID: "versions", Status: validate.Failed, Title: "Same MongoDB version", Detail: "7.0 vs 6.0", Fix: "upgrade"},
			{ID: "oplog", Status: validate.NotRun, Title: "Oplog readable", Detail: "the source is unreachable", Fix: "fix reachability first"},
			{ID: validate.IDDestEmpty, Status: validate.Warning, Title: "Destination holds no user data", Detail: "shop (2 collections)", Fix: "back up"},
		},
		Destination: &topology.Cluster{Namespaces: []topology.Namespace{
			{DB: "shop", Collection: "orders", Count: 1200, Size: 2 << 20, SizeKnown: true},
			{DB: "shop", Collection: "users", Count: 34, Size: 4096, SizeKnown: true},
			{DB: "logs", Collection: "events", Count: 5, Size: 512, SizeKnown: true},
		}, Databases: []topology.Database{{Name: "config"}, {Name: "shop"}, {Name: "stale"}}},
	}
	v := checksOf(r)
	want := []ui.Check{
		{Status: ui.Passed, Title: "Source reachable", Detail: "connected"},
		{Status: ui.Failed, Title: "Same MongoDB version", Detail: "7.0 vs 6.0", Fix: "upgrade"},
		{Status: ui.NotRun, Title: "Oplog readable", Detail: "the source is unreachable", Fix: "fix reachability first"},
		{Status: ui.Warning, Title: "Destination holds no user data", Detail: "shop (2 collections)", Fix: "back up"},
	}
	if !slices.Equal(v.Checks, want) {
		t.Errorf("checks\n%+v\nwant\n%+v", v.Checks, want)
	}
	if !v.DestinationHasData {
		t.Error("a destination with collections is not reported as holding data")
	}
	if w := "2 databases (shop, logs), 3 collections, 1,239 documents, 2.0 MiB"; v.DestinationContents != w {
		t.Errorf("contents %q, want %q", v.DestinationContents, w)
	}
	// The wipe also drops a database only config.databases still knows.
	if w := []string{"logs", "shop", "stale"}; !slices.Equal(v.WipeDatabases, w) {
		t.Errorf("the wipe dialog would list %v, want %v", v.WipeDatabases, w)
	}

	r.Findings[3].Status = validate.Passed
	r.Destination.Namespaces = nil
	if v := checksOf(r); v.DestinationHasData || v.DestinationContents != "" {
		t.Errorf("an empty destination is reported as holding %q", v.DestinationContents)
	}
}

func TestMigrationsListStateReasonShardsAndGapFromTheStateFile(t *testing.T) {
	b := newTestBridge(t, newMemKeyring(), "")
	st := b.st
	save := func(id, state string, created time.Time, history []store.Event, sum *store.Summary) {
		t.Helper()
		if err := st.SaveMigration(store.Migration{ID: id, Name: id + " name", CreatedAt: created, State: string(engine.Draft), Summary: sum,
			Source: store.ConnSettings{Hosts: []string{"s:1"}}, Destination: store.ConnSettings{Hosts: []string{"d:1"}}}); err != nil {
			t.Fatal(err)
		}
		from := string(engine.Draft)
		for _, e := range history {
			e.From = from
			if err := st.AppendHistory(id, e); err != nil {
				t.Fatal(err)
			}
			from = e.To
		}
	}
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	save("failed", "", t0, []store.Event{
		{At: t0.Add(time.Minute), To: "validated"}, {At: t0.Add(2 * time.Minute), To: "starting"},
		{At: t0.Add(3 * time.Minute), To: "failed", Reason: "stop the source balancer: not authorized"},
	}, nil)
	save("cancelled", "", t0.Add(time.Hour), []store.Event{
		{At: t0.Add(61 * time.Minute), To: "validated"}, {At: t0.Add(62 * time.Minute), To: "starting"},
		{At: t0.Add(63 * time.Minute), To: "syncing"}, {At: t0.Add(64 * time.Minute), To: "cancelled", Reason: "cancelled"},
	}, &store.Summary{OptimeGap: 83 * time.Second})
	for _, shard := range []string{"rs0", "rs1"} {
		if err := st.SaveShardCheckpoint("cancelled", store.ShardCheckpoint{Shard: shard, Phase: "synced"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkpoints.New(st, "cancelled").SaveRecord(engine.Record{ID: "cancelled", Summary: &engine.Summary{OptimeGap: 83 * time.Second}}); err != nil {
		t.Fatal(err)
	}

	list, err := b.Migrations(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "cancelled" || list[1].ID != "failed" {
		t.Fatalf("list %+v, want cancelled then failed (newest first)", list)
	}
	c, f := list[0], list[1]
	if c.State != engine.Cancelled || c.Shards != 2 || c.Lag != 83*time.Second || c.Name != "cancelled name" || c.Updated.Before(t0.Add(64*time.Minute)) {
		t.Errorf("cancelled: %+v (want 2 shards, not the meta record, and the gap at cancel)", c)
	}
	if f.State != engine.Failed || f.Reason != "stop the source balancer: not authorized" || f.Shards != 0 || !f.Updated.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("failed: %+v", f)
	}
}

func TestOpenAsksForThePasswordsWhenTheKeyringHasNone(t *testing.T) {
	b := newTestBridge(t, newMemKeyring(), "")
	if err := b.st.SaveMigration(store.Migration{ID: "m1", State: string(engine.Draft),
		Source: store.ConnSettings{Hosts: []string{"127.0.0.1:1"}, Username: "u"}, Destination: store.ConnSettings{Hosts: []string{"127.0.0.1:2"}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.st.AppendHistory("m1", store.Event{From: "draft", To: "validated"}); err != nil {
		t.Fatal(err)
	}
	_, err := b.Open(context.Background(), "m1", nil)
	if !errors.Is(err, ui.ErrPasswordsNeeded) || !errors.Is(err, store.ErrSecretNotFound) {
		t.Fatalf("Open without saved passwords: %v, want ErrPasswordsNeeded", err)
	}
	if b.live("m1") != nil {
		t.Error("a migration that could not be opened is kept open")
	}
}

func TestRemoveDeletesTheRecordAndThePasswordsButRefusesARunningOne(t *testing.T) {
	k := newMemKeyring()
	b := newTestBridge(t, k, "")
	if err := b.st.SaveMigration(store.Migration{ID: "m1", State: string(engine.Draft), Source: store.ConnSettings{Hosts: []string{"a:1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := k.Set("m1", store.RoleSource, "pw-123456"); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(context.Background(), "m1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Migration("m1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the record is still there: %v", err)
	}
	if _, err := k.Get("m1", store.RoleSource); !errors.Is(err, store.ErrSecretNotFound) {
		t.Errorf("the password is still in the keyring: %v", err)
	}
}

func TestKeyringUnavailableIsANoticeTheUIRecognizes(t *testing.T) {
	k := newMemKeyring()
	k.setErr = &store.KeyringError{Op: "save the source password of migration m1", Cause: errors.New("org.freedesktop.DBus.Error.ServiceUnknown")}
	b := newTestBridge(t, k, "")
	err := b.savePasswords("m1", conn{password: "pw-source"}, conn{password: "pw-destination"})
	if !errors.Is(err, ui.ErrKeyringUnavailable) || !errors.Is(err, store.ErrKeyringUnavailable) {
		t.Fatalf("error %v does not match ui.ErrKeyringUnavailable", err)
	}
	if err.Error() != store.ErrKeyringUnavailable.Error() {
		t.Errorf("notice %q, want the store's sentence %q", err, store.ErrKeyringUnavailable)
	}
	if !strings.Contains(b.stderr.String(), "ServiceUnknown") {
		t.Errorf("the keyring's cause is not logged: %q", b.stderr.String())
	}
}

func TestLockedStateFileIsReportedNotWaitedOn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	holder, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	var errOut syncBuffer
	_, _, err = openStateFile(context.Background(), path, &errOut)
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("open a held state file: %v, want ErrLocked", err)
	}
	b := newBridge(context.Background(), bridgeConfig{StoreErr: err})
	defer b.Close()
	u := ui.New(newSerialApp(t), b)
	defer u.Window().Close()
	fyne.DoAndWait(func() { showStateFileProblem(u.Window(), path, err) })
	d := screenDriver{win: u.Window()}
	for _, w := range []string{"Shardlift is already running", path, "cannot list, start or resume migrations"} {
		if !d.has(w) {
			t.Errorf("the dialog does not say %q", w)
		}
	}
	if _, err := b.Migrations(context.Background()); !errors.Is(err, store.ErrLocked) {
		t.Errorf("Migrations without a state file: %v, want the lock error", err)
	}
	if _, err := b.Start(context.Background(), ui.Connection{Hosts: "a:1"}, ui.Connection{Hosts: "b:1"}, false); !errors.Is(err, store.ErrLocked) {
		t.Errorf("Start without a state file: %v, want the lock error", err)
	}
}

func TestApplicationConnectionStringKeepsTLSAndTheCAButNoUser(t *testing.T) {
	cases := []struct {
		e    topology.Endpoint
		want string
	}{
		{topology.Endpoint{Hosts: []string{"d1:27017", "d2:27017"}, Username: "u", Password: "pw"}, "mongodb://d1:27017,d2:27017/"},
		{topology.Endpoint{Hosts: []string{"d1:27017"}, TLS: true, CAFile: "/etc/ssl/my ca&1+2.pem"}, "mongodb://d1:27017/?tls=true&tlsCAFile=/etc/ssl/my%20ca%261%2B2.pem"},
		{topology.Endpoint{Hosts: []string{"d1:27017"}, CAPEM: []byte("pem")}, "mongodb://d1:27017/?tls=true"},
		{topology.Endpoint{URI: "mongodb://u:pw@d1/?tls=true"}, ""},
	}
	for _, c := range cases {
		got := applicationURI(c.e)
		if got != c.want {
			t.Errorf("applicationURI(%+v) = %q, want %q", c.e, got, c.want)
		}
		if got == "" {
			continue
		}
		cs, err := connstring.ParseAndValidate(got)
		wantTLS := c.e.TLS || c.e.CAFile != "" || len(c.e.CAPEM) > 0
		if err != nil || cs.SSL != wantTLS || cs.SSLCaFile != c.e.CAFile || cs.Username != "" {
			t.Errorf("%s parses as %+v, %v: want TLS %v and CA file %q, no user", got, cs, err, wantTLS, c.e.CAFile)
		}
	}
}

func TestMetadataMatchesFyneAppToml(t *testing.T) {
	data, err := os.ReadFile("../../FyneApp.toml")
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			section = strings.Trim(line, "[]")
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[section+"."+strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	m := appMetadata()
	for key, want := range map[string]string{
		"Details.Name": m.Name, "Details.ID": m.ID, "Details.Version": m.Version,
		"Details.Build": fmt.Sprint(m.Build), "Migrations.fyneDo": fmt.Sprint(m.Migrations["fyneDo"]),
	} {
		if kv[key] != want {
			t.Errorf("FyneApp.toml %s = %q, the binary says %q", key, kv[key], want)
		}
	}
	if m.Icon == nil || len(m.Icon.Content()) == 0 {
		t.Error("the metadata has no icon")
	}
}

func TestWithoutADisplayTheAppPointsToTheHeadlessCommands(t *testing.T) {
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	var errOut syncBuffer
	if ok := Run(context.Background(), &errOut); ok {
		t.Error("Run succeeded without a display")
	}
	for _, w := range []string{"no display", "shardlift validate", "shardlift migrate", "shardlift sandbox"} {
		if !strings.Contains(errOut.String(), w) {
			t.Errorf("the message does not say %q:\n%s", w, errOut.String())
		}
	}

	t.Setenv("DISPLAY", ":93")
	errOut = syncBuffer{}
	if ok := Run(context.Background(), &errOut); ok || !strings.Contains(errOut.String(), "no X server answers on DISPLAY=:93") {
		t.Errorf("a display nobody serves: ok %v, message:\n%s", ok, errOut.String())
	}
}

// connView is what a client built from an endpoint connects with, to compare the
// connection of a resumed migration with the one first entered.
func connView(t *testing.T, e topology.Endpoint) string {
	t.Helper()
	o, err := e.ClientOptions()
	if err != nil {
		t.Fatalf("client options of %s: %v", e, err)
	}
	v := fmt.Sprintf("hosts=%v tls=%t", o.Hosts, o.TLSConfig != nil)
	if o.Auth != nil {
		v += fmt.Sprintf(" user=%s password=%s authSource=%s mechanism=%s", o.Auth.Username, o.Auth.Password, o.Auth.AuthSource, o.Auth.AuthMechanism)
	}
	if o.ReplicaSet != nil {
		v += " replicaSet=" + *o.ReplicaSet
	}
	// The client reads the primary; the shards are read as the endpoint's read
	// preference says.
	if rp, err := e.Reads(); err == nil {
		v += " readPreference=" + rp.String()
	}
	if o.Direct != nil {
		v += fmt.Sprintf(" direct=%t", *o.Direct)
	}
	return v + fmt.Sprintf(" compressors=%v", o.Compressors)
}

// TestResumedConnectionKeepsEveryConnectionStringOption: a connection entered as a
// connection string is saved without its secrets, and the endpoint rebuilt from the
// state file after a restart (password from the keyring) connects as the one entered.
func TestResumedConnectionKeepsEveryConnectionStringOption(t *testing.T) {
	const uri = "mongodb://migrator:s3cr%40t@h1:27017,h2:27018/shop?authSource=users&replicaSet=rs9" +
		"&readPreference=secondaryPreferred&compressors=zstd&tls=true&tlsCertificateKeyFilePassword=k3yPass"
	first, err := connOf(ui.Source, ui.Connection{Hosts: uri}, 7*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := connView(t, first.endpoint)
	for _, w := range []string{"authSource=users", "replicaSet=rs9", "readPreference=secondaryPreferred", "compressors=[zstd]", "password=s3cr@t"} {
		if !strings.Contains(want, w) {
			t.Fatalf("the entered connection lacks %s: %s", w, want)
		}
	}

	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveMigration(store.Migration{ID: "m1", State: string(engine.Syncing), Source: first.settings,
		Destination: store.ConnSettings{Hosts: []string{"d:1"}}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"s3cr", "k3yPass"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the state file holds the secret %q", secret)
		}
	}

	st, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := st.Migration("m1")
	if err != nil {
		t.Fatal(err)
	}
	resumed := checkpoints.EndpointOf(rec.Source, first.password, 7*time.Second)
	if got := connView(t, resumed); got != want {
		t.Errorf("the resumed migration connects with\n  %s\nthe one entered with\n  %s", got, want)
	}
}

// TestResumedSRVConnectionIsResolvedAgain: an Atlas mongodb+srv:// string is kept
// with its SRV name, not the hosts it resolved to when entered, and with its options.
func TestResumedSRVConnectionIsResolvedAgain(t *testing.T) {
	const entered = "mongodb+srv://migrator:Atl%40sPw@cluster0.abcde.mongodb.net/?authSource=admin&replicaSet=atlas-abc-shard-0&retryWrites=true&w=majority"
	set := store.ConnSettings{
		// What connOf keeps: the hosts resolved at entry, and the string without its password.
		Hosts: []string{"cluster0-shard-00-00.abcde.mongodb.net:27017"}, Username: "migrator", TLS: true,
		URI: store.RedactURI(entered),
	}
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SaveMigration(store.Migration{ID: "m1", State: string(engine.Syncing), Source: set, Destination: set}); err != nil {
		t.Fatal(err)
	}
	rec, err := st.Migration("m1")
	if err != nil {
		t.Fatal(err)
	}
	e := checkpoints.EndpointOf(rec.Destination, "Atl@sPw", time.Second)
	const want = "mongodb+srv://migrator@cluster0.abcde.mongodb.net/?authSource=admin&replicaSet=atlas-abc-shard-0&retryWrites=true&w=majority"
	if e.URI != want || len(e.Hosts) != 0 || e.Username != "migrator" || e.Password != "Atl@sPw" || !e.TLS {
		t.Errorf("resumed endpoint %+v, want URI %s with the keyring's password", e, want)
	}
}

// TestRecordWithoutConnectionStringResumesFromItsHosts: a record written before the
// connection string was kept resumes from its host list, as it always did.
func TestRecordWithoutConnectionStringResumesFromItsHosts(t *testing.T) {
	e := checkpoints.EndpointOf(store.ConnSettings{Hosts: []string{"db1:27017", "db2:27017"}, Username: "migrator", TLS: true}, "pw", time.Second)
	got := connView(t, e)
	const want = "hosts=[db1:27017 db2:27017] tls=true user=migrator password=pw authSource=admin mechanism="
	if !strings.HasPrefix(got, want) || e.URI != "" {
		t.Errorf("old record resumes with %s (URI %q), want %s", got, e.URI, want)
	}
}

// TestCLIRecordKeepsTheConnectionStringWithoutItsPassword: `shardlift migrate` takes
// --source/--destination again at each run, and its record keeps them without
// secrets, so that the GUI resuming that record connects the same way.
func TestCLIRecordKeepsTheConnectionStringWithoutItsPassword(t *testing.T) {
	const uri = "mongodb://app:pa55word@a.example:27018/?authSource=users&replicaSet=rs0&tls=true"
	e := topology.Endpoint{URI: uri, Timeout: time.Second} // as the CLI's --source makes it
	set := checkpoints.ConnSettings(e, "")
	if set.URI != "mongodb://app@a.example:27018/?authSource=users&replicaSet=rs0&tls=true" {
		t.Fatalf("the CLI keeps %q", set.URI)
	}
	// The password the GUI would have in the keyring for it.
	if got, want := connView(t, checkpoints.EndpointOf(set, "pa55word", time.Second)), connView(t, e); got != want {
		t.Errorf("resumed from the CLI's record:\n  %s\nas run:\n  %s", got, want)
	}
}

// TestResumedMigrationConnectsAsTheConnectionStringEntered runs against the sandbox's
// TLS and SCRAM router: a destination entered as a connection string whose
// tlsInsecure (no CA given) is what lets TLS through still connects once rebuilt from
// the state file, where the host list alone (a record without the string) cannot.
func TestResumedMigrationConnectsAsTheConnectionStringEntered(t *testing.T) {
	sandboxtest.NeedSandbox(t)
	ctx := context.Background()
	b := newTestBridge(t, newMemKeyring(), "")
	_, dst, err := b.StartSandbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entered := ui.Connection{Hosts: "mongodb://" + dst.Username + ":" + dst.Password + "@" + dst.Hosts + "/?tls=true&tlsInsecure=true&authSource=admin"}
	c, err := connOf(ui.Destination, entered, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	connect := func(e topology.Endpoint) error {
		client, err := topology.Connect(ctx, e)
		if err != nil {
			return err
		}
		return client.Disconnect(ctx)
	}
	if err := connect(c.endpoint); err != nil {
		t.Fatalf("the connection string entered does not connect: %v", err)
	}

	path := filepath.Join(t.TempDir(), "state.db")
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SaveMigration(store.Migration{ID: "m1", State: string(engine.Syncing), Source: c.settings, Destination: c.settings}); err != nil {
		t.Fatal(err)
	}
	rec, err := st.Migration("m1")
	if err != nil {
		t.Fatal(err)
	}
	if err := connect(checkpoints.EndpointOf(rec.Destination, c.password, 10*time.Second)); err != nil {
		t.Errorf("the resumed destination does not connect: %v", err)
	}
	hostsOnly := rec.Destination
	hostsOnly.URI = ""
	if err := connect(checkpoints.EndpointOf(hostsOnly, c.password, 10*time.Second)); !errors.Is(err, topology.ErrUnknownAuthority) {
		t.Errorf("without the connection string's options: %v, want %v (else this test proves nothing)", err, topology.ErrUnknownAuthority)
	}
}

// The source form's read preference reaches the endpoint and the state file, and a
// resumed migration reads the same members; one the form cannot take is named.
func TestSourceReadPreferenceIsKeptForTheResume(t *testing.T) {
	c, err := connOf(ui.Source, ui.Connection{Hosts: "mongodb://h1:27017/?readPreference=nearest&readPreferenceTags=dc:east", ReadPreference: "secondary"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.endpoint.ReadPreference != "secondary" || c.settings.ReadPreference != "secondary" {
		t.Fatalf("endpoint %q, settings %q; want secondary", c.endpoint.ReadPreference, c.settings.ReadPreference)
	}
	resumed := checkpoints.EndpointOf(c.settings, "", time.Second)
	if rp, err := resumed.Reads(); err != nil || rp.String() != "secondary (tags dc:east)" {
		t.Fatalf("resumed reads %v, %v; want secondary (tags dc:east)", rp, err)
	}
	_, err = connOf(ui.Source, ui.Connection{Hosts: "h1:27017", ReadPreference: "fastest"}, time.Second)
	var fe *ui.FieldError
	if !errors.As(err, &fe) || fe.Field != ui.FieldReadPreference || !strings.Contains(err.Error(), "use one of primary") {
		t.Fatalf("an unknown mode: %v", err)
	}
	_, err = connOf(ui.Source, ui.Connection{Hosts: "mongodb://h1:27017/?readPreference=secondary&maxStalenessSeconds=30"}, time.Second)
	if !errors.As(err, &fe) || fe.Field != ui.FieldReadPreference || !strings.Contains(err.Error(), "at least 90") {
		t.Fatalf("a staleness bound under 90 s: %v", err)
	}
}

// The Read each shard from table's choices reach the endpoint and the state file
// (a resumed migration reads each shard the same way); one the bridge cannot take
// is a FieldError on the table.
func TestShardReadPreferencesAreKeptForTheResume(t *testing.T) {
	c, err := connOf(ui.Source, ui.Connection{Hosts: "mongodb://h1:27017/?readPreference=nearest&maxStalenessSeconds=120",
		ShardReadPreferences: map[string]string{"s0": "SECONDARY;dc:west", "s1": "primary"}}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"s0": "secondary;dc:west", "s1": "primary"}
	if !maps.Equal(c.endpoint.ShardReadPreferences, want) || !maps.Equal(c.settings.ShardReadPreferences, want) {
		t.Fatalf("endpoint %v, settings %v; want %v", c.endpoint.ShardReadPreferences, c.settings.ShardReadPreferences, want)
	}
	reads, err := checkpoints.EndpointOf(c.settings, "", time.Second).ReadsByShard()
	if err != nil || reads.Of("s0").String() != "secondary (tags dc:west; max staleness 2m0s)" || reads.Of("s1").String() != "primary" || reads.Of("s2").String() != "nearest (max staleness 2m0s)" {
		t.Fatalf("resumed reads %v, %v", reads, err)
	}
	var fe *ui.FieldError
	for _, tc := range []struct {
		hosts, spec, say string
	}{
		{"h1:27017", "fastest", "use one of primary"},
		{"mongodb://h1:27017/?maxStalenessSeconds=30&readPreference=primary", "secondary", "shard s0: maxStalenessSeconds=30"},
	} {
		_, err = connOf(ui.Source, ui.Connection{Hosts: tc.hosts, ShardReadPreferences: map[string]string{"s0": tc.spec}}, time.Second)
		if !errors.As(err, &fe) || fe.Field != ui.FieldShardReadPreferences || !strings.Contains(err.Error(), tc.say) {
			t.Errorf("%s with s0=%s: %v, want a shard read preferences error saying %q", tc.hosts, tc.spec, err, tc.say)
		}
	}
}

// Sizes the GUI bridge writes are binary (MiB), never SI (MB): the wipe question's
// description of the destination.
func TestBridgeWritesBinaryUnits(t *testing.T) {
	text := contentsOf([]topology.Namespace{{DB: "shop", Collection: "orders", Type: "collection", SizeKnown: true, Count: 20_365, Size: 27_262_976}})
	if si := units.FindSI(text); si != "" || !strings.Contains(text, "iB") {
		t.Errorf("destination contents %q: want binary units, found %q", text, si)
	}
}
