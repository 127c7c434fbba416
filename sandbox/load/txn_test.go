package load_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/shardlift/shardlift/sandbox/load"
	"github.com/shardlift/shardlift/sandbox/seed"
)

// The transaction load commits transactions and aborts one in five, with no
// failure, beside the plain load.
func TestTransactionLoadCommitsAndAbortsCleanlyBesideThePlainLoad(t *testing.T) {
	client := seeded(t, 2000, seed.ObjectIDs)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var plain load.Stats
	var txns load.TxnStats
	plainDone := make(chan error, 1)
	txnDone := make(chan error, 1)
	go func() { plainDone <- load.Run(ctx, client, 100, rand.New(rand.NewPCG(3, 4)), &plain) }()
	go func() { txnDone <- load.RunTxns(ctx, client, 20, seed.ObjectIDs, rand.New(rand.NewPCG(5, 6)), &txns) }()
	deadline := time.Now().Add(2 * time.Minute)
	for (txns.Committed() < 20 || txns.Aborted() < 3 || plain.Total() < 100) && txns.Errors() == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-txnDone; err != nil {
		t.Fatal(err)
	}
	if err := <-plainDone; err != nil {
		t.Fatal(err)
	}
	t.Logf("%s; %s", &txns, &plain)
	if txns.Errors() != 0 || plain.Errors() != 0 {
		t.Fatalf("failures: transactions %s; plain load %s", &txns, &plain)
	}
	if txns.Committed() < 20 || txns.Aborted() < 3 {
		t.Fatalf("in two minutes: %s", &txns)
	}
}
