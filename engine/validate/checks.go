package validate

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/shardlift/shardlift/engine/namespaces"
	"github.com/shardlift/shardlift/engine/topology"
	"github.com/shardlift/shardlift/internal/units"
)

// Check IDs, in report order.
const (
	IDSourceReachable      = "source.reachable"
	IDSourceSharded        = "source.sharded"
	IDSourceMetadata       = "source.metadata"
	IDSourceConfigServers  = "source.config-servers"
	IDSourceMembers        = "source.members"
	IDSourceReadPreference = "source.read-preference"
	IDSourceReadAccess     = "source.privileges.read"
	IDSourceOplogAccess    = "source.privileges.oplog"
	IDSourceConfigAccess   = "source.privileges.config"
	IDSourceBalancerAccess = "source.privileges.balancer"
	IDDestReachable        = "destination.reachable"
	IDDestSharded          = "destination.sharded"
	IDDestMetadata         = "destination.metadata"
	IDDistinct             = "clusters.distinct"
	IDDestHeld             = "destination.not-held"
	IDShardCount           = "destination.shard-count"
	IDVersion              = "versions.major"
	IDFCV                  = "versions.fcv"
	IDVersionCrossing      = "versions.crossing"
	IDDestEmpty            = "destination.empty"
	IDDestPrivileges       = "destination.privileges"
	IDUsers                = "source.users"
	IDCollectionKinds      = "source.collection-kinds"
	IDZones                = "destination.zones"
	IDOplogWindow          = "source.oplog-window"
)

// Thresholds of the checks.
const (
	// MinMajor is the oldest MongoDB the Go driver (and so Shardlift) can talk to.
	MinMajor = "3.6"
	// OplogSafetyFactor is how many times the estimated copy and index builds a
	// shard's oplog must hold: its replay starts from T0 only once both are over, and
	// the estimate is optimistic. The rate is measured on one collection read alone
	// for a moment, while the copy reads several at once with the applications'
	// load, and the window is the oplog's at today's write rate: a busier hour
	// during the copy (twice the writes halve the window) must not roll T0 off.
	OplogSafetyFactor = 2
)

// migratedKinds are the listCollections types Shardlift migrates; any other kind is
// reported by IDCollectionKinds.
var migratedKinds = map[string]bool{"collection": true, "view": true}

// Check judges what discovery found; it does no I/O. Every check yields exactly one
// finding, in the order of the ID constants.
func Check(in Input) []Finding {
	c := &checker{in: in, status: map[string]Status{}, rootCause: map[string]string{}}
	c.reachable(IDSourceReachable, "Source reachable", "source", in.Source, in.SourceErr)
	c.sharded(IDSourceSharded, "Source is a sharded cluster", "source", IDSourceReachable, in.Source)
	c.metadata(IDSourceMetadata, "Source sharding metadata readable", IDSourceSharded, in.Source, in.SourceErr)
	c.configServers()
	c.members()
	c.readPreference()
	c.readAccess()
	c.oplogAccess()
	c.configAccess()
	c.balancerAccess()
	c.reachable(IDDestReachable, "Destination reachable", "destination", in.Destination, in.DestinationErr)
	c.sharded(IDDestSharded, "Destination is a sharded cluster", "destination", IDDestReachable, in.Destination)
	c.metadata(IDDestMetadata, "Destination sharding metadata readable", IDDestSharded, in.Destination, in.DestinationErr)
	c.distinct()
	c.notHeld()
	c.shardCount()
	c.versions()
	c.fcv()
	c.crossing()
	c.destinationEmpty()
	c.destinationPrivileges()
	c.users()
	c.manualMoves()
	c.collectionKinds()
	c.collations()
	c.zones()
	c.oplogWindow()
	return c.out
}

type checker struct {
	in     Input
	out    []Finding
	status map[string]Status
	// rootCause is, for a failed or not-run check, the title of the failed check behind it.
	rootCause map[string]string
}

func (c *checker) add(f Finding) {
	if f.Status == Passed {
		f.Fix = ""
	}
	c.out = append(c.out, f)
	c.status[f.ID] = f.Status
	if f.Status == Failed {
		c.rootCause[f.ID] = f.Title
	}
}

// blocked adds a "not run" finding and reports true when one of deps did not pass
// (a warning counts as passed). The finding names the check that failed first, not
// the chain of checks that were not run because of it.
func (c *checker) blocked(id, title string, deps ...string) bool {
	for _, dep := range deps {
		if s := c.status[dep]; s == Failed || s == NotRun {
			root := c.rootCause[dep]
			c.rootCause[id] = root
			c.add(Finding{ID: id, Status: NotRun, Title: title,
				Detail: fmt.Sprintf("not run because %q failed", root),
				Fix:    fmt.Sprintf("Fix %q first, then validate again.", root)})
			return true
		}
	}
	return false
}

// fixOf is the classified fix of err, or fallback.
func fixOf(err error, fallback string) string {
	if f := topology.Fix(err); f != "" {
		return f
	}
	return fallback
}

// brief is an error in a few words: a classified error's kind, else its text.
func brief(err error) string {
	var e *topology.Error
	if errors.As(err, &e) {
		return e.Kind.Error()
	}
	return err.Error()
}

