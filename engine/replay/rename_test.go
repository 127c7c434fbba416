package replay_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/shardlift/shardlift/engine/oplog"
	"github.com/shardlift/shardlift/engine/replay"
	"github.com/shardlift/shardlift/sandbox/wire"
)

// noDropTargetServer is a server that, as FerretDB does, has no renameCollection
// dropTarget: a catalog of collection names, each with a generation to tell a
// collection from a new one of the same name.
type noDropTargetServer struct {
	mu         sync.Mutex
	colls      map[string]string // namespace -> what it holds
	failRename int               // renames (without dropTarget) to fail, as a crash would
	log        []string
}

func (s *noDropTargetServer) Handle(_ context.Context, _ *wire.Session, cmd *wire.Command) bson.Raw {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch strings.ToLower(cmd.Name) {
	case "hello", "ismaster":
		return wire.OK(wire.HelloBase(cmd, "7.0.0")...)
	case "ping", "endsessions":
		return wire.OK()
	case "listcollections":
		name, _ := cmd.Lookup("filter").Document().Lookup("name").StringValueOK()
		batch := bson.A{}
		if _, ok := s.colls[cmd.DB+"."+name]; ok {
			batch = append(batch, bson.D{{Key: "name", Value: name}, {Key: "type", Value: "collection"}})
		}
		return wire.OK(bson.E{Key: "cursor", Value: bson.D{{Key: "id", Value: int64(0)}, {Key: "ns", Value: cmd.DB + ".$cmd.listCollections"}, {Key: "firstBatch", Value: batch}}})
	case "drop":
		ns := cmd.DB + "." + cmd.Lookup("drop").StringValue()
		if _, ok := s.colls[ns]; !ok {
			return wire.ErrorReply(wire.NamespaceNotFound("ns not found"))
		}
		delete(s.colls, ns)
		s.log = append(s.log, "drop "+ns)
		return wire.OK()
	case "renamecollection":
		from, to := cmd.Lookup("renameCollection").StringValue(), cmd.Lookup("to").StringValue()
		if dt, _ := cmd.Lookup("dropTarget").BooleanOK(); dt {
			return wire.ErrorReply(&wire.Error{Code: 238, Name: "NotImplemented", Msg: `renameCollection: support for field "dropTarget" with value true is not implemented yet`})
		}
		if s.failRename > 0 {
			s.failRename--
			return wire.ErrorReply(&wire.Error{Code: 11600, Name: "InterruptedAtShutdown", Msg: "interrupted at shutdown"})
		}
		content, ok := s.colls[from]
		if !ok {
			return wire.ErrorReply(wire.NamespaceNotFound("Source collection " + from + " does not exist"))
		}
		if _, exists := s.colls[to]; exists {
			return wire.ErrorReply(&wire.Error{Code: 48, Name: "NamespaceExists", Msg: "target namespace exists"})
		}
		delete(s.colls, from)
		s.colls[to] = content
		s.log = append(s.log, "rename "+from+" "+to)
		return wire.OK()
	}
	return wire.ErrorReply(wire.CommandNotFound(cmd.Name))
}

func (s *noDropTargetServer) state() (map[string]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.colls {
		out[k] = v
	}
	return out, slices.Clone(s.log)
}

func TestRenameWithDropTargetWorksWhereTheDestinationLacksTheOption(t *testing.T) {
	// $out and mapReduce write a temporary collection and rename it over the target
	// with dropTarget. A destination without that option gets a drop and a rename,
	// each safe to run again: a crash between them, or after both, must never drop
	// the renamed collection.
	srv := &noDropTargetServer{colls: map[string]string{"shop.tmp.agg_out.1": "new report", "shop.report": "old report"}, failRename: 1}
	l, err := wire.Listen(wire.Config{Addr: "127.0.0.1:0", Handler: srv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ctx := context.Background()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI("mongodb://"+l.Addr()).SetDirect(true).SetServerSelectionTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })

	exec := replay.NewMongoDDL(client, nil)
	d := oplog.DDL{Kind: oplog.DDLRename, NS: oplog.ParseNamespace("shop.tmp.agg_out.1"), To: oplog.ParseNamespace("shop.report"), DropTarget: true}
	if err := exec.Exec(ctx, d); err == nil {
		t.Fatal("the rename after the drop was interrupted, yet Exec reported success")
	}
	colls, _ := srv.state()
	if _, ok := colls["shop.report"]; ok {
		t.Fatalf("after the first step the target is still there: %v", colls)
	}
	// The resumed replay applies the DDL again, then once more after a later restart.
	for run := range 2 {
		if err := exec.Exec(ctx, d); err != nil {
			t.Fatalf("run %d: %v", run+2, err)
		}
	}
	colls, log := srv.state()
	if len(colls) != 1 || colls["shop.report"] != "new report" {
		t.Errorf("collections %v, want shop.report holding the new report alone", colls)
	}
	if want := []string{"drop shop.report", "rename shop.tmp.agg_out.1 shop.report"}; !slices.Equal(log, want) {
		t.Errorf("the destination ran %q, want %q", log, want)
	}
}
