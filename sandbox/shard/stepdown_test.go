package shard

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// After a stepdown the most advanced secondary is primary in a new term, it holds
// every write, and a replica set client follows it.
func TestStepDownHandsOverToACaughtUpSecondary(t *testing.T) {
	f := startFront(t, Config{Members: 3})
	c := connectSet(t, f)
	ctx := context.Background()
	coll := c.Database("app").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	// Both secondaries held: the new primary catches up with the second insert first.
	if err := f.SetLag(-1, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	rep, err := f.StepDown(false)
	if err != nil {
		t.Fatal(err)
	}
	addrs := f.MemberAddrs()
	if rep.OldPrimary != addrs[0] || rep.Term != 2 {
		t.Errorf("stepdown report %+v: want the old primary %s, term 2", rep, addrs[0])
	}
	if rep.NewPrimary == addrs[0] || rep.CaughtUp < 1 {
		t.Errorf("stepdown report %+v: want a secondary, after catching up", rep)
	}
	if err := f.SetLag(-1, 0); err != nil {
		t.Fatal(err)
	}
	// The driver finds the new primary through hello (retryable writes retry a "not
	// primary" once there).
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 3}}); err != nil {
		t.Fatalf("insert after the stepdown: %v", err)
	}
	p := connectMember(t, f, slices.Index(addrs, rep.NewPrimary))
	if h := helloOf(t, p); !h.Lookup("isWritablePrimary").Boolean() {
		t.Fatalf("the new primary says: %s", h)
	}
	if got := docsOf(t, p, "app", "c", nil); len(got) != 3 {
		t.Errorf("the new primary holds %v, want 3 documents", got)
	}
	var last struct {
		T int64 `bson:"t"`
	}
	if err := oplogColl(p).FindOne(ctx, bson.D{{Key: "op", Value: "i"}}, options.FindOne().SetSort(bson.D{{Key: "$natural", Value: -1}})).Decode(&last); err != nil || last.T != 2 {
		t.Errorf("the new primary's insert has term %d (%v), want 2", last.T, err)
	}
	// The old primary replicates from the new one.
	old := connectMember(t, f, 0)
	end := lastTS(t, p)
	waitFor(t, "the old primary to apply the new one's entries", func() bool { return lastTS(t, old) == end })
	if got := docsOf(t, old, "app", "c", nil); len(got) != 3 {
		t.Errorf("the old primary holds %v, want 3 documents", got)
	}
}

// A stepdown with rollback loses what the secondaries had not applied: the old
// primary's later entries leave its oplog and their changes leave its data.
func TestStepDownRollsBackUnreplicatedWrites(t *testing.T) {
	f := startFront(t, Config{Members: 3})
	old := connectMember(t, f, 0)
	ctx := context.Background()
	coll := old.Database("app").Collection("c")
	for i := 1; i <= 3; i++ {
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "v", Value: "kept"}}); err != nil {
			t.Fatal(err)
		}
	}
	common := lastTS(t, old)
	for i := 1; i < 3; i++ {
		s := connectMember(t, f, i)
		waitFor(t, "the secondaries to apply the first writes", func() bool { return lastTS(t, s) == common })
	}
	kept := docsOf(t, old, "app", "c", nil)
	if err := f.SetLag(-1, -1); err != nil {
		t.Fatal(err)
	}
	// Writes only the old primary takes: an insert, an update, a delete.
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 4}, {Key: "v", Value: "lost"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "$set", Value: bson.D{{Key: "v", Value: "lost"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	rep, err := f.StepDown(true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.RolledBack != 3 || rep.Refetched != 3 || rep.CommonPoint != common {
		t.Errorf("rollback report %+v: want 3 entries and 3 documents rolled back to %v", rep, common)
	}
	if got := docsOf(t, old, "app", "c", nil); !slices.Equal(got, kept) {
		t.Errorf("the old primary holds after the rollback\n%v\nwant\n%v", got, kept)
	}
	if got := entriesAfter(t, old, common); len(got) != 0 {
		t.Errorf("the old primary's oplog still has entries past the common point: %v", got)
	}
	// Its rollback id moved on, as a client that resumes there checks.
	rbid, err := old.Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetRBID", Value: 1}}).Raw()
	if err != nil || rbid.Lookup("rbid").Int32() != 2 {
		t.Errorf("replSetGetRBID on the rolled-back member: %s (%v), want rbid 2", rbid, err)
	}
	// Replication resumes, from the new primary, onto the rolled-back member.
	if err := f.SetLag(-1, 0); err != nil {
		t.Fatal(err)
	}
	newPrimary := connectMember(t, f, slices.Index(f.MemberAddrs(), rep.NewPrimary))
	if _, err := newPrimary.Database("app").Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 5}}); err != nil {
		t.Fatal(err)
	}
	end := lastTS(t, newPrimary)
	waitFor(t, "the old primary to follow the new one", func() bool { return lastTS(t, old) == end })
	if got, want := docsOf(t, old, "app", "c", nil), docsOf(t, newPrimary, "app", "c", nil); !slices.Equal(got, want) {
		t.Errorf("the old primary holds\n%v\nthe new one\n%v", got, want)
	}
}