// joinFixes lists distinct fixes in order.
func joinFixes(fixes []string) string {
	seen := map[string]bool{}
	var out []string
	for _, f := range fixes {
		if f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	return strings.Join(out, " ")
}

// list shows at most a few items and how many more there are.
func list(items []string) string {
	const most = 6
	if len(items) <= most {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:most], "; ") + fmt.Sprintf("; and %d more", len(items)-most)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// loginFixes say what to check when a side refused the login: the source's user
// must exist on every shard as well, the destination's is the destination's own.
var loginFixes = map[string]string{
	"source": "Check the source user name and password and where the user is defined (authSource, admin unless the connection string says otherwise). " +
		"Shardlift logs in to each source shard and config server with this user: it must exist with the same password on every shard and on the config server replica set.",
	"destination": "Check the destination user name and password: they are a user of the destination cluster (on Atlas, a database user from Database Access), " +
		"often not the source's, defined on admin unless the connection string gives another authSource, with readWriteAnyDatabase and clusterAdmin (atlasAdmin on Atlas).",
}

func (c *checker) reachable(id, title, side string, cl *topology.Cluster, err error) {
	if cl == nil {
		if err == nil {
			err = errors.New("discovery returned neither a cluster nor an error")
		}
		f := Finding{ID: id, Status: Failed, Title: title, Detail: err.Error(),
			Fix: fixOf(err, "Check the "+side+" connection string, the network path from this workstation and the credentials.")}
		if errors.Is(err, topology.ErrAuthFailed) {
			f.Detail = "the " + side + " cluster refused the login: " + f.Detail
			f.Fix = loginFixes[side]
		}
		c.add(f)
		return
	}
	who := "without authentication"
	if len(cl.Access.Users) > 0 {
		who = "as " + strings.Join(cl.Access.Users, ", ")
	}
	c.add(Finding{ID: id, Status: Passed, Title: title,
		Detail: fmt.Sprintf("connected to %s %s at %s %s", cl.Kind, cl.Router.Version, cl.Router.Host, who)})
}

func (c *checker) sharded(id, title, side, dep string, cl *topology.Cluster) {
	if c.blocked(id, title, dep) {
		return
	}
	switch cl.Kind {
	case topology.KindMongos:
		c.add(Finding{ID: id, Status: Passed, Title: title,
			Detail: fmt.Sprintf("a mongos of a sharded cluster with %s", plural(len(cl.Shards), "shard", "shards"))})
	case topology.KindReplicaSet:
		f := Finding{ID: id, Status: Failed, Title: title,
			Detail: fmt.Sprintf("the %s is a replica set (%s), not a sharded cluster", side, cl.SetName)}
		if side == "source" {
			f.Fix = "Migrate it as a replica set first (a replica-set live migration into a replica set), then scale that cluster to a sharded cluster. If this is a shard of your cluster, give the address of a mongos instead."
		} else {
			f.Fix = "Give the address of the destination cluster's mongos; the destination must be a sharded cluster with as many shards as the source."
		}
		c.add(f)
	default:
		f := Finding{ID: id, Status: Failed, Title: title, Detail: fmt.Sprintf("the %s is a standalone mongod, not a sharded cluster", side)}
		if side == "source" {
			f.Fix = "Convert the standalone to a replica set first, migrate it as a replica set, then scale that cluster to a sharded cluster."
		} else {
			f.Fix = "Give the address of the destination cluster's mongos; the destination must be a sharded cluster with as many shards as the source."
		}
		c.add(f)
	}
}

// criticalParts are the parts of a sharded cluster a migration cannot plan without.
var criticalParts = []string{topology.PartShards, topology.PartConfigServers, topology.PartDatabases,
	topology.PartCollections, topology.PartChunks, topology.PartZones, topology.PartBalancer, topology.PartInventory}

func (c *checker) metadata(id, title, dep string, cl *topology.Cluster, err error) {
	if c.blocked(id, title, dep) {
		return
	}
	var issues, fixes []string
	if err != nil {
		issues = append(issues, err.Error())
		fixes = append(fixes, "Repair the sharding metadata named above (or ask MongoDB support); Shardlift does not migrate metadata it cannot read exactly.")
	}
	for _, part := range criticalParts {
		for _, p := range cl.ProblemsWith(part) {
			issues = append(issues, p.Error())
			fixes = append(fixes, fixOf(p.Err, "Check that the user may run the command named above and that the servers answer."))
		}
	}
	if len(issues) > 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: list(issues), Fix: joinFixes(fixes)})
		return
	}
	chunks, sharded := 0, 0
	for _, coll := range cl.Collections {
		if coll.Sharded() {
			chunks += len(coll.Chunks)
			sharded++
		}
	}
	c.add(Finding{ID: id, Status: Passed, Title: title, Detail: fmt.Sprintf("%s, %s with %s, %s",
		plural(len(cl.Databases), "database", "databases"), plural(sharded, "sharded collection", "sharded collections"),
		plural(chunks, "chunk", "chunks"), plural(len(cl.Namespaces), "collection or view", "collections and views"))})
}

func (c *checker) configServers() {
	const id, title = IDSourceConfigServers, "Source config servers are a replica set (CSRS)"
	if c.blocked(id, title, IDSourceSharded) {
		return
	}
	cs := c.in.Source.ConfigServers
	switch {
	case cs.ConnString == "":
		var errs []string
		for _, p := range c.in.Source.ProblemsWith(topology.PartConfigServers) {
			errs = append(errs, p.Error())
		}
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: "the config server connection string could not be read: " + list(errs),
			Fix:    "Grant the user the clusterAdmin role (serverStatus and getShardMap on mongos need clusterMonitor privileges)."})
	case cs.Legacy:
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: fmt.Sprintf("the config servers %s are legacy mirrored config servers (SCCC), not a replica set", cs.ConnString),
			Fix:    "Convert the config servers to a replica set (MongoDB's \"Upgrade Config Servers to Replica Set\" procedure) before migrating."})
	default:
		c.add(Finding{ID: id, Status: Passed, Title: title,
			Detail: fmt.Sprintf("config server replica set %s with %s", cs.SetName, plural(len(cs.Hosts), "member", "members"))})
	}
}

func (c *checker) members() {
	const id, title = IDSourceMembers, "Every source shard and config server member reachable with the credentials"
	if c.blocked(id, title, IDSourceSharded) {
		return
	}
	src := c.in.Source
	if len(src.Shards) == 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the source's shards are unknown (listShards failed)",
			Fix: "Fix \"Source sharding metadata readable\" first."})
		return
	}
	var issues, fixes []string
	total := 0
	for _, sh := range src.Shards {
		primary := false
		for _, m := range sh.Members {
			total++
			switch {
			case m.Err != nil:
				issues = append(issues, fmt.Sprintf("shard %s member %s: %s", sh.Name, m.Host, brief(m.Err)))
				fixes = append(fixes, fixOf(m.Err, "Check that this workstation can reach every shard member."))
			case sh.SetName != "" && m.SetName != sh.SetName:
				issues = append(issues, fmt.Sprintf("shard %s member %s says it belongs to replica set %q, not %q", sh.Name, m.Host, m.SetName, sh.SetName))
				fixes = append(fixes, "Check that the shard's host names in listShards reach that shard's own members from this workstation (no address translation mixing them up).")
			case m.Primary:
				primary = true
			}
		}
		if !primary {
			issues = append(issues, fmt.Sprintf("shard %s: no member answered as primary", sh.Name))
			fixes = append(fixes, "Check the shard's replica set health (rs.status()): Shardlift reads each shard's oplog from its primary.")
		}
	}
	for _, m := range src.ConfigServers.Members {
		total++
		if m.Err != nil {
			issues = append(issues, fmt.Sprintf("config server %s: %s", m.Host, brief(m.Err)))
			fixes = append(fixes, fixOf(m.Err, "Check that this workstation can reach every config server."))
		}
	}
	if len(issues) > 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: list(issues), Fix: joinFixes(fixes)})
		return
	}
	c.add(Finding{ID: id, Status: Passed, Title: title, Detail: fmt.Sprintf("all %s of %s and the config servers answered and accepted the credentials",
		plural(total, "member", "members"), plural(len(src.Shards), "shard", "shards"))})
}

