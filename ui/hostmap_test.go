package ui

import (
	"errors"
	"reflect"
	"testing"

	"fyne.io/fyne/v2/test"
)

// The Shard addresses table appears once a validation listed the source's shard
// members, says which name could not be resolved and what to do, refuses an
// address that is not host:port, and the addresses typed go to both connections.
func TestShardAddressesAreFilledByValidationAndSentWithTheConnections(t *testing.T) {
	const private = "src-shard0.cluster.internal:27018"
	b := &fakeBackend{validation: Validation{
		Checks: []Check{{Status: Failed, Title: "Every shard member is reachable", Detail: "src-shard0.cluster.internal does not resolve"}},
		ShardHosts: []ShardHost{
			{Shard: "shard0", Host: private, Problem: private + ": the host name does not resolve"},
			{Shard: "shard1", Host: "db3.example:27018"},
		},
	}}
	h := newHarness(t, b)
	fillForms(h)
	h.mustNotShow("Shard addresses")
	h.tap("Validate")
	h.mustShow("Shard addresses")
	h.mustShow("(shard shard0)")
	h.mustShow("the host name does not resolve. If this name resolves only inside the cluster's network, give the address this workstation reaches it at.")
	e := h.a.forms.hosts.fields[private]
	if e == nil {
		t.Fatalf("no row for %s", private)
	}
	test.Type(e, "10.0.0.5")
	h.mustShow(`"10.0.0.5" is not host:port`)
	if !h.button("Validate").Disabled() {
		t.Fatal("Validate is open with an address that is not host:port")
	}
	test.Type(e, ":27018")
	h.mustNotShow("is not host:port")
	h.mustNotShow("the host name does not resolve") // the new address is not checked yet
	h.tap("Validate")
	want := map[string]string{private: "10.0.0.5:27018"}
	if got := b.validated[1]; !reflect.DeepEqual(got[0].HostMap, want) || !reflect.DeepEqual(got[1].HostMap, want) {
		t.Fatalf("validated with host maps %v and %v, want %v on both", got[0].HostMap, got[1].HostMap, want)
	}
	if h.a.forms.hosts.fields[private].Text != "10.0.0.5:27018" {
		t.Fatal("validating again lost the address typed")
	}
}

// A host map the backend refuses is shown under the table, which gets the focus.
func TestHostMapErrorIsShownUnderTheTable(t *testing.T) {
	b := &fakeBackend{validation: Validation{ShardHosts: []ShardHost{{Shard: "shard0", Host: "a.internal:27018"}}}}
	h := newHarness(t, b)
	fillForms(h)
	h.tap("Validate")
	b.validateErr = &FieldError{Field: FieldHostMap, Err: errors.New("a.internal:27018 is mapped twice")}
	test.Type(h.a.forms.hosts.fields["a.internal:27018"], "10.0.0.9:27018")
	h.tap("Validate")
	h.mustShow("The checks could not run: check the source shard addresses: a.internal:27018 is mapped twice")
	if !h.a.forms.hosts.problem.Visible() {
		t.Fatal("the table does not show the problem")
	}
	if h.a.win.Canvas().Focused() != h.a.forms.hosts.fields["a.internal:27018"] {
		t.Fatal("the table's row does not have the focus")
	}
}

// A migration's connections carrying a host map (the sandbox's) fill the table.
func TestConnectionsWithAHostMapFillTheTable(t *testing.T) {
	h := newHarness(t, &fakeBackend{})
	h.a.showConnect("")
	h.a.forms.src.fill(Connection{Hosts: "127.0.0.1:40001", HostMap: map[string]string{"s0.sandbox.invalid:27018": "127.0.0.1:40002"}})
	h.mustShow("Shard addresses")
	if got := h.a.forms.dst.connection().HostMap; got["s0.sandbox.invalid:27018"] != "127.0.0.1:40002" {
		t.Fatalf("the destination's connection carries %v", got)
	}
	h.a.forms.reset()
	h.mustNotShow("Shard addresses")
}
