package ui

import (
	"errors"
	"reflect"
	"testing"
)

// The Read each shard from table appears once a validation listed the source's
// shards, one row per shard (not per member), each "as the cluster default" until
// another mode is chosen; the choices go with the source's connection only, and
// choosing the default again drops the shard's.
func TestEachShardsReadPreferenceIsChosenInTheTableFilledByValidation(t *testing.T) {
	b := &fakeBackend{validation: Validation{ShardHosts: []ShardHost{
		{Shard: "shard0", Host: "a0:27018"}, {Shard: "shard0", Host: "b0:27018"}, {Shard: "shard1", Host: "a1:27018"},
	}}}
	h := newHarness(t, b)
	fillForms(h)
	h.mustNotShow("Read each shard from")
	h.tap("Validate")
	h.mustShow("Read each shard from")
	h.mustShow("shard shard0")
	h.mustShow("shard shard1")
	r := h.a.forms.reads
	if len(r.selects) != 2 {
		t.Fatalf("%d rows, want one per shard", len(r.selects))
	}
	for name, sel := range r.selects {
		if sel.Selected != shardReadDefault {
			t.Errorf("shard %s starts at %q, want %q", name, sel.Selected, shardReadDefault)
		}
	}
	if got := h.a.forms.src.connection().ShardReadPreferences; got != nil {
		t.Fatalf("the defaults send %v, want none", got)
	}
	r.selects["shard1"].SetSelected("primary")
	r.selects["shard0"].SetSelected("secondary")
	h.tap("Validate")
	want := map[string]string{"shard0": "secondary", "shard1": "primary"}
	if got := b.validated[1]; !reflect.DeepEqual(got[0].ShardReadPreferences, want) || got[1].ShardReadPreferences != nil {
		t.Fatalf("validated with %v (source) and %v (destination), want %v on the source only", got[0].ShardReadPreferences, got[1].ShardReadPreferences, want)
	}
	if h.a.forms.reads.selects["shard1"].Selected != "primary" {
		t.Fatal("validating again lost the choice")
	}
	h.a.forms.reads.selects["shard0"].SetSelected(shardReadDefault)
	if got := h.a.forms.src.connection().ShardReadPreferences; !reflect.DeepEqual(got, map[string]string{"shard1": "primary"}) {
		t.Fatalf("after choosing the default for shard0: %v", got)
	}
}

// A connection carrying shards' own preferences (a resumed migration's, tags
// included) fills the table and goes out as it came; a shard the validation does
// not list says so and what to do; reset empties the table.
func TestConnectionWithShardReadPreferencesFillsTheTable(t *testing.T) {
	b := &fakeBackend{validation: Validation{ShardHosts: []ShardHost{{Shard: "shard0", Host: "a0:27018"}}}}
	h := newHarness(t, b)
	h.a.showConnect("")
	given := map[string]string{"shard0": "secondary;dc:west", "shard9": "primary"}
	h.a.forms.src.fill(Connection{Hosts: "db1:27017", ShardReadPreferences: given})
	h.a.forms.dst.fill(Connection{Hosts: "db2:27017"})
	h.mustShow("Read each shard from")
	if got := h.a.forms.reads.selects["shard0"].Selected; got != "secondary;dc:west" {
		t.Fatalf("shard0 shows %q", got)
	}
	if got := h.a.forms.src.connection().ShardReadPreferences; !reflect.DeepEqual(got, given) {
		t.Fatalf("the source's connection carries %v, want %v", got, given)
	}
	h.tap("Validate")
	h.mustShow(`The source has no shard shard9 (validation listed shard0): choose "as the cluster default" to drop this row.`)
	h.a.forms.reset()
	h.mustNotShow("Read each shard from")
}

// A choice the backend refuses is shown under the table, which gets the focus.
func TestShardReadPreferenceErrorIsShownUnderTheTable(t *testing.T) {
	b := &fakeBackend{validation: Validation{ShardHosts: []ShardHost{{Shard: "shard0", Host: "a0:27018"}}}}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	b.validateErr = &FieldError{Field: FieldShardReadPreferences, Err: errors.New("shard shard0: maxStalenessSeconds=30: MongoDB needs at least 90")}
	h.a.forms.reads.selects["shard0"].SetSelected("secondary")
	h.tap("Validate")
	h.mustShow("maxStalenessSeconds=30: MongoDB needs at least 90")
	if !h.a.forms.reads.problem.Visible() {
		t.Fatal("the table does not show the problem")
	}
	if h.a.win.Canvas().Focused() != h.a.forms.reads.selects["shard0"] {
		t.Fatal("the table's row does not have the focus")
	}
}