// enforced reports whether the server checked the user at all: without
// authentication (no user authenticated) every operation is allowed.
func enforced(a topology.Access) bool { return len(a.Users) > 0 }

// routerAccess returns the source router's access, or adds a finding and false when
// it is unknown.
func (c *checker) routerAccess(id, title string) (topology.Access, bool) {
	if c.blocked(id, title, IDSourceSharded) {
		return topology.Access{}, false
	}
	a := c.in.Source.Access
	if !a.Known {
		var errs []string
		for _, p := range c.in.Source.ProblemsWith(topology.PartAccess) {
			errs = append(errs, p.Error())
		}
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the user's privileges could not be read: " + list(errs),
			Fix: "Check that connectionStatus works for this user on the source mongos."})
		return a, false
	}
	if !enforced(a) {
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "the source does not enforce authentication, so every operation is allowed"})
		return a, false
	}
	return a, true
}

// unauthorizedIn lists the problems of the parts that failed for lack of a privilege.
func (c *checker) unauthorizedIn(parts ...string) []string {
	var out []string
	for _, part := range parts {
		for _, p := range c.in.Source.ProblemsWith(part) {
			if topology.IsUnauthorized(p.Err) {
				out = append(out, p.Error())
			}
		}
	}
	return out
}

const grantRoles = "Grant the user the readWriteAnyDatabase and clusterAdmin roles on the admin database (the same user, with the same password, on the cluster, on every shard and on the config server replica set)."

func (c *checker) readAccess() {
	const id, title = IDSourceReadAccess, "User can read every source database"
	a, ok := c.routerAccess(id, title)
	if !ok {
		return
	}
	dbs := map[string]bool{}
	for _, ns := range c.in.Source.Namespaces {
		dbs[ns.DB] = true
	}
	for _, db := range c.in.Source.Databases {
		if namespaces.UserDatabase(db.Name) {
			dbs[db.Name] = true
		}
	}
	var missing []string
	for db := range dbs {
		if !a.Allows(topology.DatabaseResource(db), "find", "listCollections") {
			missing = append(missing, db)
		}
	}
	sort.Strings(missing)
	missing = append(missing, c.unauthorizedIn(topology.PartInventory)...)
	fix := grantRoles
	if shards80 := c.shardsFrom80(); len(shards80) > 0 && !a.Allows(topology.ClusterResource, directShardAction) {
		missing = append(missing, fmt.Sprintf("user data directly on the shards, which MongoDB 8.0 allows only with the directShardOperations role (%s)", list(shards80)))
		fix = grantDirectShardOperations(a) + " " + fix
	}
	if len(missing) > 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the user cannot read: " + list(missing), Fix: fix})
		return
	}
	c.add(Finding{ID: id, Status: Passed, Title: title, Detail: fmt.Sprintf("the user can read every database (%d)", len(dbs))})
}

// directShardAction is the privilege of MongoDB 8.0's directShardOperations role,
// which a shard asks of a client reading user data on it directly (as Shardlift's
// copy and oplog tailing do) rather than through mongos.
const directShardAction = "issueDirectShardOperations"

// shardsFrom80 names the source shards running MongoDB 8.0 or newer.
func (c *checker) shardsFrom80() []string {
	var out []string
	for _, sh := range c.in.Source.Shards {
		for _, m := range sh.Members {
			if m.Err == nil && m.Version != "" && !topology.OlderThan(m.Version, "8.0") {
				out = append(out, sh.Name)
				break
			}
		}
	}
	return out
}

// grantDirectShardOperations says how to grant the role to the user of a.
func grantDirectShardOperations(a topology.Access) string {
	user, db := "USER", "admin"
	if len(a.Users) > 0 {
		if i := strings.LastIndex(a.Users[0], "@"); i > 0 {
			user, db = a.Users[0][:i], a.Users[0][i+1:]
		}
	}
	return fmt.Sprintf("On MongoDB 8.0, grant the source user the directShardOperations role (mongosh on the source mongos: db.getSiblingDB(%q).grantRolesToUser(%q, [{role: \"directShardOperations\", db: \"admin\"}])).", db, user)
}

func (c *checker) oplogAccess() {
	const id, title = IDSourceOplogAccess, "User can read each source shard's oplog"
	if c.blocked(id, title, IDSourceSharded) {
		return
	}
	shards := c.in.Source.Shards
	if len(shards) == 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the source's shards are unknown (listShards failed)", Fix: "Fix \"Source sharding metadata readable\" first."})
		return
	}
	var issues, fixes []string
	for _, sh := range shards {
		switch {
		case sh.Primary == "":
			issues = append(issues, fmt.Sprintf("shard %s: no primary reached, so its oplog could not be checked", sh.Name))
			fixes = append(fixes, "Fix \"Every source shard and config server member reachable with the credentials\" first.")
		case sh.Access.Known && enforced(sh.Access) && !sh.Access.Allows(topology.CollectionResource("local", "oplog.rs"), "find"):
			issues = append(issues, fmt.Sprintf("shard %s: the user may not read local.oplog.rs on %s", sh.Name, sh.Primary))
			fixes = append(fixes, grantRoles)
		case sh.Access.Known && enforced(sh.Access) && !sh.Access.Allows(topology.CollectionResource("config", "transactions"), "find"):
			issues = append(issues, fmt.Sprintf("shard %s: the user may not read config.transactions on %s, where the transactions open when its copy starts are found", sh.Name, sh.Primary))
			fixes = append(fixes, grantRoles)
		case sh.Oplog.Err != nil:
			issues = append(issues, fmt.Sprintf("shard %s: %v", sh.Name, sh.Oplog.Err))
			fixes = append(fixes, fixOf(sh.Oplog.Err, "Check that the shard is a replica set and that the user may read local.oplog.rs on its primary."))
		}
	}
	if len(issues) > 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: list(issues), Fix: joinFixes(fixes)})
		return
	}
	c.add(Finding{ID: id, Status: Passed, Title: title, Detail: fmt.Sprintf("the oplog of every shard (%d) was read on its primary", len(shards))})
}

