package embedded_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	stan "github.com/nats-io/stan.go"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/shared/embedded"
	"github.com/stuffmart/stuffmart/shared/mongox"
)

// The local stack keeps its data across restarts: each server is
// started twice on one data folder here.

func collection(t *testing.T, ctx context.Context, uri string) *mongo.Collection {
	t.Helper()
	client, err := mongox.Connect(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := client.Disconnect(context.Background()); err != nil {
			t.Errorf("disconnect: %v", err)
		}
	})
	return client.Database("stuff").Collection("stuff")
}

func TestFerretKeepsDataAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	steps := []struct {
		name string
		run  func(t *testing.T, c *mongo.Collection)
	}{
		{"save", func(t *testing.T, c *mongo.Collection) {
			if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "s1"}, {Key: "title", Value: "Notes"}}); err != nil {
				t.Fatal(err)
			}
		}},
		{"read after restart", func(t *testing.T, c *mongo.Collection) {
			var doc struct {
				Title string `bson:"title"`
			}
			if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: "s1"}}).Decode(&doc); err != nil || doc.Title != "Notes" {
				t.Fatalf("got %+v, %v; want the document saved before the restart", doc, err)
			}
		}},
	}
	for _, step := range steps {
		f, err := embedded.StartFerret(dir, "127.0.0.1:0", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("%s: start: %v", step.name, err)
		}
		if !strings.HasPrefix(f.URI, "mongodb://127.0.0.1:") {
			f.Stop()
			t.Fatalf("URI %q", f.URI)
		}
		ok := t.Run(step.name, func(t *testing.T) { step.run(t, collection(t, ctx, f.URI)) })
		f.Stop()
		if !ok {
			return
		}
	}
}

func TestNATSFileStoreKeepsMessagesAcrossRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n, err := embedded.StartNATS("stuffmart-embedded", "127.0.0.1", 0, dir)
	if err != nil {
		t.Fatal(err)
	}
	port := n.Port()
	if port == 0 || !strings.HasSuffix(n.URL, ":"+strconv.Itoa(port)) || n.ClusterID != "stuffmart-embedded" {
		n.Stop()
		t.Fatalf("URL %q, port %d, cluster %q", n.URL, port, n.ClusterID)
	}
	publish := func(url string, data string) {
		t.Helper()
		sc, err := stan.Connect("stuffmart-embedded", "pub-"+data, stan.NatsURL(url))
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := sc.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}()
		if err := sc.Publish("stuff:created", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	publish(n.URL, "before-restart")
	n.Stop()

	n, err = embedded.StartNATS("stuffmart-embedded", "127.0.0.1", port, dir)
	if err != nil {
		t.Fatalf("restart on the same port and folder: %v", err)
	}
	defer n.Stop()
	sc, err := stan.Connect("stuffmart-embedded", "sub", stan.NatsURL(n.URL))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sc.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	got := make(chan string, 1)
	sub, err := sc.Subscribe("stuff:created", func(m *stan.Msg) { got <- string(m.Data) }, stan.DeliverAllAvailable())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := sub.Close(); err != nil {
			t.Errorf("close subscription: %v", err)
		}
	}()
	select {
	case d := <-got:
		if d != "before-restart" {
			t.Fatalf("got %q, want the message published before the restart", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the message published before the restart is gone")
	}
}
