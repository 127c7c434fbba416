package namespaces

import "testing"

// Every namespace a real cluster holds (3.6 to 8.0) and a few user ones that
// look like them.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		ns   string
		want Class
	}{
		{"config.system.sessions", Internal},
		{"config.transactions", Internal},
		{"config.image_collection", Internal},
		{"config.system.indexBuilds", Internal},
		{"config.cache.collections", Internal},
		{"config.cache.chunks.shop.orders", Internal},
		{"config.cache.databases", Internal},
		{"config.chunks", Internal},
		{"config.collections", Internal},
		{"config.tags", Internal},
		{"config.placementHistory", Internal},
		{"config.system.sharding_ddl_coordinators", Internal},
		{"config.rangeDeletions", Internal},
		{"admin.system.version", Internal},
		{"admin.system.keys", Internal},
		{"admin.system.users", Internal},
		{"admin.system.roles", Internal},
		{"admin.mydata", Internal},
		{"local.oplog.rs", Internal},
		{"local.system.replset", Internal},
		{"local.startup_log", Internal},
		{"shop.system.profile", Internal},
		{"shop.system.indexes", Internal},
		{"shop.system.namespaces", Internal},
		{"shop.system.drop.1700000000i1t1.orders", Internal},
		{"shop.system.resharding.7c4ef9b2-1f4c-4a53-9f3b-4d2b0c1c5e11", Internal},
		{"shop.system.views", ViewCatalog},
		{"shop.system.js", StoredJavaScript},
		{"iot.system.buckets.weather", TimeSeriesBuckets},
		{"shop.orders", UserData},
		{"shop.system", UserData},
		{"shop.systems.log", UserData},
		{"shop.config.system.sessions", UserData},
		{"configs.settings", UserData},
		{"administration.users", UserData},
		{"shop.tmp.agg_out.1234", UserData},
	} {
		db, coll := Split(tc.ns)
		if got := Classify(db, coll); got != tc.want {
			t.Errorf("Classify(%s) = %v, want %v", tc.ns, got, tc.want)
		}
		if MigratedNS(tc.ns) != (tc.want == UserData) {
			t.Errorf("MigratedNS(%s) = %v", tc.ns, MigratedNS(tc.ns))
		}
	}
}

func TestUserDatabase(t *testing.T) {
	for db, want := range map[string]bool{"admin": false, "config": false, "local": false, "": false, "shop": true, "Admin": true, "local2": true} {
		if got := UserDatabase(db); got != want {
			t.Errorf("UserDatabase(%q) = %v, want %v", db, got, want)
		}
	}
}