func (c *checker) configAccess() {
	const id, title = IDSourceConfigAccess, "User can read and write the source config database"
	a, ok := c.routerAccess(id, title)
	if !ok {
		return
	}
	var missing []string
	for _, action := range []string{"find", "insert", "update", "remove"} {
		if !a.Allows(topology.DatabaseResource("config"), action) {
			missing = append(missing, action)
		}
	}
	denied := c.unauthorizedIn(topology.PartDatabases, topology.PartCollections, topology.PartChunks)
	if len(missing) > 0 || len(denied) > 0 {
		detail := ""
		if len(missing) > 0 {
			detail = "the user lacks " + strings.Join(missing, ", ") + " on the config database"
		}
		if len(denied) > 0 {
			detail = strings.TrimPrefix(detail+"; "+list(denied), "; ")
		}
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: detail, Fix: grantRoles})
		return
	}
	c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "the user may find, insert, update and remove in the config database"})
}

func (c *checker) balancerAccess() {
	const id, title = IDSourceBalancerAccess, "User can stop and start the source balancer"
	a, ok := c.routerAccess(id, title)
	if !ok {
		return
	}
	b := c.in.Source.Balancer
	state := "state unknown"
	if b.From != "" {
		state = "now " + b.Mode
		if b.InRound {
			state += ", in a balancing round"
		}
	}
	// balancerStart and balancerStop need update on config.settings, balancerStatus find.
	if !a.Allows(topology.CollectionResource("config", "settings"), "update", "find") {
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: "the user may not update config.settings, which balancerStop and balancerStart need (balancer " + state + ")", Fix: grantRoles})
		return
	}
	c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "the user may run balancerStop and balancerStart (balancer " + state + "); validation left it as it is"})
}

// distinct refuses a source and a destination that are one cluster (the same
// clusterId) or share a mongos or a shard member: the wipe would drop the source's
// databases and the copy would write over them.
func (c *checker) distinct() {
	const id, title = IDDistinct, "Source and destination are two different clusters"
	if c.blocked(id, title, IDSourceSharded, IDDestSharded) {
		return
	}
	src, dst := c.in.Source.Identity, c.in.Destination.Identity
	if o := topology.Compare(src, dst); o.Any() {
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: fmt.Sprintf("the source is %s and the destination is %s: %s", src, dst, o.Describe()),
			Fix:    "Give the destination cluster's own mongos address: a cluster other than the source, sharing none of its servers. Starting would drop or overwrite the source's data, so Shardlift refuses it."})
		return
	}
	var unknown, fixes []string
	const grantMonitor = "Grant the user the clusterMonitor role (it reads config.version, as sh.status() does)."
	for _, side := range []struct {
		name string
		cl   *topology.Cluster
	}{{"source", c.in.Source}, {"destination", c.in.Destination}} {
		if !side.cl.Identity.ClusterID.IsZero() {
			continue
		}
		probs := side.cl.ProblemsWith(topology.PartClusterID)
		if len(probs) == 0 {
			unknown = append(unknown, "the "+side.name+"'s clusterId was not read")
			fixes = append(fixes, grantMonitor)
		}
		for _, p := range probs {
			unknown = append(unknown, "the "+side.name+"'s "+p.Error())
			fixes = append(fixes, fixOf(p.Err, grantMonitor))
		}
	}
	if len(unknown) > 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "a cluster's identity could not be read: " + list(unknown), Fix: joinFixes(fixes)})
		return
	}
	c.add(Finding{ID: id, Status: Passed, Title: title,
		Detail: fmt.Sprintf("the source is %s, the destination %s; they share no mongos or shard member", src, dst)})
}

// notHeld refuses a destination that another migration holds: its marker is there.
func (c *checker) notHeld() {
	const id, title = IDDestHeld, "No other migration holds the destination"
	if c.blocked(id, title, IDDestSharded) {
		return
	}
	dst := c.in.Destination
	if probs := dst.ProblemsWith(topology.PartMarker); len(probs) > 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "could not look for another migration's marker: " + probs[0].Error(),
			Fix: fixOf(probs[0].Err, "Grant the user the readWriteAnyDatabase role: Shardlift reads and writes its marker, "+topology.MarkerDatabase+"."+topology.MarkerCollection+", on the destination.")})
		return
	}
	switch m := dst.Marker; {
	case m == nil:
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "the destination holds no other migration's marker"})
	case m.MigrationID == c.in.MigrationID:
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "the destination's marker is this migration's own, from a start that was interrupted"})
	default:
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: "the destination is held by " + m.String() + ": a second migration into it would overwrite that one",
			Fix:    "Wait for that migration to end, or cancel it in the Shardlift that runs it (on " + m.Workstation + "). If it is known dead (that Shardlift no longer runs and will not be resumed), clear its marker: Clear the marker… below the checks in the app, or shardlift clear-marker --destination URI."})
	}
}

func (c *checker) shardCount() {
	const id, title = IDShardCount, "Destination has as many shards as the source"
	if c.blocked(id, title, IDSourceSharded, IDDestSharded) {
		return
	}
	src, dst := len(c.in.Source.Shards), len(c.in.Destination.Shards)
	if src == 0 || dst == 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the shards of one side are unknown (listShards failed)",
			Fix: "Fix the \"sharding metadata readable\" checks first."})
		return
	}
	if src != dst {
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: fmt.Sprintf("the source has %s but the destination has %s", plural(src, "shard", "shards"), plural(dst, "shard", "shards")),
			Fix:    fmt.Sprintf("Add or remove shards on the destination so that it has %d, as the source does.", src)})
		return
	}
	c.add(Finding{ID: id, Status: Passed, Title: title, Detail: fmt.Sprintf("both have %s", plural(src, "shard", "shards"))})
}