// A rollback of DDL is refused before anything changes.
func TestStepDownRefusesToRollBackDDL(t *testing.T) {
	f := startFront(t, Config{Members: 2})
	old := connectMember(t, f, 0)
	if err := f.SetLag(1, -1); err != nil {
		t.Fatal(err)
	}
	if err := old.Database("app").CreateCollection(context.Background(), "new"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.StepDown(true); err == nil {
		t.Fatal("a rollback over a create succeeded")
	}
	if h := helloOf(t, old); !h.Lookup("isWritablePrimary").Boolean() {
		t.Errorf("the refused stepdown changed the primary: %s", h)
	}
}

// A retryable write's prevOpTime is the optime of the session's previous entry, its
// term included, as config.transactions' lastWriteOpTime is: after a stepdown the
// chain links entries of the old term and of the new one.
func TestSessionLinksCarryTheTermsOfTheirEntries(t *testing.T) {
	f := startFront(t, Config{Members: 2})
	c := connectSet(t, f)
	ctx := context.Background()
	db := c.Database("app")
	if err := db.CreateCollection(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	insert := func(ctx context.Context, id int) bson.Raw {
		t.Helper()
		cmd := bson.D{{Key: "insert", Value: "r"}, {Key: "documents", Value: bson.A{bson.D{{Key: "_id", Value: id}}}},
			{Key: "txnNumber", Value: int64(7)}, {Key: "stmtId", Value: int32(id)}}
		var err error
		// The first write after the stepdown may reach the old primary, which refuses
		// it ("not primary") until the driver has seen the new one.
		waitFor(t, "the write taken", func() bool { err = db.RunCommand(ctx, cmd).Err(); return err == nil })
		p := connectMember(t, f, slices.Index(f.MemberAddrs(), primaryAddr(t, f)))
		var e bson.Raw
		if err := oplogColl(p).FindOne(context.Background(), bson.D{{Key: "o._id", Value: id}}).Decode(&e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	opTime := func(e bson.Raw, key string) string {
		if key != "" {
			e = e.Lookup(key).Document()
		}
		return fmt.Sprintf("%v/%d", e.Lookup("ts"), e.Lookup("t").Int64())
	}
	inSession(t, c, func(ctx context.Context) {
		first := insert(ctx, 0)
		if _, err := f.StepDown(false); err != nil {
			t.Fatal(err)
		}
		second := insert(ctx, 1)
		third := insert(ctx, 2)
		if got, want := opTime(second, "prevOpTime"), opTime(first, ""); got != want {
			t.Errorf("the first entry of the new term links to %s, want the previous entry %s (term 1)", got, want)
		}
		if got, want := opTime(third, "prevOpTime"), opTime(second, ""); got != want {
			t.Errorf("the next entry links to %s, want %s (term 2)", got, want)
		}
	})
}

// primaryAddr is the address of the set's primary.
func primaryAddr(t *testing.T, f *Front) string {
	t.Helper()
	ms, err := f.Members()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.State == "PRIMARY" {
			return m.Addr
		}
	}
	t.Fatal("no primary")
	return ""
}

// A member's rollback id counts the rollbacks it went through, and, as a real
// server's (local.system.rollback.id), it survives a restart: a client that checks it
// after the restart must not take the member for one that never rolled back.
func TestRollbackIDSurvivesARestart(t *testing.T) {
	cfg := Config{Name: "test-shard0", Dir: t.TempDir(), Members: 2}
	f, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	client := connectSet(t, f)
	coll := client.Database("app").Collection("c")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the secondary to apply the insert", func() bool {
		ms, _ := f.Members()
		return len(ms) == 2 && ms[0].Applied.TS == ms[1].Applied.TS
	})
	if err := f.SetLag(-1, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 2}}); err != nil {
		t.Fatal(err)
	}
	rep, err := f.StepDown(true)
	if err != nil || rep.RolledBack != 1 {
		t.Fatalf("stepdown %+v, %v: want one entry rolled back", rep, err)
	}
	old := slices.Index(f.MemberAddrs(), rep.OldPrimary)
	client.Disconnect(ctx) // its monitors would otherwise hold the restarted members' connections
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f = startFront(t, cfg)
	for i, want := range map[int]int32{old: 2, 1 - old: 1} {
		rbid, err := connectMember(t, f, i).Database("admin").RunCommand(ctx, bson.D{{Key: "replSetGetRBID", Value: 1}}).Raw()
		if err != nil || rbid.Lookup("rbid").Int32() != want {
			t.Errorf("member %d after the restart: replSetGetRBID %s (%v), want rbid %d", i, rbid, err, want)
		}
	}
}
