package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/sandbox/seed"
)

// keyFilter is the filter of doc by _id and shard key (what a sharded write needs).
func keyFilter(c seed.Collection, doc bson.Raw) bson.D {
	filter := bson.D{{Key: "_id", Value: doc.Lookup("_id")}}
	for _, f := range c.KeyFields() {
		if f != "_id" {
			filter = append(filter, bson.E{Key: f, Value: doc.Lookup(strings.Split(f, ".")...)})
		}
	}
	return filter
}

// Once the continuous verification compared every namespace, the finalize
// compares no namespace whole: it rechecks the documents written since (on the
// source, and behind Shardlift's back on the destination), and finds the one
// tampered with.
func TestSandboxFinalizeVerifiesOnlyWhatChangedSinceTheContinuousVerification(t *testing.T) {
	e := startE2E(t, 1000)
	// Its reads unpaced (they still yield to the replays): what this test checks
	// is what the finalize reuses, not the pacing (throttle_test.go), and the
	// default duty cycle added 30 s to it on a loaded machine.
	m := e.migration(newMemCheckpoints("e2e"), func(c *Config) { c.ContinuousDuty = 1 })
	r := run(m, StartOptions{WipeDestination: true})
	await(t, m, 3*time.Minute, "ready", isState(Ready))
	s := await(t, m, 3*time.Minute, "every namespace compared", func(s Snapshot) bool {
		c := s.Continuous
		return c != nil && c.Namespaces > 0 && c.NamespacesCompared == c.Namespaces
	})
	t.Logf("continuous verification: %s", s.Continuous.Text())

	ctx := context.Background()
	colls := seed.Collections()
	written, tampered := colls[0], colls[1]
	cur, err := e.srcC.Database(written.DB).Collection(written.Name).Find(ctx, bson.D{}, options.Find().SetLimit(3))
	if err != nil {
		t.Fatal(err)
	}
	var docs []bson.Raw
	for cur.Next(ctx) {
		docs = append(docs, append(bson.Raw(nil), cur.Current...))
	}
	if err := cur.Err(); err != nil || len(docs) != 3 {
		t.Fatalf("read 3 documents of %s: %d, %v", written.Namespace(), len(docs), err)
	}
	for _, doc := range docs {
		if _, err := e.srcC.Database(written.DB).Collection(written.Name).UpdateOne(ctx, keyFilter(written, doc), bson.D{{Key: "$set", Value: bson.D{{Key: "continuous", Value: true}}}}); err != nil {
			t.Fatal(err)
		}
	}
	e.startCutover(m)
	await(t, m, time.Minute, "closed the optime gap", func(s Snapshot) bool { return s.OptimeGapKnown && s.OptimeGap == 0 })
	victim, err := e.dstC.Database(tampered.DB).Collection(tampered.Name).FindOne(ctx, bson.D{}).Raw()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.dstC.Database(tampered.DB).Collection(tampered.Name).UpdateOne(ctx, keyFilter(tampered, victim), bson.D{{Key: "$set", Value: bson.D{{Key: "tampered", Value: true}}}}); err != nil {
		t.Fatal(err)
	}

	if c := m.Snapshot().Continuous; c != nil {
		t.Logf("before I'm done: %s", c.Text())
	}
	err = m.Done(ctx, false)
	var me *MismatchError
	if !errors.As(err, &me) {
		t.Fatalf("Done after tampering with the destination: %v", err)
	}
	v := me.Verification
	t.Logf("finalize's verification: %+v, reuse %+v", v, v.Continuous)
	if v.Continuous == nil || v.Continuous.Compared != 0 || v.Continuous.RangesCompared != 0 || v.Continuous.Reused != v.Namespaces {
		t.Fatalf("the finalize compared namespaces or ranges: %+v", v.Continuous)
	}
	// What the steps during the cutover did not recheck yet of the three writes
	// and the tampered document (at least the tampered one, differing), and what
	// else wrote meanwhile (the TTL monitor): far from the 1,000 documents.
	if v.Continuous.Rechecked < 1 || v.Continuous.Rechecked > 100 {
		t.Fatalf("the finalize rechecked %d documents, want the few written since", v.Continuous.Rechecked)
	}
	if len(v.Mismatches) != 1 || v.Mismatches[0].Namespace != tampered.Namespace() || v.Mismatches[0].SampleIDs[0] != victim.Lookup("_id").String() {
		t.Fatalf("mismatches %+v, want %s _id %s", v.Mismatches, tampered.Namespace(), victim.Lookup("_id"))
	}
	if err := m.Done(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := <-r.done; err != nil || m.State() != Done {
		t.Fatalf("Run %v, state %s", err, m.State())
	}
}