// node is one server's version as the version checks see it.
type node struct {
	label, version, fcv string
}

// mongods are the data-bearing servers of a cluster that answered (shard and config
// members), or the server itself when it is not a mongos.
func mongods(cl *topology.Cluster) []node {
	if cl.Kind != topology.KindMongos {
		return []node{{label: string(cl.Kind) + " " + cl.Router.Host, version: cl.Router.Version, fcv: cl.Router.FCV}}
	}
	var out []node
	for _, sh := range cl.Shards {
		for _, m := range sh.Members {
			if m.Err == nil && m.Version != "" {
				out = append(out, node{label: "shard " + sh.Name + " " + m.Host, version: m.Version, fcv: m.FCV})
			}
		}
	}
	for _, m := range cl.ConfigServers.Members {
		if m.Err == nil && m.Version != "" {
			out = append(out, node{label: "config server " + m.Host, version: m.Version, fcv: m.FCV})
		}
	}
	return out
}

// allNodes adds the router to mongods.
func allNodes(cl *topology.Cluster) []node {
	out := mongods(cl)
	if cl.Kind == topology.KindMongos {
		out = append(out, node{label: "mongos " + cl.Router.Host, version: cl.Router.Version})
	}
	return out
}

// distinct returns the distinct non-empty values of f over nodes, each with the
// nodes that have it.
func distinct(nodes []node, f func(node) string) map[string][]string {
	out := map[string][]string{}
	for _, n := range nodes {
		if v := f(n); v != "" {
			out[v] = append(out[v], n.label)
		}
	}
	return out
}

func describe(values map[string][]string) string {
	var parts []string
	for v, labels := range values {
		parts = append(parts, fmt.Sprintf("%s on %s", v, list(labels)))
	}
	sort.Strings(parts)
	return strings.Join(parts, " and ")
}

func only(values map[string][]string) string {
	for v := range values {
		return v
	}
	return ""
}

func (c *checker) versions() {
	const id, title = IDVersion, "Same major MongoDB version on both sides, or an upgrade from " + MinUpgradeSource + " or newer"
	if c.blocked(id, title, IDSourceReachable, IDDestReachable) {
		return
	}
	var old, unreadable []string
	for _, side := range []struct {
		name string
		cl   *topology.Cluster
	}{{"source", c.in.Source}, {"destination", c.in.Destination}} {
		var nodes, bad []node
		for _, n := range allNodes(side.cl) {
			if _, _, ok := topology.ParseMajorMinor(n.version); !ok && n.version != "" {
				bad = append(bad, n)
			} else if topology.OlderThan(n.version, MinMajor) {
				nodes = append(nodes, n)
			}
		}
		if len(nodes) > 0 {
			old = append(old, fmt.Sprintf("the %s runs MongoDB %s", side.name, describe(distinct(nodes, func(n node) string { return n.version }))))
		}
		if len(bad) > 0 {
			unreadable = append(unreadable, fmt.Sprintf("the %s reports version %s", side.name, describe(distinct(bad, func(n node) string { return fmt.Sprintf("%q", n.version) }))))
		}
	}
	if len(unreadable) > 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "refused: " + strings.Join(unreadable, "; ") + ", which is not a MongoDB version (major.minor.patch)",
			Fix: "Check that every host is a MongoDB server (mongos, mongod) and not a proxy or another product answering on its port."})
		return
	}
	if len(old) > 0 {
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "refused: " + strings.Join(old, "; ") + " (older than " + MinMajor + ", which the MongoDB Go driver cannot use)",
			Fix: "Upgrade both clusters to MongoDB " + MinMajor + " or newer (the same major version on both) before migrating."})
		return
	}
	src, dst := majors(c.in.Source), majors(c.in.Destination)
	switch {
	case len(src) == 0 || len(dst) == 0:
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the version of a side is unknown: none of its shard or config server members answered",
			Fix: "Fix the reachability checks first."})
	case len(src) > 1:
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the source runs mixed versions: " + describe(src),
			Fix: "Finish the source's upgrade (or downgrade) so that every member runs the same major version."})
	case len(dst) > 1:
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the destination runs mixed versions: " + describe(dst),
			Fix: "Finish the destination's upgrade (or downgrade) so that every member runs the same major version."})
	case only(src) != only(dst):
		c.add(versionPair(id, title, only(src), only(dst)))
	default:
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "both run MongoDB " + only(src)})
	}
}

func (c *checker) fcv() {
	const id, title = IDFCV, "Same featureCompatibilityVersion on both sides (for an upgrade, the destination's not below the source's)"
	if c.blocked(id, title, IDSourceReachable, IDDestReachable) {
		return
	}
	fcv := func(n node) string { return n.fcv }
	src, dst := distinct(mongods(c.in.Source), fcv), distinct(mongods(c.in.Destination), fcv)
	switch {
	case len(src) == 0 || len(dst) == 0:
		side := "source"
		if len(src) > 0 {
			side = "destination"
		}
		c.add(Finding{ID: id, Status: Warning, Title: title,
			Detail: "the " + side + "'s featureCompatibilityVersion is unknown: none of its shard or config server members reported it",
			Fix:    "Check it by hand on a shard primary: db.adminCommand({getParameter: 1, featureCompatibilityVersion: 1})."})
	case len(src) > 1:
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the source's members disagree: " + describe(src),
			Fix: "Finish the source's setFeatureCompatibilityVersion so that every member reports the same FCV."})
	case len(dst) > 1:
		c.add(Finding{ID: id, Status: Failed, Title: title, Detail: "the destination's members disagree: " + describe(dst),
			Fix: "Finish the destination's setFeatureCompatibilityVersion so that every member reports the same FCV."})
	case only(src) != only(dst) && c.upgrade() && !topology.OlderThan(only(dst), only(src)):
		c.add(Finding{ID: id, Status: Passed, Title: title,
			Detail: fmt.Sprintf("the source's FCV is %s and the destination's %s, as an upgrade needs", only(src), only(dst))})
	case only(src) != only(dst):
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: fmt.Sprintf("the source's FCV is %s but the destination's is %s", only(src), only(dst)),
			Fix:    fmt.Sprintf("Run db.adminCommand({setFeatureCompatibilityVersion: %q}) on the destination's mongos (or set the source to %q) so that both match.", only(src), only(dst))})
	default:
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "both are at FCV " + only(src)})
	}
}

