package store

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.mongodb.org/mongo-driver/bson"
)

func TestRedactURIRemovesEverySecretAndKeepsTheRest(t *testing.T) {
	cases := []struct{ in, want string }{
		{ // nothing secret: byte for byte, separators and case included
			"mongodb+srv://migrator@cluster0.abcde.mongodb.net/?authSource=admin;replicaSet=atlas-x-shard-0&readPreference=secondaryPreferred",
			"mongodb+srv://migrator@cluster0.abcde.mongodb.net/?authSource=admin;replicaSet=atlas-x-shard-0&readPreference=secondaryPreferred",
		},
		{
			"mongodb+srv://migrator:Pa%3Ass%40w0rd@cluster0.abcde.mongodb.net/?authSource=admin&replicaSet=atlas-x-shard-0",
			"mongodb+srv://migrator@cluster0.abcde.mongodb.net/?authSource=admin&replicaSet=atlas-x-shard-0",
		},
		{"mongodb://:onlyAPassword@h1:27017", "mongodb://h1:27017"},
		{"mongodb://u:p@h1,h2:27018/shop", "mongodb://u@h1,h2:27018/shop"},
		{
			"mongodb://u@h1/?tls=true&TLSCertificateKeyFilePassword=k3y&tlsCertificateKeyFile=%2Fetc%2Fc.pem&compressors=zstd",
			"mongodb://u@h1/?tls=true&tlsCertificateKeyFile=%2Fetc%2Fc.pem&compressors=zstd",
		},
		{"mongodb://u@h1/?sslClientCertificateKeyPassword=k3y", "mongodb://u@h1/"},
		{
			"mongodb://h1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:t0ken,SERVICE_NAME:x",
			"mongodb://h1/?authMechanism=MONGODB-AWS&authMechanismProperties=SERVICE_NAME%3Ax",
		},
		{"mongodb://h1/?authMechanismProperties=aws_session_token%3At0ken", "mongodb://h1/"},
	}
	for _, c := range cases {
		if got := RedactURI(c.in); got != c.want {
			t.Errorf("RedactURI(%q)\n = %q\nwant %q", c.in, got, c.want)
		}
		if got := RedactURI(c.want); got != c.want {
			t.Errorf("RedactURI changes a URI without secrets: %q -> %q", c.want, got)
		}
	}
}

// TestNoPasswordInTheSavedConnectionString: the store refuses a connection string
// that still carries a secret (the app redacts it first), without echoing it.
func TestNoPasswordInTheSavedConnectionString(t *testing.T) {
	s, path := openTemp(t)
	const password, keyPassword = "Sup3r-S3cret", "K3y-S3cret"
	for i, uri := range []string{
		"mongodb://migrator:" + password + "@mongos1.internal:27017/?authSource=admin",
		"mongodb://migrator@mongos1.internal:27017/?tlsCertificateKeyFilePassword=" + keyPassword,
	} {
		m := sampleMigration("m" + string(rune('1'+i)))
		m.Source.URI = uri
		err := s.SaveMigration(m)
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("SaveMigration with %s: %v, want ErrInvalid", uri, err)
		}
		if strings.Contains(err.Error(), password) || strings.Contains(err.Error(), keyPassword) {
			t.Fatalf("the refusal echoes the secret: %q", err)
		}
	}
	ok := sampleMigration("m3")
	ok.Source.URI = RedactURI("mongodb://migrator:" + password + "@mongos1.internal:27017/?authSource=admin")
	mustSave(t, s, ok)
	got, err := s.Migration("m3")
	if err != nil {
		t.Fatal(err)
	}
	if got.Source.URI != "mongodb://migrator@mongos1.internal:27017/?authSource=admin" {
		t.Errorf("the connection string read back is %q", got.Source.URI)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), password) || strings.Contains(string(data), keyPassword) {
		t.Fatal("a secret was written to the state file")
	}
}

// TestRecordWithoutConnectionStringStillLoads: a record written before ConnSettings
// kept the connection string (no "uri" key) loads as it did, its hosts intact.
func TestRecordWithoutConnectionStringStillLoads(t *testing.T) {
	s, _ := openTemp(t)
	old := bson.D{
		{Key: "_id", Value: "old"}, {Key: "createdAt", Value: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{Key: "source", Value: bson.D{{Key: "hosts", Value: bson.A{"db1:27017", "db2:27017"}}, {Key: "username", Value: "migrator"}, {Key: "tls", Value: true}}},
		{Key: "destination", Value: bson.D{{Key: "hosts", Value: bson.A{"d1:27017"}}, {Key: "tls", Value: false}}},
		{Key: "state", Value: "syncing"},
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		v, err := encode([]byte("old"), old)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketMigrations).Put([]byte("old"), v)
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Migration("old")
	if err != nil {
		t.Fatalf("an old record does not load: %v", err)
	}
	if m.Source.URI != "" || strings.Join(m.Source.Hosts, ",") != "db1:27017,db2:27017" || m.Source.Username != "migrator" || !m.Source.TLS ||
		m.State != "syncing" {
		t.Errorf("old record read as %+v", m)
	}
	// Saved again (a lifecycle step does), it stays as it was.
	mustSave(t, s, m)
	if again, err := s.Migration("old"); err != nil || again.Source.URI != "" || len(again.Source.Hosts) != 2 {
		t.Errorf("re-saved old record: %+v, %v", again, err)
	}
}
