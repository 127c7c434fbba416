package sandbox

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
)

// movePrimary logs on the new primary a create under a new UUID and the cloned
// documents fromMigrate, and on the old primary a drop under the old UUID; neither
// DDL is marked fromMigrate. The collection reads the same through the router.
func TestMovePrimaryLogsACreateAndADropUnderTwoUUIDs(t *testing.T) {
	c := startCluster(t, Options{})
	cl := routerClient(t, c)
	ctx := context.Background()
	app := cl.Database("app")
	if _, err := app.Collection("c").InsertMany(ctx, []any{bson.D{{Key: "_id", Value: 1}}, bson.D{{Key: "_id", Value: 2}}}); err != nil {
		t.Fatal(err)
	}
	old := primaryShard(t, c, cl, "app")
	var oldName, newName string
	var d struct{ Primary string }
	if err := cl.Database("config").Collection("databases").FindOne(ctx, bson.D{{Key: "_id", Value: "app"}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	oldName = d.Primary
	for _, s := range c.Shards() {
		if s.Name != oldName {
			newName = s.Name
		}
	}
	run(t, cl, "admin", bson.D{{Key: "movePrimary", Value: "app"}, {Key: "to", Value: newName}})
	now := primaryShard(t, c, cl, "app")
	if got := findAll(t, app.Collection("c"), bson.D{}); len(got) != 2 {
		t.Fatalf("after movePrimary the router reads %d documents, want 2", len(got))
	}
	if _, err := app.Collection("c").InsertOne(ctx, bson.D{{Key: "_id", Value: 3}}); err != nil {
		t.Fatal(err)
	}
	var created, oldUUID bson.RawValue
	clones := 0
	for _, e := range oplog(t, now, "") {
		switch {
		case str(e.Lookup("ns")) == "app.$cmd" && str(e.Lookup("o", "create")) == "c":
			created = e.Lookup("ui")
			if e.Lookup("fromMigrate").Type != 0 {
				t.Errorf("the new primary's create is marked fromMigrate: %s", e)
			}
		case str(e.Lookup("ns")) == "app.c" && str(e.Lookup("op")) == "i":
			if e.Lookup("fromMigrate").Type != 0 {
				clones++
			}
		}
	}
	dropped := false
	for _, e := range oplog(t, old, "") {
		if str(e.Lookup("ns")) == "app.c" && oldUUID.Type == 0 {
			oldUUID = e.Lookup("ui")
		}
		if str(e.Lookup("ns")) == "app.$cmd" && str(e.Lookup("o", "drop")) == "c" {
			dropped = true
			if !e.Lookup("ui").Equal(oldUUID) || e.Lookup("fromMigrate").Type != 0 {
				t.Errorf("the old primary's drop %s: want the old UUID %v, not fromMigrate", e, oldUUID)
			}
		}
	}
	if created.Type == 0 || created.Equal(oldUUID) || clones != 2 || !dropped {
		t.Fatalf("new primary: create ui %v (old %v), %d cloned documents fromMigrate; old primary dropped: %v", created, oldUUID, clones, dropped)
	}
	if old == now {
		t.Fatal("the primary did not change")
	}
}