func (c *checker) destinationEmpty() {
	const id, title = IDDestEmpty, "Destination holds no user data"
	if c.blocked(id, title, IDDestReachable) {
		return
	}
	dst := c.in.Destination
	if probs := dst.ProblemsWith(topology.PartInventory); len(probs) > 0 {
		var errs []string
		for _, p := range probs {
			errs = append(errs, p.Error())
		}
		c.add(Finding{ID: id, Status: Warning, Title: title, Detail: "could not list the destination's collections: " + list(errs),
			Fix: "Check by hand that the destination holds nothing you need: starting the migration wipes it."})
		return
	}
	perDB := map[string]int{}
	for _, ns := range dst.Namespaces {
		perDB[ns.DB]++
	}
	if len(perDB) == 0 {
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "the destination has no user databases"})
		return
	}
	var dbs []string
	for db, n := range perDB {
		dbs = append(dbs, fmt.Sprintf("%s (%s)", db, plural(n, "collection", "collections")))
	}
	sort.Strings(dbs)
	c.add(Finding{ID: id, Status: Warning, Title: title,
		Detail: "the destination holds data that starting the migration will wipe: " + list(dbs) + " (validation changed nothing)",
		Fix:    "Back up what you need from the destination, or choose an empty cluster; you will be asked to confirm the wipe when the migration starts."})
}

func (c *checker) users() {
	const id, title = IDUsers, "Users and roles (not migrated)"
	if c.blocked(id, title, IDSourceSharded) {
		return
	}
	src := c.in.Source
	problems := append(src.ProblemsWith(topology.PartUsers), src.ProblemsWith(topology.PartRoles)...)
	var names []string
	for _, u := range src.Users {
		roles := make([]string, len(u.Roles))
		for i, r := range u.Roles {
			roles[i] = r.String()
		}
		names = append(names, fmt.Sprintf("user %s@%s (%s)", u.Name, u.DB, strings.Join(roles, ", ")))
	}
	for _, r := range src.Roles {
		names = append(names, fmt.Sprintf("role %s@%s", r.Name, r.DB))
	}
	var parts []string
	if len(names) > 0 {
		parts = append(parts, fmt.Sprintf("%s and %s will not be migrated: %s",
			plural(len(src.Users), "user", "users"), plural(len(src.Roles), "role", "roles"), list(names)))
	}
	if len(problems) > 0 {
		parts = append(parts, "could not list them all: "+problemList(problems))
	}
	if len(parts) == 0 {
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: "the source has no users or user-defined roles to re-create"})
		return
	}
	fix := "Re-create the users your applications need on the destination (SCRAM) before the cutover; the summary lists them again."
	if len(problems) > 0 {
		fix = "List the users and roles by hand (db.getUsers(), db.getRoles() on each database) and re-create them on the destination: users and roles are not migrated."
	}
	c.add(Finding{ID: id, Status: Warning, Title: title, Detail: strings.Join(parts, "; "), Fix: fix})
}

func (c *checker) collectionKinds() {
	const id, title = IDCollectionKinds, "Every source collection is of a kind Shardlift migrates"
	if c.blocked(id, title, IDSourceSharded) {
		return
	}
	var odd []string
	colls, views, capped := 0, 0, 0
	for _, ns := range c.in.Source.Namespaces {
		switch {
		case namespaces.Classify(ns.DB, ns.Collection) == namespaces.StoredJavaScript:
			odd = append(odd, fmt.Sprintf("%s (%s)", ns.Name(), namespaces.StoredJavaScript))
		case !migratedKinds[ns.Type]:
			odd = append(odd, fmt.Sprintf("%s (%s)", ns.Name(), ns.Type))
		case ns.Type == "view":
			views++
		default:
			colls++
			if ns.Capped {
				capped++
			}
		}
	}
	if len(odd) > 0 {
		c.add(Finding{ID: id, Status: Warning, Title: title, Detail: "not migrated: " + list(odd),
			Fix: "Move these collections by another means (for example mongodump/mongorestore of a time-series collection or of system.js during the cutover) or drop them if they are not needed."})
		return
	}
	c.add(Finding{ID: id, Status: Passed, Title: title, Detail: fmt.Sprintf("%s (%d capped, copied in natural order) and %s (re-created)",
		plural(colls, "collection", "collections"), capped, plural(views, "view", "views"))})
}

// share is a collection's part on one shard, in bytes.
type share struct {
	ns    topology.Namespace
	bytes int64
}

// shardShares is each source shard's part of every collection of known size: the
// per-shard sizes where the server reported them, a sharded collection split evenly,
// an unsharded one on its database's primary shard. complete is false for a shard
// that may hold a collection of unknown size.
func shardShares(cl *topology.Cluster) (shares map[string][]share, complete map[string]bool) {
	primary := map[string]string{}
	for _, db := range cl.Databases {
		primary[db.Name] = db.Primary
	}
	shares, complete = map[string][]share{}, map[string]bool{}
	for _, sh := range cl.Shards {
		complete[sh.Name] = true
	}
	for _, ns := range cl.Namespaces {
		switch {
		case ns.Type != "collection":
		case !ns.SizeKnown:
			if ns.Sharded || primary[ns.DB] == "" {
				for _, sh := range cl.Shards {
					complete[sh.Name] = false
				}
			} else {
				complete[primary[ns.DB]] = false
			}
		case len(ns.ShardSizes) > 0:
			for shard, size := range ns.ShardSizes {
				shares[shard] = append(shares[shard], share{ns, size})
			}
		case ns.Sharded && len(cl.Shards) > 0:
			for _, sh := range cl.Shards {
				shares[sh.Name] = append(shares[sh.Name], share{ns, ns.Size / int64(len(cl.Shards))})
			}
		default:
			shares[primary[ns.DB]] = append(shares[primary[ns.DB]], share{ns, ns.Size})
		}
	}
	return shares, complete
}

// largestShare is the shard's largest non-empty collection part.
func largestShare(shares []share) (share, bool) {
	var best share
	for _, s := range shares {
		if s.bytes > best.bytes {
			best = s
		}
	}
	return best, best.bytes > 0
}

