package validate

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/shardlift/shardlift/engine/topology"
)

// destinationNeed is one privilege the migration uses on the destination, on some
// resources, and the built-in role that grants it.
type destinationNeed struct {
	actions []string
	// any is an alternative set of privileges that also allows the operation
	// (MongoDB's zone commands take either).
	any     []topology.Privilege
	on      []topology.Resource
	purpose string // what the migration runs with it
	role    string // the built-in role that grants it
}

// Built-in roles, as MongoDB's builtin_roles.yml grants the actions the migration
// uses on the destination.
const (
	roleReadWrite = "readWriteAnyDatabase"
	roleDBAdmin   = "dbAdminAnyDatabase"
	roleManager   = "clusterManager (part of clusterAdmin)"
	roleAdmin     = "clusterAdmin or dbAdminAnyDatabase"
	roleAtlas     = "atlasAdmin"
)

// destinationNeeds lists what Prepare, the copy, the replay, the restore at the end
// and a wipe of the destination run there, for the source's databases and
// collections: enableSharding and shardCollection, split, moveChunk and movePrimary,
// the balancer commands, zones, collection and index builds, collMod, the writes
// (which bypass document validation), and dropDatabase when the destination holds
// data to wipe.
func destinationNeeds(src, dst *topology.Cluster) []destinationNeed {
	var dbs, colls, sharded, wipe []topology.Resource
	seenDB := map[string]bool{}
	addDB := func(db string) {
		if !seenDB[db] && db != "admin" && db != "config" && db != "local" {
			seenDB[db] = true
			dbs = append(dbs, topology.DatabaseResource(db))
		}
	}
	for _, d := range src.Databases {
		addDB(d.Name)
	}
	isSharded := map[string]bool{}
	for _, c := range src.Collections {
		isSharded[c.Namespace] = true
	}
	for _, ns := range src.Namespaces {
		addDB(ns.DB)
		r := topology.CollectionResource(ns.DB, ns.Collection)
		colls = append(colls, r)
		if isSharded[ns.Name()] {
			sharded = append(sharded, r)
		}
	}
	// A wipe drops the databases holding collections and those only config.databases
	// still knows (prepare.Wipe).
	held := map[string]bool{"admin": true, "config": true, "local": true}
	hold := func(db string) {
		if !held[db] {
			held[db] = true
			wipe = append(wipe, topology.DatabaseResource(db))
		}
	}
	for _, ns := range dst.Namespaces {
		hold(ns.DB)
	}
	for _, d := range dst.Databases {
		hold(d.Name)
	}
	config := func(coll string) topology.Resource { return topology.CollectionResource("config", coll) }
	cluster := []topology.Resource{topology.ClusterResource}
	return []destinationNeed{
		{actions: []string{"listDatabases"}, on: cluster, purpose: "listing the destination's databases", role: roleReadWrite},
		{actions: []string{"find"}, on: []topology.Resource{config("databases"), config("collections"), config("chunks")},
			purpose: "reading where databases and chunks are", role: roleManager},
		{actions: []string{"find", "update"}, on: []topology.Resource{config("settings")}, purpose: "balancerStop and balancerStart", role: roleManager},
		{actions: []string{"enableSharding"}, on: slices.Concat(dbs, sharded), purpose: "enableSharding and shardCollection", role: roleManager},
		{actions: []string{"moveChunk"}, on: slices.Concat(dbs, sharded), purpose: "movePrimary and moveChunk (moveRange)", role: roleManager},
		{actions: []string{"splitChunk"}, on: sharded, purpose: "split", role: roleManager},
		{actions: []string{"enableSharding"}, on: cluster,
			any:     []topology.Privilege{{Resource: config("shards"), Actions: []string{"update", "find"}}, {Resource: config("tags"), Actions: []string{"find", "update", "remove"}}},
			purpose: "addShardToZone and updateZoneKeyRange", role: roleManager},
		{actions: []string{"createCollection", "createIndex", "dropCollection", "dropIndex", "renameCollectionSameDB"}, on: colls,
			purpose: "creating collections and indexes, and replaying DDL", role: roleReadWrite},
		{actions: []string{"find", "insert", "update", "remove"}, on: colls, purpose: "the copy's and the replay's writes", role: roleReadWrite},
		{actions: []string{"bypassDocumentValidation"}, on: colls, purpose: "writing documents as the source holds them, whatever the validator", role: roleDBAdmin},
		{actions: []string{"collMod"}, on: colls, purpose: "restoring unique and TTL indexes at the end, and replaying collMod", role: roleDBAdmin},
		{actions: []string{"dropDatabase"}, on: wipe, purpose: "wiping what the destination holds", role: roleAdmin},
	}
}

