package topology

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/shardlift/shardlift/engine/namespaces"
)

// The marker: while a migration runs, its destination holds one document,
// MarkerDatabase.MarkerCollection {_id: MarkerID, ...Marker}, which Shardlift
// writes when the migration starts (engine/prepare) and drops, database and all,
// when it is done, cancelled or expires. A second migration into the same
// destination finds it and is refused. The database is one of Shardlift's own
// (namespaces.UserDatabase says no): never migrated, verified, counted as data
// nor wiped.
const (
	MarkerDatabase   = namespaces.MarkerDatabase
	MarkerCollection = "migration"
	MarkerID         = "migration"
)

// Marker says which migration holds a destination.
type Marker struct {
	MigrationID     string             `bson:"migrationId"`
	SourceClusterID primitive.ObjectID `bson:"sourceClusterId"`
	// Workstation is the host name of the machine that runs the migration.
	Workstation string    `bson:"workstation"`
	StartedAt   time.Time `bson:"startedAt"`
}

func (m Marker) String() string {
	return fmt.Sprintf("migration %s (from source cluster %s, started %s on workstation %s)",
		m.MigrationID, m.SourceClusterID.Hex(), m.StartedAt.UTC().Format("2006-01-02 15:04 MST"), m.Workstation)
}

// ReadMarker reads a destination's marker: nil when no migration holds it.
func ReadMarker(ctx context.Context, client *mongo.Client) (*Marker, error) {
	var m Marker
	err := client.Database(MarkerDatabase).Collection(MarkerCollection).FindOne(ctx, bson.D{{Key: "_id", Value: MarkerID}}).Decode(&m)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read Shardlift's marker %s.%s: %w", MarkerDatabase, MarkerCollection, err)
	}
	return &m, nil
}
