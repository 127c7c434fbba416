package sandbox

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Connect opens a client on the cluster's router and pings it.
func (c *Cluster) Connect(ctx context.Context) (*mongo.Client, error) {
	opts := options.Client().ApplyURI(c.URI()).SetServerSelectionTimeout(10 * time.Second)
	client, err := mongo.Connect(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := client.Ping(ctx, nil); err != nil {
		client.Disconnect(context.WithoutCancel(ctx))
		return nil, err
	}
	return client, nil
}
