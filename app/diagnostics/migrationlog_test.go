package diagnostics_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shardlift/shardlift/app/diagnostics"
)

// Records naming a migration, through the logger (as the engine's carries it) or the
// call (as the app logs), land in that migration's file; others land in none. No
// secret reaches the file: neither a password the app saw nor one in a connection
// string it did not.
func TestMigrationLogsGetTheRecordsOfTheirMigrationWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	secrets := &diagnostics.SecretSet{}
	secrets.Add("seen-Passw0rd")
	logs := diagnostics.NewMigrationLogs(dir, secrets)
	defer logs.Close()
	ring := diagnostics.NewLogRing(100, secrets)
	log := diagnostics.NewAppLogger(ring, &bytes.Buffer{}, secrets, logs)

	engineLog := log.With("migration", "m1")
	engineLog.Info("migration state", "from", "draft", "to", "validated")
	engineLog.WithGroup("shard").Info("phase", "name", "rs0", "to", "copying")
	log.Info("migration starting", "migration", "m2", "name", "mongodb://migrator:seen-Passw0rd@src:27017/ -> dst:27017")
	log.Info("validated", "source", "mongodb://u:other-S3cret@h:1/?tls=true&tlsCertificateKeyFilePassword=key-Passw0rd")
	log.Warn("the state file is not available")
	log.Debug("below info", "migration", "m1")

	read := func(id string) string {
		data, err := os.ReadFile(logs.Path(id))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	m1, m2 := read("m1"), read("m2")
	for _, want := range []string{"msg=\"migration state\" migration=m1 from=draft to=validated", "msg=phase migration=m1 shard.name=rs0"} {
		if !strings.Contains(m1, want) {
			t.Errorf("m1's log lacks %q:\n%s", want, m1)
		}
	}
	if strings.Count(m1, "\n") != 2 || !strings.Contains(m2, "migration starting") || strings.Count(m2, "\n") != 1 {
		t.Errorf("a record went to the wrong log, or to none:\nm1:\n%s\nm2:\n%s", m1, m2)
	}
	if p := logs.Path("../../etc/m1"); filepath.Dir(p) != dir {
		t.Errorf("an id with slashes names %s, outside the log folder", p)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 2 {
		t.Errorf("the log folder holds %v (%v), want m1's and m2's logs only", entries, err)
	}
	all := m1 + m2 + strings.Join(ring.Lines(), "\n")
	for _, secret := range []string{"seen-Passw0rd", "other-S3cret", "key-Passw0rd"} {
		if strings.Contains(all, secret) {
			t.Errorf("the logs hold %s:\n%s", secret, all)
		}
	}
	if !strings.Contains(all, "mongodb://u@h:1/?tls=true") {
		t.Errorf("the connection string lost more than its secrets:\n%s", all)
	}
}
