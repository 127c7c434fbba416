package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/shardlift/shardlift/sandbox/router"
	"github.com/shardlift/shardlift/sandbox/shard"
)

// Control is the HTTP face of the fault hooks, for a DBA's failure drill during a trial
// migration (`shardlift sandbox --control 127.0.0.1:PORT`):
//
//	GET  /{cluster}/shards/{shard}                      the shard's members
//	POST /{cluster}/shards/{shard}/stepdown[?rollback=true]
//	POST /{cluster}/shards/{shard}/lag?seconds=N[&member=I]   (N < 0 holds replication)
//	POST /{cluster}/shards/{shard}/stop
//	POST /{cluster}/shards/{shard}/start
//	POST /{cluster}/transactions/hold      cross-shard commits wait, prepared
//	POST /{cluster}/transactions/release[?abort=true]   the held commits go on (or abort)
//	POST /{cluster}/commands/hold?command=C[&ns=DB.COLL][&value=V]   commands C wait, in flight
//	GET  /{cluster}/commands/held          the commands waiting on a hold
//	POST /{cluster}/commands/release[?abort=true]   they run (or answer Interrupted)
//
// Each answers JSON saying what happened, or {"error": ...} saying what to do.
func Control(clusters map[string]*Cluster) http.Handler {
	mux := http.NewServeMux()
	type action func(c *Cluster, shardName string, r *http.Request) (any, int, error)
	handle := func(pattern string, act action) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			name := r.PathValue("cluster")
			c, ok := clusters[name]
			if !ok {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no cluster %q: use one of %s", name, clusterNames(clusters))})
				return
			}
			out, status, err := act(c, r.PathValue("shard"), r)
			if err != nil {
				writeJSON(w, status, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, out)
		})
	}
	shardOf := func(c *Cluster, name string) (*shard.Front, int, error) {
		f, err := c.front(name)
		if err != nil {
			names := []string{}
			for _, s := range c.Shards() {
				names = append(names, s.Name)
			}
			return nil, http.StatusNotFound, fmt.Errorf("%w: use one of %v", err, names)
		}
		return f, 0, nil
	}
	members := func(f *shard.Front) any {
		ms, err := f.Members()
		if err != nil {
			return map[string]any{"shard": f.Name(), "state": "stopped"}
		}
		return map[string]any{"shard": f.Name(), "state": "running", "members": memberViews(ms)}
	}
	handle("GET /{cluster}/shards/{shard}", func(c *Cluster, name string, r *http.Request) (any, int, error) {
		f, status, err := shardOf(c, name)
		if err != nil {
			return nil, status, err
		}
		return members(f), 0, nil
	})
	handle("POST /{cluster}/shards/{shard}/stepdown", func(c *Cluster, name string, r *http.Request) (any, int, error) {
		f, status, err := shardOf(c, name)
		if err != nil {
			return nil, status, err
		}
		rollback, err := boolParam(r, "rollback")
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		rep, err := f.StepDown(rollback)
		if err != nil {
			return nil, http.StatusConflict, err
		}
		return map[string]any{"shard": f.Name(), "action": "stepdown", "rollback": rollback, "result": rep}, 0, nil
	})
	handle("POST /{cluster}/shards/{shard}/lag", func(c *Cluster, name string, r *http.Request) (any, int, error) {
		f, status, err := shardOf(c, name)
		if err != nil {
			return nil, status, err
		}
		secs, err := strconv.ParseFloat(r.URL.Query().Get("seconds"), 64)
		if err != nil {
			return nil, http.StatusBadRequest, errors.New("lag needs ?seconds=N: how far behind the secondaries stay (0 to catch up, a negative number to hold them)")
		}
		member := -1
		if m := r.URL.Query().Get("member"); m != "" {
			if member, err = strconv.Atoi(m); err != nil {
				return nil, http.StatusBadRequest, fmt.Errorf("member=%q is not a member number", m)
			}
		}
		if err := f.SetLag(member, time.Duration(secs*float64(time.Second))); err != nil {
			return nil, http.StatusBadRequest, err
		}
		return map[string]any{"shard": f.Name(), "action": "lag", "seconds": secs, "members": members(f)}, 0, nil
	})
	handle("POST /{cluster}/shards/{shard}/stop", func(c *Cluster, name string, r *http.Request) (any, int, error) {
		f, status, err := shardOf(c, name)
		if err != nil {
			return nil, status, err
		}
		if err := f.Stop(); err != nil {
			return nil, http.StatusConflict, err
		}
		return map[string]any{"shard": f.Name(), "action": "stop", "state": "stopped"}, 0, nil
	})
	handle("POST /{cluster}/shards/{shard}/start", func(c *Cluster, name string, r *http.Request) (any, int, error) {
		f, status, err := shardOf(c, name)
		if err != nil {
			return nil, status, err
		}
		if _, err := f.Members(); err == nil {
			return map[string]any{"shard": f.Name(), "action": "start", "note": "it was running: nothing changed", "members": members(f)}, 0, nil
		}
		if err := f.Restart(); err != nil {
			return nil, http.StatusConflict, err
		}
		return map[string]any{"shard": f.Name(), "action": "start", "members": members(f)}, 0, nil
	})
	handle("POST /{cluster}/transactions/hold", func(c *Cluster, _ string, r *http.Request) (any, int, error) {
		c.HoldCommits()
		return map[string]any{"action": "hold", "note": "cross-shard transactions stay prepared at their commit until release"}, 0, nil
	})
	handle("POST /{cluster}/transactions/release", func(c *Cluster, _ string, r *http.Request) (any, int, error) {
		abort, err := boolParam(r, "abort")
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		held := c.HeldCommits()
		c.ReleaseCommits(abort)
		return map[string]any{"action": "release", "released": held, "aborted": abort}, 0, nil
	})
	var holdsMu sync.Mutex
	releases := map[string][]func(abort bool){} // by cluster: the holds the API made
	handle("POST /{cluster}/commands/hold", func(c *Cluster, _ string, r *http.Request) (any, int, error) {
		q := r.URL.Query()
		h := router.CommandHold{Command: q.Get("command"), NS: q.Get("ns"), Value: q.Get("value")}
		if h.Command == "" {
			return nil, http.StatusBadRequest, errors.New("hold needs ?command=NAME (createIndexes, create, drop, renameCollection, insert...), and optionally &ns=DB.COLL and &value=A_STRING_IT_CARRIES")
		}
		holdsMu.Lock()
		defer holdsMu.Unlock()
		releases[r.PathValue("cluster")] = append(releases[r.PathValue("cluster")], c.HoldCommands(h))
		return map[string]any{"action": "hold", "hold": h.String(), "note": "matching commands stay in flight until release"}, 0, nil
	})
	handle("GET /{cluster}/commands/held", func(c *Cluster, _ string, r *http.Request) (any, int, error) {
		held := c.HeldCommands()
		return map[string]any{"held": len(held), "commands": held}, 0, nil
	})
	handle("POST /{cluster}/commands/release", func(c *Cluster, _ string, r *http.Request) (any, int, error) {
		abort, err := boolParam(r, "abort")
		if err != nil {
			return nil, http.StatusBadRequest, err
		}
		held := len(c.HeldCommands())
		holdsMu.Lock()
		defer holdsMu.Unlock()
		for _, release := range releases[r.PathValue("cluster")] {
			release(abort)
		}
		delete(releases, r.PathValue("cluster"))
		return map[string]any{"action": "release", "released": held, "aborted": abort}, 0, nil
	})
	return mux
}

// memberView is a member as the control API shows it.
type memberView struct {
	Member  int     `json:"member"`
	Addr    string  `json:"addr"`
	State   string  `json:"state"`
	Applied string  `json:"applied"` // "Timestamp(T, I)"
	Term    int64   `json:"term"`
	LagSecs float64 `json:"lagSeconds"` // < 0: held
}

func memberViews(ms []shard.Member) []memberView {
	out := make([]memberView, len(ms))
	for i, m := range ms {
		out[i] = memberView{Member: m.Index, Addr: m.Addr, State: m.State, Term: m.Applied.Term,
			Applied: fmt.Sprintf("Timestamp(%d, %d)", m.Applied.TS.T, m.Applied.TS.I), LagSecs: m.Lag.Seconds()}
	}
	return out
}

func boolParam(r *http.Request, key string) (bool, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: use true or false", key, v)
	}
	return b, nil
}

func clusterNames(clusters map[string]*Cluster) []string {
	return slices.Sorted(maps.Keys(clusters))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
