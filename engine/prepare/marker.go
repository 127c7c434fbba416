package prepare

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/topology"
)

// HeldError refuses to change a destination that another migration holds (its
// marker names another migration).
type HeldError struct {
	Marker topology.Marker
}

func (e *HeldError) Error() string {
	return "the destination is held by " + e.Marker.String()
}

// markerDoc is the marker as stored: its fixed _id, then the Marker's fields.
type markerDoc struct {
	ID              string `bson:"_id"`
	topology.Marker `bson:",inline"`
}

// PlaceMarker marks the destination as held by m.MigrationID. The marker's _id is
// fixed, so of two migrations starting at once only one insert succeeds. A marker of
// the same migration is kept as it is (a resumed start); another migration's is a
// *HeldError, and nothing is written.
func PlaceMarker(ctx context.Context, client *mongo.Client, m topology.Marker) error {
	coll := client.Database(topology.MarkerDatabase).Collection(topology.MarkerCollection)
	for range 3 {
		held, err := topology.ReadMarker(ctx, client)
		switch {
		case err != nil:
			return err
		case held != nil && held.MigrationID == m.MigrationID:
			return nil
		case held != nil:
			return &HeldError{Marker: *held}
		}
		_, err = coll.InsertOne(ctx, markerDoc{ID: topology.MarkerID, Marker: m})
		if !mongo.IsDuplicateKeyError(err) {
			if err != nil {
				return fmt.Errorf("write Shardlift's marker on the destination: %w", err)
			}
			return nil
		}
		// Another migration placed its marker since the read: read it.
	}
	return errors.New("write Shardlift's marker on the destination: it kept appearing and vanishing while being written; try again")
}

// RemoveMarker drops the marker's database when the marker names migrationID,
// leaving nothing of Shardlift's on the destination, and returns the marker it
// found (nil when there was none). Another migration's marker is left in place.
// Between the check and the drop no other migration can place its own: the
// marker's fixed _id is taken.
func RemoveMarker(ctx context.Context, client *mongo.Client, migrationID string) (*topology.Marker, error) {
	m, err := topology.ReadMarker(ctx, client)
	if err != nil || m == nil || m.MigrationID != migrationID {
		return m, err
	}
	if err := client.Database(topology.MarkerDatabase).Drop(ctx); err != nil {
		return nil, fmt.Errorf("remove Shardlift's marker (drop database %s) on the destination: %w", topology.MarkerDatabase, err)
	}
	return m, nil
}

// heldByAnother is a *HeldError when another migration than migrationID holds the
// destination.
func heldByAnother(ctx context.Context, client *mongo.Client, migrationID string) error {
	m, err := topology.ReadMarker(ctx, client)
	if err != nil {
		return err
	}
	if m != nil && m.MigrationID != migrationID {
		return &HeldError{Marker: *m}
	}
	return nil
}

// ClearMarker removes the marker of migration migrationID from the destination
// client reaches, whose identity is id, once confirm is that destination's clusterId.
// gone reports a marker already removed; a marker that names another migration by
// now is left and refused.
func ClearMarker(ctx context.Context, client *mongo.Client, id topology.Identity, confirm, migrationID string) (gone bool, err error) {
	if clusterID := id.ClusterID.Hex(); confirm != clusterID {
		return false, fmt.Errorf("nothing cleared: %s is not this destination's clusterId, %s", confirm, clusterID)
	}
	found, err := RemoveMarker(ctx, client, migrationID)
	switch {
	case err != nil:
		return false, err
	case found == nil:
		return true, nil
	case found.MigrationID != migrationID:
		return false, fmt.Errorf("nothing cleared: the marker changed meanwhile, it now names %s; look again before clearing it", found)
	}
	return false, nil
}
