package app

import (
	"fmt"
	"os"

	"github.com/shardlift/shardlift/engine/topology"
)

// hostMapFlags are --host-map FILE and repeated --map-host A=B: where this
// workstation reaches the shard and config server members the clusters name by
// addresses only their own network resolves.
type hostMapFlags struct {
	file string
	each mapHostFlag
}

func addHostMapFlags(f *flags) *hostMapFlags {
	h := &hostMapFlags{each: mapHostFlag{m: topology.HostMap{}}}
	f.StringVar(&h.file, "host-map", "", "read the host map from `FILE`: "+topology.HostMapFormat)
	f.Var(&h.each, "map-host", "reach the member the clusters name `NAME:PORT=HOST:PORT` at HOST:PORT (repeat for each member; with --host-map too)")
	return h
}

// hostMap is the map the flags give, nil without any; a bad file is an error naming it.
func (h *hostMapFlags) hostMap() (topology.HostMap, error) {
	m := h.each.m
	if h.file != "" {
		r, err := os.Open(h.file)
		if err != nil {
			return nil, fmt.Errorf("--host-map: %v", err)
		}
		defer r.Close()
		fromFile, err := topology.ParseHostMap(r)
		if err != nil {
			return nil, fmt.Errorf("--host-map %s: %v", h.file, err)
		}
		for from, to := range fromFile {
			if err := m.Add(from + "=" + to); err != nil {
				return nil, fmt.Errorf("--host-map %s and --map-host: %v", h.file, err)
			}
		}
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// mapHostFlag collects --map-host values.
type mapHostFlag struct{ m topology.HostMap }

func (f *mapHostFlag) String() string { return "" }
func (f *mapHostFlag) Set(v string) error {
	return f.m.Add(v)
}
