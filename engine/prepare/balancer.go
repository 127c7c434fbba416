package prepare

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/mongoerr"
)

// balancerPoll is how often StopBalancer looks again for a balancing round or a
// chunk migration still in flight.
const balancerPoll = 500 * time.Millisecond

// StopBalancer stops the balancer of the cluster behind the mongos client and
// waits until no balancing round runs and no chunk migration is in flight
// (config.migrations empty), bounded by ctx. wasOn is the balancer's state
// before: hand it to RestoreBalancer when the migration ends. It writes nothing
// but the balancer setting, and nothing at all when the balancer is already off.
func StopBalancer(ctx context.Context, client *mongo.Client) (wasOn bool, err error) {
	mode, err := balancerMode(ctx, client)
	if err != nil {
		return false, fmt.Errorf("read the balancer state: %w", err)
	}
	wasOn = mode != "off"
	if wasOn {
		if err := setBalancer(ctx, client, false); err != nil {
			return wasOn, fmt.Errorf("stop the balancer: %w", err)
		}
	}
	if err := waitBalancerIdle(ctx, client); err != nil {
		return wasOn, err
	}
	return wasOn, nil
}

// RestoreBalancer puts the balancer back as StopBalancer found it: started again
// when it was on, left alone when it was off. Calling it twice is harmless.
func RestoreBalancer(ctx context.Context, client *mongo.Client, wasOn bool) error {
	if !wasOn {
		return nil
	}
	if err := setBalancer(ctx, client, true); err != nil {
		return fmt.Errorf("restart the balancer: %w", err)
	}
	return nil
}

// balancerMode is balancerStatus' mode ("full", "off", "autoSplitOnly"), or on
// servers without the command the mode config.settings implies.
func balancerMode(ctx context.Context, client *mongo.Client) (string, error) {
	status, err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "balancerStatus", Value: 1}}).Raw()
	if err == nil {
		mode, _ := status.Lookup("mode").StringValueOK()
		if mode == "" {
			return "", fmt.Errorf("balancerStatus reported no mode: %s", status)
		}
		return mode, nil
	}
	if !mongoerr.HasCode(err, codeCommandNotFound) {
		return "", err
	}
	settings, err := client.Database("config").Collection("settings").FindOne(ctx, bson.D{{Key: "_id", Value: "balancer"}}).Raw()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "full", nil // no document: the balancer runs, MongoDB's default
	}
	if err != nil {
		return "", err
	}
	if stopped, _ := settings.Lookup("stopped").BooleanOK(); stopped {
		return "off", nil
	}
	if mode, ok := settings.Lookup("mode").StringValueOK(); ok {
		return mode, nil
	}
	return "full", nil
}

// setBalancerAttempts bounds the sends of balancerStart/balancerStop on network errors.
const setBalancerAttempts = 3

// setBalancer runs balancerStart or balancerStop (3.4+), or on older servers
// writes config.settings' balancer document as the shell's sh.setBalancerState did.
func setBalancer(ctx context.Context, client *mongo.Client, on bool) error {
	cmd := "balancerStop"
	if on {
		cmd = "balancerStart"
	}
	// A connection a restarted mongos dropped fails the first command sent on it (the
	// driver then empties its pool): the command is idempotent, so it is sent again.
	var err error
	for attempt := 1; ; attempt++ {
		err = client.Database("admin").RunCommand(ctx, bson.D{{Key: cmd, Value: 1}}).Err()
		if err == nil || !mongo.IsNetworkError(err) || attempt == setBalancerAttempts || ctx.Err() != nil {
			break
		}
	}
	if err == nil || !mongoerr.HasCode(err, codeCommandNotFound) {
		return err
	}
	_, err = client.Database("config").Collection("settings").UpdateOne(ctx,
		bson.D{{Key: "_id", Value: "balancer"}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "stopped", Value: !on}}}},
		options.Update().SetUpsert(true))
	return err
}

// waitBalancerIdle polls until the balancer is between rounds and config.migrations
// lists no chunk move.
func waitBalancerIdle(ctx context.Context, client *mongo.Client) error {
	for {
		busy, err := balancerBusy(ctx, client)
		if err != nil {
			return fmt.Errorf("wait for chunk migrations to finish: %w", err)
		}
		if busy == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the balancer was stopped but %s: wait for it to finish, then start again (%w)", busy, context.Cause(ctx))
		case <-time.After(balancerPoll):
		}
	}
}

// balancerBusy says what is still moving ("" when nothing is).
func balancerBusy(ctx context.Context, client *mongo.Client) (string, error) {
	status, err := client.Database("admin").RunCommand(ctx, bson.D{{Key: "balancerStatus", Value: 1}}).Raw()
	switch {
	case err == nil:
		if in, _ := status.Lookup("inBalancerRound").BooleanOK(); in {
			return "a balancing round is still running", nil
		}
	case !mongoerr.HasCode(err, codeCommandNotFound):
		return "", err
	}
	var moving bson.Raw
	moving, err = client.Database("config").Collection("migrations").FindOne(ctx, bson.D{}).Raw()
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return "", nil
	case err != nil:
		return "", err
	}
	ns, _ := moving.Lookup("ns").StringValueOK()
	return fmt.Sprintf("a chunk migration of %s is still in flight (config.migrations)", ns), nil
}
