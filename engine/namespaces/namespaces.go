// Package namespaces is the one definition of which of a cluster's namespaces a
// migration carries: discovery, the plan, the copy, the replay's filter, the
// verification and validation all ask it, so that MongoDB's own data (the
// sharded config.system.sessions first of all) never reaches the plan and a
// user collection is never mistaken for MongoDB's.
//
// What MongoDB keeps for itself, by version (src/mongo/db/namespace_string.h
// and the catalog of each release, 3.6 to 8.0):
//
//	admin.*    users, roles, keys (admin.system.users, .roles, .keys, .version,
//	           .backup_users, .new_users), and anything else kept there
//	config.*   the sharding catalog (shards, databases, collections, chunks, tags,
//	           settings, ...), the sessions (system.sessions, sharded on _id since
//	           3.6), transactions, image_collection (5.0+), system.indexBuilds
//	           (4.4+), the shards' routing caches (cache.*), the 8.0 config
//	           shard's copies, and whatever later versions add there
//	local.*    the oplog and each member's own state
//	<db>.system.*  profiles (system.profile), the 3.x MMAPv1 catalog
//	           (system.indexes, system.namespaces), drop-pending collections
//	           (system.drop.*, 3.6-4.0), resharding's temporary collections
//	           (system.resharding.*), and three that hold user data:
//	           system.views (the definitions of the views: re-created as views),
//	           system.buckets.<name> (the storage of time-series collection
//	           <name>: reported by validation under <name>) and system.js
//	           (stored JavaScript functions: reported by validation)
package namespaces

import "strings"

// Class is what a namespace is to a migration.
type Class uint8

const (
	// UserData is an application's collection: copied, replayed and verified.
	UserData Class = iota
	// Internal is MongoDB's own: never migrated, never reported.
	Internal
	// ViewCatalog is <db>.system.views: its documents define the database's
	// views, which are re-created as views (never copied as documents).
	ViewCatalog
	// StoredJavaScript is <db>.system.js: functions a user stored for $where
	// and mapReduce. Not migrated; validation reports it.
	StoredJavaScript
	// TimeSeriesBuckets is <db>.system.buckets.<name>, the storage of the
	// time-series collection <name>; validation reports that collection.
	TimeSeriesBuckets
)

func (c Class) String() string {
	switch c {
	case UserData:
		return "user data"
	case Internal:
		return "MongoDB's internal data"
	case ViewCatalog:
		return "view definitions"
	case StoredJavaScript:
		return "stored JavaScript"
	case TimeSeriesBuckets:
		return "time-series buckets"
	}
	return "unknown"
}

// MarkerDatabase is Shardlift's own database on a destination while a migration
// runs (engine/topology's marker): never migrated, verified, counted as data nor
// wiped.
const MarkerDatabase = "shardlift_marker"

// UserDatabase reports whether a database can hold user data: every database
// but admin, config, local and Shardlift's marker.
func UserDatabase(db string) bool {
	switch db {
	case "admin", "config", "local", MarkerDatabase:
		return false
	}
	return db != ""
}

// Classify says what the collection coll of database db is.
func Classify(db, coll string) Class {
	if !UserDatabase(db) {
		return Internal
	}
	rest, system := strings.CutPrefix(coll, "system.")
	switch {
	case !system:
		return UserData
	case rest == "views":
		return ViewCatalog
	case rest == "js":
		return StoredJavaScript
	case strings.HasPrefix(rest, "buckets."):
		return TimeSeriesBuckets
	}
	return Internal
}

// Migrated reports whether the documents of db.coll are copied and replayed.
func Migrated(db, coll string) bool { return Classify(db, coll) == UserData }

// Split cuts "db.coll" at its first dot (database names hold none).
func Split(ns string) (db, coll string) {
	db, coll, _ = strings.Cut(ns, ".")
	return db, coll
}

// MigratedNS is Migrated for a "db.coll" name.
func MigratedNS(ns string) bool { return Migrated(Split(ns)) }