// shardBytes is how many bytes each source shard holds: what the shard primary's
// dbStats said, else the sum of its collection parts (shardShares).
func shardBytes(cl *topology.Cluster) (bytes map[string]int64, complete map[string]bool) {
	shares, complete := shardShares(cl)
	bytes = map[string]int64{}
	for shard, ss := range shares {
		for _, s := range ss {
			bytes[shard] += s.bytes
		}
	}
	for _, sh := range cl.Shards {
		if sh.DataBytesKnown {
			bytes[sh.Name], complete[sh.Name] = sh.DataBytes, true
		}
	}
	return bytes, complete
}

func (c *checker) oplogWindow() {
	const id, title = IDOplogWindow, "Each source shard's oplog outlasts the initial copy"
	if c.blocked(id, title, IDSourceSharded) {
		return
	}
	src := c.in.Source
	bytes, complete := shardBytes(src)
	var short, fixes, unknown, over, ok []string
	for _, sh := range src.Shards {
		rate := c.in.ReadRates[sh.Name]
		switch {
		case sh.Oplog.Err != nil:
			unknown = append(unknown, fmt.Sprintf("shard %s: oplog not read", sh.Name))
			continue
		case !complete[sh.Name]:
			unknown = append(unknown, fmt.Sprintf("shard %s: data size unknown", sh.Name))
			continue
		case bytes[sh.Name] > 0 && rate.BytesPerSecond() <= 0:
			why := "not measured"
			if rate.Err != nil {
				why = rate.Err.Error()
			}
			unknown = append(unknown, fmt.Sprintf("shard %s: read rate unknown (%s)", sh.Name, why))
			continue
		}
		read, host, err := c.readOplog(sh)
		if err != nil {
			unknown = append(unknown, fmt.Sprintf("shard %s: %v", sh.Name, err))
			continue
		}
		e := copyEstimate(sh, bytes[sh.Name], rate)
		have := read.Capacity()
		on := ""
		if host != "" {
			on = " on " + host
		}
		if c.in.OplogBuffer > 0 {
			// The copy's oplog goes to the buffer: the oplog need hold only what
			// the buffer cannot, once it is full, and never more than the copy
			// would need without the buffer.
			b := bufferEstimate(read, e, c.in.OplogBuffer)
			need := min(e.need, max(BufferStartNeed, b.need))
			switch {
			case have < need && b.need == 0:
				// Even buffered, the oplog must hold T0 until the fetch reads it.
				short = append(short, fmt.Sprintf("shard %s's oplog%s holds %s of writes; %s; the oplog buffer's fetch starts from T0 within seconds, with %s of margin", sh.Name, on, round(have), e, round(need)))
				fixes = append(fixes, resizeFix(sh, host, read, need))
			case have < need:
				short = append(short, fmt.Sprintf("shard %s's oplog%s holds %s of writes; %s, %s", sh.Name, on, round(have), e, b))
				fixes = append(fixes, resizeFix(sh, host, read, need)+fmt.Sprintf(" Or give each shard an oplog buffer of %s or more (--oplog-buffer-size).", units.Bytes(b.volume)))
			case b.need > 0:
				over = append(over, fmt.Sprintf("shard %s: %s, %s; its oplog%s holds %s", sh.Name, e, b, on, round(have)))
			default:
				ok = append(ok, fmt.Sprintf("shard %s: %s, %s; its oplog%s holds %s", sh.Name, e, b, on, round(have)))
			}
			continue
		}
		if have >= e.need {
			ok = append(ok, fmt.Sprintf("shard %s: %s, oplog%s holds %s", sh.Name, e, on, round(have)))
			continue
		}
		short = append(short, fmt.Sprintf("shard %s's oplog%s holds %s of writes; %s", sh.Name, on, round(have), e))
		fixes = append(fixes, resizeFix(sh, host, read, e.need))
	}
	switch {
	case len(short) > 0 && c.in.OplogBuffer > 0:
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: fmt.Sprintf("the oplog would roll past what the oplog buffer (%s per shard) has not fetched (%d× margin): %s", units.Bytes(c.in.OplogBuffer), OplogSafetyFactor, list(short)),
			Fix:    strings.Join(fixes, " ")})
	case len(short) > 0:
		c.add(Finding{ID: id, Status: Failed, Title: title,
			Detail: fmt.Sprintf("the oplog would roll past T0 before the copy and index builds end (their replay starts from T0; %d× margin): %s", OplogSafetyFactor, list(short)),
			Fix:    strings.Join(fixes, " ") + " Or migrate when the source takes fewer writes, or over a faster link to the source (the copy reads at the rate measured)."})
	case len(unknown) > 0:
		c.add(Finding{ID: id, Status: Warning, Title: title, Detail: "not fully checked: " + list(unknown),
			Fix: "Compare each shard's oplog window (rs.printReplicationInfo()) with the time to copy its data and build its indexes."})
	case len(over) > 0:
		c.add(Finding{ID: id, Status: Warning, Title: title,
			Detail: fmt.Sprintf("the oplog written during the copy would outgrow the oplog buffer (%s per shard): once it is full, fetching waits for the replay and the oplog window matters again: %s", units.Bytes(c.in.OplogBuffer), list(over)),
			Fix:    "Give each shard a larger oplog buffer (--oplog-buffer-size, on a disk with the room), or migrate when the source takes fewer writes."})
	case c.in.OplogBuffer > 0:
		c.add(Finding{ID: id, Status: Passed, Title: title,
			Detail: fmt.Sprintf("each shard's oplog is buffered on local disk from T0 on while the copy runs (up to %s per shard): the oplog need hold only the seconds from T0 to the fetch's start: %s", units.Bytes(c.in.OplogBuffer), list(ok))})
	default:
		c.add(Finding{ID: id, Status: Passed, Title: title, Detail: list(ok)})
	}
}

// BufferStartNeed is how much time a shard's oplog must hold when it is buffered:
// the fetch starts from T0 a few seconds after T0 is read (the chunk map read
// again, the buffer opened); a minute of margin. A copy that needs less without
// the buffer is asked no more with it.
const BufferStartNeed = time.Minute

