package app

import (
	"time"

	"github.com/shardlift/shardlift/engine/topology"
)

// clusterFlags are the flags that name the source and the destination cluster, which
// validate and migrate share: connection strings or mongos host lists, CAs, the
// source's read preference (and its shards' own) and the host map.
type clusterFlags struct {
	source, destination     *string
	sourceCA, destinationCA *string
	readPreference          *readPreferenceFlags
	hostMap                 *hostMapFlags
}

func addClusterFlags(f *flags) *clusterFlags {
	return &clusterFlags{
		source:         f.String("source", "", "the source cluster's mongos connection string `URI`, or its mongos host:port list"),
		destination:    f.String("destination", "", "the destination cluster's mongos connection string `URI`, or its mongos host:port list"),
		sourceCA:       f.String("source-ca", "", "PEM `FILE` of the CA that signed the source's certificates (turns TLS on)"),
		destinationCA:  f.String("destination-ca", "", "PEM `FILE` of the CA that signed the destination's certificates (turns TLS on)"),
		readPreference: addReadPreferenceFlags(f),
		hostMap:        addHostMapFlags(f),
	}
}

// endpoints are the two clusters as the flags name them, each connection waiting at
// most timeout; an error is bad usage, naming the flag.
func (c *clusterFlags) endpoints(timeout time.Duration) (src, dst topology.Endpoint, err error) {
	if src, err = endpointFor("--source", *c.source, *c.sourceCA, envSourcePassword, timeout); err != nil {
		return src, dst, err
	}
	if src, err = c.readPreference.withReadPreference(src); err != nil {
		return src, dst, err
	}
	if dst, err = endpointFor("--destination", *c.destination, *c.destinationCA, envDestinationPassword, timeout); err != nil {
		return src, dst, err
	}
	if src.HostMap, err = c.hostMap.hostMap(); err != nil {
		return src, dst, err
	}
	dst.HostMap = src.HostMap
	return src, dst, nil
}
