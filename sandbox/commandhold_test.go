package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// A held command stays in flight, counted, until the release: then it runs, or with
// abort answers Interrupted having done nothing. Commands the hold does not match
// run at once. Driven through the control API, as a DBA's drill would.
func TestHeldCommandsWaitForTheRelease(t *testing.T) {
	c := startCluster(t, Options{Shards: 1})
	srv := httptest.NewServer(Control(map[string]*Cluster{"destination": c}))
	defer srv.Close()
	call := func(method, path string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, body)
		}
		var out map[string]any
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, body)
		}
		return out
	}
	held := func() int { return int(call("GET", "/destination/commands/held")["held"].(float64)) }
	awaitHeld := func(n int) {
		t.Helper()
		deadline := time.Now().Add(time.Minute) // a bound for a broken hold, not a timing
		for held() != n {
			if time.Now().After(deadline) {
				t.Fatalf("%d commands held, want %d", held(), n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ctx := context.Background()
	db := routerClient(t, c).Database("app")
	if err := db.CreateCollection(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	createIndex := func(name string) error {
		return db.RunCommand(ctx, bson.D{{Key: "createIndexes", Value: "big"},
			{Key: "indexes", Value: bson.A{bson.D{{Key: "key", Value: bson.D{{Key: name, Value: 1}}}, {Key: "name", Value: name + "_1"}}}}}).Err()
	}
	indexNames := func() []string {
		t.Helper()
		specs, err := db.Collection("big").Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range specs {
			names = append(names, s.Name)
		}
		return names
	}

	call("POST", "/destination/commands/hold?command=createIndexes&ns=app.big&value=dba_1")
	done := make(chan error, 1)
	go func() { done <- createIndex("dba") }()
	awaitHeld(1)
	if out := call("GET", "/destination/commands/held"); !strings.Contains(out["commands"].([]any)[0].(map[string]any)["body"].(string), "dba_1") {
		t.Errorf("the held command shows as %v, want its body", out)
	}
	// Another index of the collection and another command are not held.
	if err := createIndex("other"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Collection("big").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(indexNames(), ","), "dba_1") {
		t.Fatal("the held index build acted before its release")
	}
	if out := call("POST", "/destination/commands/release?abort=true"); out["released"].(float64) != 1 {
		t.Errorf("release answered %v, want 1 released", out)
	}
	var ce mongo.CommandError
	if err := <-done; !errors.As(err, &ce) || ce.Code != 11601 {
		t.Fatalf("the aborted build answered %v, want Interrupted (11601)", err)
	}
	if names := indexNames(); strings.Contains(strings.Join(names, ","), "dba_1") {
		t.Errorf("the aborted build left dba_1: %v", names)
	}

	call("POST", "/destination/commands/hold?command=createindexes&ns=app")
	go func() { done <- createIndex("dba") }()
	awaitHeld(1)
	call("POST", "/destination/commands/release")
	if err := <-done; err != nil {
		t.Fatalf("the released build: %v", err)
	}
	if names := indexNames(); !strings.Contains(strings.Join(names, ","), "dba_1") {
		t.Errorf("the released build did not build dba_1: %v", names)
	}
	if held() != 0 {
		t.Errorf("%d commands held after the release", held())
	}
	// A hold after the release is a new one: a command arriving now runs at once.
	if err := createIndex("late"); err != nil {
		t.Fatal(err)
	}

	// A rename is held by its source's database and its target (as $out's rename of
	// its temporary collection over the report); a held command ends at its maxTimeMS.
	if err := db.CreateCollection(ctx, "tmp.agg_out.1"); err != nil {
		t.Fatal(err)
	}
	call("POST", "/destination/commands/hold?command=renameCollection&ns=app&value=app.report")
	admin := db.Client().Database("admin")
	rename := bson.D{{Key: "renameCollection", Value: "app.tmp.agg_out.1"}, {Key: "to", Value: "app.report"}, {Key: "dropTarget", Value: true}}
	go func() { done <- admin.RunCommand(ctx, rename).Err() }()
	awaitHeld(1)
	if err := admin.RunCommand(ctx, append(rename, bson.E{Key: "maxTimeMS", Value: 100})).Err(); !errors.As(err, &ce) || ce.Code != 50 {
		t.Errorf("a held rename with maxTimeMS 100 answered %v, want MaxTimeMSExpired (50)", err)
	}
	call("POST", "/destination/commands/release")
	if err := <-done; err != nil {
		t.Fatalf("the released rename: %v", err)
	}
	if names, err := db.ListCollectionNames(ctx, bson.D{{Key: "name", Value: "report"}}); err != nil || len(names) != 1 {
		t.Errorf("after the released rename: %v %v, want app.report", names, err)
	}
}
