package topology

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
)

// Access is what the connecting user may do on one server, from connectionStatus
// with showPrivileges. It changes nothing on the server.
type Access struct {
	// Known is true when connectionStatus answered.
	Known bool
	// Users are the authenticated users ("user@db"); none when the server does not
	// enforce authentication (or no credentials were given).
	Users []string
	// Roles are the users' roles.
	Roles []RoleRef
	// Privileges are the resources and actions the roles grant.
	Privileges []Privilege
}

// Privilege is a set of actions on a resource.
type Privilege struct {
	Resource Resource
	Actions  []string
}

// Resource is a privilege's resource as MongoDB writes it: anyResource, the cluster,
// or {db, collection} where "" means any database (any normal collection).
type Resource struct {
	AnyResource bool
	Cluster     bool
	DB          string
	Collection  string
	// Unsupported marks a kind of resource Shardlift does not model; it covers nothing.
	Unsupported bool
}

func (r Resource) String() string {
	switch {
	case r.AnyResource:
		return "any resource"
	case r.Cluster:
		return "the cluster"
	case r.DB == "" && r.Collection == "":
		return "every database"
	case r.Collection == "":
		return "database " + r.DB
	case r.DB == "":
		return "collection " + r.Collection + " of every database"
	}
	return r.DB + "." + r.Collection
}

// CollectionResource is the resource of one collection.
func CollectionResource(db, coll string) Resource { return Resource{DB: db, Collection: coll} }

// DatabaseResource is the resource of every normal collection of one database.
func DatabaseResource(db string) Resource { return Resource{DB: db} }

// ClusterResource is the cluster-wide resource (listShards, serverStatus, ...).
var ClusterResource = Resource{Cluster: true}

// Allows reports whether the privileges grant every action on target, following
// MongoDB's matching: anyResource covers everything; {db: "", collection: ""} covers
// the normal collections of every database except local and config (which since 3.4
// need their own grant); {db: D, collection: ""} covers D's normal collections;
// {db: "", collection: C} covers C in any database; "anyAction" is every action.
func (a Access) Allows(target Resource, actions ...string) bool {
	for _, action := range actions {
		if !a.allows(target, action) {
			return false
		}
	}
	return true
}

func (a Access) allows(target Resource, action string) bool {
	for _, p := range a.Privileges {
		if covers(p.Resource, target) && hasAction(p.Actions, action) {
			return true
		}
	}
	return false
}

func hasAction(actions []string, want string) bool {
	for _, a := range actions {
		if a == want || a == "anyAction" {
			return true
		}
	}
	return false
}

// covers reports whether a granted resource includes the target resource.
func covers(grant, target Resource) bool {
	if grant.AnyResource {
		return true
	}
	if grant.Unsupported || target.AnyResource {
		return false
	}
	if grant.Cluster || target.Cluster {
		return grant.Cluster && target.Cluster
	}
	systemColl := strings.HasPrefix(target.Collection, "system.")
	specialDB := target.DB == "local" || target.DB == "config"
	switch {
	case grant.DB == "" && grant.Collection == "":
		return target.DB != "" && !specialDB && !systemColl
	case grant.Collection == "":
		return grant.DB == target.DB && !systemColl
	case grant.DB == "":
		return target.Collection != "" && grant.Collection == target.Collection
	}
	return grant.DB == target.DB && grant.Collection == target.Collection
}

// readAccess runs connectionStatus with showPrivileges on the server behind client.
func readAccess(ctx context.Context, client *mongo.Client) (Access, error) {
	var reply struct {
		AuthInfo struct {
			AuthenticatedUsers []struct {
				User string `bson:"user"`
				DB   string `bson:"db"`
			} `bson:"authenticatedUsers"`
			AuthenticatedUserRoles      []roleRefDoc `bson:"authenticatedUserRoles"`
			AuthenticatedUserPrivileges []bson.Raw   `bson:"authenticatedUserPrivileges"`
		} `bson:"authInfo"`
	}
	err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "connectionStatus", Value: 1}, {Key: "showPrivileges", Value: true}}).Decode(&reply)
	if err != nil {
		return Access{}, err
	}
	a := Access{Known: true}
	for _, u := range reply.AuthInfo.AuthenticatedUsers {
		a.Users = append(a.Users, u.User+"@"+u.DB)
	}
	for _, r := range reply.AuthInfo.AuthenticatedUserRoles {
		a.Roles = append(a.Roles, RoleRef(r))
	}
	for _, raw := range reply.AuthInfo.AuthenticatedUserPrivileges {
		p, err := parsePrivilege(raw)
		if err != nil {
			return Access{}, err
		}
		a.Privileges = append(a.Privileges, p)
	}
	return a, nil
}

// isTrue reads a flag MongoDB may write as a boolean or a number.
func isTrue(v bson.RawValue) bool {
	if b, ok := v.BooleanOK(); ok {
		return b
	}
	n, ok := asInt64(v)
	return ok && n != 0
}

type roleRefDoc struct {
	Role string `bson:"role"`
	DB   string `bson:"db"`
}

// parsePrivilege reads {resource: {...}, actions: [...]}.
func parsePrivilege(raw bson.Raw) (Privilege, error) {
	res, ok := raw.Lookup("resource").DocumentOK()
	if !ok {
		return Privilege{}, fmt.Errorf("connectionStatus: privilege without a resource document: %s", raw)
	}
	var p Privilege
	switch {
	case isTrue(res.Lookup("anyResource")):
		p.Resource.AnyResource = true
	case isTrue(res.Lookup("cluster")):
		p.Resource.Cluster = true
	default:
		db, hasDB := res.Lookup("db").StringValueOK()
		coll, hasColl := res.Lookup("collection").StringValueOK()
		// Resources Shardlift does not model (system_buckets, ...) grant nothing here.
		p.Resource = Resource{DB: db, Collection: coll, Unsupported: !hasDB || !hasColl}
	}
	actions, _ := raw.Lookup("actions").ArrayOK()
	values, _ := actions.Values()
	for _, v := range values {
		if s, ok := v.StringValueOK(); ok {
			p.Actions = append(p.Actions, s)
		}
	}
	return p, nil
}