// allowed reports whether a grants every action of the need on r, or holds its
// alternative.
func (n destinationNeed) allowed(a topology.Access, r topology.Resource) bool {
	if a.Allows(r, n.actions...) {
		return true
	}
	if len(n.any) == 0 {
		return false
	}
	for _, p := range n.any {
		if !a.Allows(p.Resource, p.Actions...) {
			return false
		}
	}
	return true
}

// onAtlas reports whether a cluster is a MongoDB Atlas cluster, by its host names.
func onAtlas(cl *topology.Cluster) bool {
	for _, h := range []string{cl.Endpoint, cl.Router.Host} {
		if strings.Contains(strings.ToLower(h), ".mongodb.net") {
			return true
		}
	}
	return false
}

// destinationPrivileges checks, before anything changes, that the destination user
// may run everything Prepare, the copy, the replay and the end of the migration
// run there (connectionStatus with showPrivileges), and names the built-in role
// that grants each missing action.
func (c *checker) destinationPrivileges() {
	const id, title = IDDestPrivileges, "Destination user may run everything the migration runs there"
	if c.blocked(id, title, IDSourceSharded, IDDestSharded) {
		return
	}
	dst := c.in.Destination
	a := dst.Access
	switch {
	case !a.Known:
		var errs []string
		for _, p := range dst.ProblemsWith(topology.PartAccess) {
			errs = append(errs, p.Error())
		}
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the user's privileges could not be read: " + list(errs),
			Fix: "Check that connectionStatus works for this user on the destination mongos."})
		return
	case !enforced(a):
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "the destination does not enforce authentication, so every operation is allowed"})
		return
	}
	var missing []string
	for _, n := range destinationNeeds(c.in.Source, dst) {
		var denied []string
		for _, r := range n.on {
			if !n.allowed(a, r) {
				denied = append(denied, r.String())
			}
		}
		if len(denied) == 0 {
			continue
		}
		sort.Strings(denied)
		// The resources joined by commas: list joins the needs themselves by "; ".
		on := strings.ReplaceAll(list(denied), "; ", ", ")
		missing = append(missing, fmt.Sprintf("%s on %s, for %s (granted by %s)", strings.Join(n.actions, ", "), on, n.purpose, n.role))
	}
	if len(missing) == 0 {
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: fmt.Sprintf("%s may run every command the migration runs on the destination (checked before anything is changed)", strings.Join(a.Users, ", "))})
		return
	}
	fix := "Grant the destination user, on the admin database, the roles named above: readWriteAnyDatabase, dbAdminAnyDatabase and clusterAdmin cover all of them."
	if onAtlas(dst) {
		fix = "In Atlas (Database Access), give the destination user the built-in role Atlas admin (" + roleAtlas + "), which grants all of them."
	}
	c.add(Finding{ID: id, Status: Failed, Title: title,
		// Every need named: there are a dozen at most, and each says what to grant.
		Detail: fmt.Sprintf("%s may not run what the migration needs on the destination (nothing was changed): %s", strings.Join(a.Users, ", "), strings.Join(missing, "; ")),
		Fix:    fix})
}