// bufferEst is what a shard's oplog buffer takes during its copy.
type bufferEst struct {
	limit, volume int64         // the buffer's limit; the oplog bytes written during the copy (0: unknown)
	need          time.Duration // what the oplog must still hold once the buffer is full (0: it never fills)
}

// bufferEstimate is the oplog written during the copy and index builds (with the
// margin), at the write rate the shard's oplog shows, against the buffer's limit.
func bufferEstimate(o topology.Oplog, e estimate, limit int64) bufferEst {
	b := bufferEst{limit: limit}
	w := o.Window()
	if w <= 0 || o.UsedBytes <= 0 {
		return b
	}
	perSecond := float64(o.UsedBytes) / w.Seconds()
	b.volume = int64(perSecond * e.need.Seconds())
	if b.volume > limit {
		fills := time.Duration(float64(limit) / perSecond * float64(time.Second))
		b.need = max((e.need - fills).Truncate(time.Second), BufferStartNeed)
	}
	return b
}

func (b bufferEst) String() string {
	switch {
	case b.volume == 0:
		return "its oplog's write rate unknown (the buffer's fill is not estimated)"
	case b.need == 0:
		return fmt.Sprintf("about %s of oplog to buffer, within the %s buffer", units.Bytes(b.volume), units.Bytes(b.limit))
	}
	return fmt.Sprintf("about %s of oplog to buffer, more than the %s buffer: once it is full the oplog must hold the remaining %s", units.Bytes(b.volume), units.Bytes(b.limit), round(b.need))
}

// estimate is how long one shard's copy and index builds take at its measured read
// rate, and how much oplog time they need.
type estimate struct {
	bytes, indexBytes int64
	rate              float64 // bytes per second
	copy, index, need time.Duration
}

// copyEstimate reads the shard's data, then writes its indexes (their size, from
// dbStats: the _id index is written during the copy, the others after it), at the
// measured rate.
func copyEstimate(sh topology.Shard, bytes int64, r ReadRate) estimate {
	e := estimate{bytes: bytes, rate: r.BytesPerSecond()}
	if sh.DataBytesKnown {
		e.indexBytes = sh.IndexBytes
	}
	if e.rate > 0 {
		e.copy = time.Duration(float64(bytes) / e.rate * float64(time.Second))
		e.index = time.Duration(float64(e.indexBytes) / e.rate * float64(time.Second))
	}
	// Oplog timestamps count whole seconds: a need below one second is no need.
	e.need = (OplogSafetyFactor * (e.copy + e.index)).Truncate(time.Second)
	return e
}

func (e estimate) String() string {
	if e.bytes == 0 {
		return "no data to copy"
	}
	s := fmt.Sprintf("copying its %s at the measured %s takes %s", units.Bytes(e.bytes), units.Rate(e.rate), about(e.copy))
	if e.indexBytes > 0 {
		s += fmt.Sprintf(" plus %s of index builds (%s of indexes)", about(e.index), units.Bytes(e.indexBytes))
	}
	return s
}

// about is an estimated duration: "about 45s", "under a second".
func about(d time.Duration) string {
	if d < time.Second {
		return round(d)
	}
	return "about " + round(d)
}

// readOplog is the oplog the shard's tail may read whose window is the shortest:
// of the members the shard's read preference reads (the tail follows one of them from T0,
// and a secondary's oplog can be smaller than its primary's), the one holding the
// least time, and "member host" ("" for the primary's: the shard's oplog as
// before). The primary's when the preference is not known.
func (c *checker) readOplog(sh topology.Shard) (topology.Oplog, string, error) {
	primary := func() (topology.Oplog, string, error) { return sh.Oplog, "", nil }
	if c.in.ReadsErr != nil {
		return primary()
	}
	rp := c.readsOf(sh.Name)
	members := readMembers(sh, rp)
	var least *topology.Member
	for i, m := range members {
		if m.Primary {
			continue // sh.Oplog, below
		}
		if m.Oplog.Err != nil {
			return topology.Oplog{}, "", fmt.Errorf("the oplog of member %s, which the read preference %s reads, not read (%v)", m.Host, rp, m.Oplog.Err)
		}
		if least == nil || m.Oplog.Capacity() < least.Oplog.Capacity() {
			least = &members[i]
		}
	}
	readsPrimary := len(members) == 0 || slices.ContainsFunc(members, func(m topology.Member) bool { return m.Primary })
	if least == nil || readsPrimary && sh.Oplog.Capacity() <= least.Oplog.Capacity() {
		return primary()
	}
	return least.Oplog, "member " + least.Host, nil
}

// resizeFix says how large the oplog on host must be to hold need: in time, and in
// bytes at the write rate its oplog shows now.
func resizeFix(sh topology.Shard, host string, o topology.Oplog, need time.Duration) string {
	on := ""
	if host != "" {
		on = " on " + host
	}
	fix := fmt.Sprintf("Enlarge the oplog of shard %s%s to hold at least %s of writes", sh.Name, on, round(need))
	if w := o.Window(); w > 0 && o.UsedBytes > 0 {
		size := int64(float64(o.UsedBytes) * need.Seconds() / w.Seconds())
		mib := max((size+1<<20-1)>>20, 990) // replSetResizeOplog takes MiB, 990 at least
		fix += fmt.Sprintf(": about %s at its current write rate (db.adminCommand({replSetResizeOplog: 1, size: %d}) on each member, size in MiB", units.Bytes(size), mib)
		if size < 990<<20 {
			fix += ", 990 being the least it accepts"
		}
		fix += ")"
	} else {
		fix += " (replSetResizeOplog on each member)"
	}
	return fix + "."
}

// round shows a duration to the second, or to the minute when it is long.
func round(d time.Duration) string {
	switch {
	case d < time.Second:
		return "under a second"
	case d < time.Minute:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// problemList shows problems, those failing the same way once: "roles of a, roles of
// b: (CommandNotFound) no such command".
func problemList(probs []topology.Problem) string {
	var order []string
	parts := map[string][]string{}
	for _, p := range probs {
		msg := p.Err.Error()
		if _, seen := parts[msg]; !seen {
			order = append(order, msg)
		}
		parts[msg] = append(parts[msg], p.Part)
	}
	out := make([]string, len(order))
	for i, msg := range order {
		out[i] = list(parts[msg]) + ": " + msg
	}
	return list(out)
}
