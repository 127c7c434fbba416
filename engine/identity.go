package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/shardlift/shardlift/engine/topology"
)

// Identities and the destination's marker (DESIGN section 2: know each cluster by
// its identity; nothing of Shardlift's left on the destination once it ends):
//
//	every Run (and a Cancel without one): Identify ─► refuse one cluster, or shared
//	    servers (*SameClusterError) ─► refuse clusters other than the recorded ones
//	    (*WrongClusterError) ─► record them when the state file has none yet
//	start: refuse a destination another migration's marker holds ─► PlaceMarker
//	resume: PlaceMarker again (kept, or put back when it was cleared)
//	done, cancel, expiry: RemoveMarker
//
// Nothing is written, to the clusters or the checkpoints, before these refusals.

// checkIdentities refuses a source and a destination that are one cluster or
// share servers, and clusters other than the ones the migration recorded; it
// records them when the checkpoints have none yet. recorded is the history's note
// of a first recording in a migration that had already started (a state file
// older than identities), for the caller to note with life held.
func (m *Migration) checkIdentities(ctx context.Context, c Clusters) (recorded string, err error) {
	src, dst, err := c.Identify(ctx)
	if err != nil {
		return "", fmt.Errorf("read the identities of the clusters: %w", err)
	}
	if o := topology.Compare(src, dst); o.Any() {
		return "", &SameClusterError{Source: m.cfg.Source.String(), Destination: m.cfg.Destination.String(), SourceID: src, DestinationID: dst, Overlap: o}
	}
	m.recMu.Lock()
	recSrc, recDst := m.rec.SourceIdentity, m.rec.DestinationIdentity
	m.recMu.Unlock()
	for _, side := range []struct {
		role            string
		endpoint        string
		recorded, found *topology.Identity
	}{{"source", m.cfg.Source.String(), recSrc, &src}, {"destination", m.cfg.Destination.String(), recDst, &dst}} {
		if side.recorded != nil && side.recorded.ClusterID != side.found.ClusterID {
			return "", &WrongClusterError{MigrationID: m.cfg.ID, Role: side.role, Endpoint: side.endpoint, Recorded: *side.recorded, Found: *side.found}
		}
	}
	if recSrc != nil && recDst != nil {
		return "", nil
	}
	if err := m.saveRecord(func(rec *Record) { rec.SourceIdentity, rec.DestinationIdentity = &src, &dst }); err != nil {
		return "", err
	}
	if st := m.State(); st != Draft && st != Validated {
		return fmt.Sprintf("recorded the clusters' identities on this first resume (the state file predates them): source %s, destination %s", src, dst), nil
	}
	return "", nil
}

// marker is what the migration's marker on the destination says.
func (m *Migration) marker() topology.Marker {
	m.recMu.Lock()
	var srcID topology.Identity
	if m.rec.SourceIdentity != nil {
		srcID = *m.rec.SourceIdentity
	}
	m.recMu.Unlock()
	m.mu.Lock()
	started := m.mu.startedAt
	m.mu.Unlock()
	if started.IsZero() {
		started = m.clock.Now()
	}
	return topology.Marker{MigrationID: m.cfg.ID, SourceClusterID: srcID.ClusterID, Workstation: m.cfg.Workstation, StartedAt: started}
}

// refuseHeldDestination refuses a destination whose marker names another migration.
func (m *Migration) refuseHeldDestination(ctx context.Context, c Clusters) error {
	held, err := c.DestinationMarker(ctx)
	if err != nil {
		return fmt.Errorf("look for another migration's marker on the destination: %w", err)
	}
	if held != nil && held.MigrationID != m.cfg.ID {
		return &DestinationInUseError{Destination: m.cfg.Destination.String(), Marker: *held}
	}
	return nil
}

// holdDestination places the migration's marker on the destination (it stays as it
// is when already there), or refuses when another migration's is.
func (m *Migration) holdDestination(ctx context.Context, c Clusters) error {
	held, err := c.PlaceMarker(ctx, m.marker())
	if err != nil {
		return err
	}
	if held != nil {
		return &DestinationInUseError{Destination: m.cfg.Destination.String(), Marker: *held}
	}
	return nil
}

// releaseDestination removes the migration's marker from the destination. Another
// migration's marker is left in place, and said so. Called with life held.
func (m *Migration) releaseDestination(ctx context.Context, c Clusters) error {
	found, err := c.RemoveMarker(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("remove Shardlift's marker from the destination: %w (drop the database %s on the destination by hand)", err, topology.MarkerDatabase)
	case found == nil:
	case found.MigrationID == m.cfg.ID:
		m.note("Shardlift's marker removed from the destination: nothing of Shardlift's is left on it")
	default:
		m.noteAt(slog.LevelWarn, "the destination's marker names "+found.String()+", not this migration: it was left in place")
	}
	return nil
}
