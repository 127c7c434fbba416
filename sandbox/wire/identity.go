package wire

import (
	"fmt"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
)

// Identity is what a sandbox node says about itself, whatever its role: the server
// version and feature compatibility version it reports (tests set other values to
// provoke version-mismatch findings), and the roles of its one user.
type Identity struct {
	// Version is the full server version, such as "7.0.42".
	Version string
	// FCV is the featureCompatibilityVersion, such as "7.0".
	FCV string
	// Roles of the sandbox user on "admin"; empty means readWriteAnyDatabase + clusterAdmin,
	// the roles the Atlas procedure asks for.
	Roles []string
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

func (id Identity) buildInfo() bson.Raw {
	parts := strings.Split(id.Version, ".")
	arr := bson.A{}
	for i := 0; i < 4; i++ {
		n := 0
		if i < len(parts) {
			n, _ = strconv.Atoi(parts[i])
		}
		arr = append(arr, int32(n))
	}
	return OK(
		bson.E{Key: "version", Value: id.Version},
		bson.E{Key: "gitVersion", Value: "sandbox"},
		bson.E{Key: "versionArray", Value: arr},
		bson.E{Key: "bits", Value: int32(64)},
		bson.E{Key: "maxBsonObjectSize", Value: int32(16 * 1024 * 1024)},
		bson.E{Key: "storageEngines", Value: bson.A{"sandbox"}},
	)
}

func (id Identity) getParameter(cmd *Command) bson.Raw {
	if cmd.Lookup("featureCompatibilityVersion").Type == 0 {
		return ErrorReply(&Error{72, "InvalidOptions", "no option found to get"})
	}
	return OK(bson.E{Key: "featureCompatibilityVersion", Value: bson.D{{Key: "version", Value: id.FCV}}})
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
		users = append(users, bson.D{{Key: "user", Value: s.User()}, {Key: "db", Value: "admin"}})
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
