package wire

import (
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"

	"github.com/shardlift/shardlift/sandbox/release"
)

// Identity is what a sandbox node says about itself, whatever its role: the server
// version and feature compatibility version it reports, and the roles of its one user.
// Its version decides the node's personality (Release): what hello, buildInfo and the
// internal namespaces look like. Tests may report a version or FCV of their own to
// provoke version findings (3.4.24, or 7.0 binaries at FCV 6.0).
type Identity struct {
	// Version is the full server version, such as "7.0.14".
	Version string
	// FCV is the featureCompatibilityVersion, such as "7.0".
	FCV string
	// Roles of the sandbox user on "admin"; empty means readWriteAnyDatabase + clusterAdmin,
	// the roles the Atlas procedure asks for.
	Roles []string
}

// Release is the MongoDB release whose personality the node presents.
func (id Identity) Release() release.Release { return release.Of(id.Version) }

// Mechanism is the SCRAM mechanism a node of this release offers.
func (id Identity) Mechanism() string {
	if id.Release().SCRAMSHA256() {
		return SCRAMSHA256
	}
	return SCRAMSHA1
}

// DefaultRoles are the roles a migration user needs: on the source the Atlas
// procedure's readWriteAnyDatabase and clusterAdmin; on the destination
// dbAdminAnyDatabase too (collMod, and writes that bypass document validation).
var DefaultRoles = []string{"readWriteAnyDatabase", "dbAdminAnyDatabase", "clusterAdmin"}

// AnswerCommon answers the commands whose reply does not depend on a node's role.
// It reports false for any other command.
func (id Identity) AnswerCommon(s *Session, cmd *Command) (bson.Raw, bool) {
	switch strings.ToLower(cmd.Name) {
	case "ping", "endsessions", "killallsessions", "refreshsessions":
		return OK(), true
	case "buildinfo":
		return id.buildInfo(), true
	case "getparameter":
		return id.getParameter(cmd), true
	case "connectionstatus":
		show, _ := cmd.Lookup("showPrivileges").BooleanOK()
		return id.connectionStatus(s, show), true
	case "whatsmyuri":
		return OK(bson.E{Key: "you", Value: s.Remote}), true
	case "getlog":
		return OK(bson.E{Key: "totalLinesWritten", Value: int32(0)}, bson.E{Key: "log", Value: bson.A{}}), true
	}
	return nil, false
}

// buildInfo is a community build's buildInfo for the node's version
// (src/mongo/util/version_impl.cpp appendBuildInfo): the fields drivers and tools read.
func (id Identity) buildInfo() bson.Raw {
	return OK(id.BuildInfo()...)
}

// BuildInfo is buildInfo's reply without ok, also recorded in local.startup_log.
func (id Identity) BuildInfo() bson.D {
	rel := id.Release()
	arr := bson.A{}
	for _, n := range versionNumbers(id.Version) {
		arr = append(arr, n)
	}
	engines := bson.A{}
	for _, e := range rel.StorageEngines() {
		engines = append(engines, e)
	}
	return bson.D{
		{Key: "version", Value: id.Version},
		{Key: "gitVersion", Value: release.GitVersion(id.Version)},
		{Key: "modules", Value: bson.A{}},
		{Key: "allocator", Value: "tcmalloc"},
		{Key: "javascriptEngine", Value: "mozjs"},
		{Key: "sysInfo", Value: "deprecated"},
		{Key: "versionArray", Value: arr},
		{Key: "openssl", Value: bson.D{{Key: "running", Value: "OpenSSL 3.0.2 15 Mar 2022"}, {Key: "compiled", Value: "OpenSSL 3.0.2 15 Mar 2022"}}},
		{Key: "buildEnvironment", Value: bson.D{
			{Key: "distmod", Value: "ubuntu2204"}, {Key: "distarch", Value: "x86_64"},
			{Key: "target_arch", Value: "x86_64"}, {Key: "target_os", Value: "linux"},
		}},
		{Key: "bits", Value: int32(64)},
		{Key: "debug", Value: false},
		{Key: "maxBsonObjectSize", Value: int32(16 * 1024 * 1024)},
		{Key: "storageEngines", Value: engines},
	}
}

// versionNumbers is buildInfo's versionArray: [major, minor, patch, 0].
func versionNumbers(version string) [4]int32 {
	var out [4]int32
	for i, p := range strings.SplitN(version, ".", 3) {
		var n int32
		fmt.Sscan(p, &n)
		out[i] = n
	}
	return out
}

// getParameter answers featureCompatibilityVersion as mongod does: {version: "7.0"}.
// (A router answers it from its binary version instead, see the router.)
func (id Identity) getParameter(cmd *Command) bson.Raw {
	return FCVParameter(cmd, id.FCV)
}

// FCVParameter answers getParameter for featureCompatibilityVersion with fcv, in the
// document form MongoDB has used since 3.6.
func FCVParameter(cmd *Command, fcv string) bson.Raw {
	if cmd.Lookup("featureCompatibilityVersion").Type == 0 {
		return ErrorReply(&Error{72, "InvalidOptions", "no option found to get"})
	}
	return OK(bson.E{Key: "featureCompatibilityVersion", Value: bson.D{{Key: "version", Value: fcv}}})
}

// UserRoles are the sandbox user's roles on admin.
func (id Identity) UserRoles() []string { return id.roles() }

// HasRole reports whether the sandbox user holds the built-in role.
func (id Identity) HasRole(role string) bool {
	for _, r := range id.roles() {
		if r == role {
			return true
		}
	}
	return false
}

func (id Identity) roles() []string {
	if len(id.Roles) == 0 {
		return DefaultRoles
	}
	return id.Roles
}

func (id Identity) connectionStatus(s *Session, showPrivileges bool) bson.Raw {
	users, roles := bson.A{}, bson.A{}
	if s.User() != "" {
		users = append(users, bson.D{{Key: "user", Value: s.User()}, {Key: "db", Value: s.UserDB()}})
		for _, r := range id.roles() {
			roles = append(roles, bson.D{{Key: "role", Value: r}, {Key: "db", Value: "admin"}})
		}
	}
	info := bson.D{{Key: "authenticatedUsers", Value: users}, {Key: "authenticatedUserRoles", Value: roles}}
	if showPrivileges {
		privs := bson.A{}
		if s.User() != "" {
			for _, p := range privilegesOf(id.roles()) {
				privs = append(privs, p)
			}
		}
		info = append(info, bson.E{Key: "authenticatedUserPrivileges", Value: privs})
	}
	return OK(bson.E{Key: "authInfo", Value: info})
}

// privilegesOf lists the privileges the built-in roles grant, in connectionStatus's
// format (see roles.go).
func privilegesOf(roles []string) []bson.D {
	var out []bson.D
	for _, r := range roles {
		for _, g := range builtinRoles[r] {
			out = append(out, bson.D{{Key: "resource", Value: g.resource}, {Key: "actions", Value: g.actions}})
		}
	}
	return out
}

// String names the identity in messages.
func (id Identity) String() string { return fmt.Sprintf("MongoDB %s (FCV %s)", id.Version, id.FCV) }
