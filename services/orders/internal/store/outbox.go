package store

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
)

// OutboxPublisher is the outbox relay's publisher for the orders collection:
// it publishes a pending event and then removes it from its order's outbox.
//
// It works around shared/outbox: Relay.flush removes sent events with
// {$pull: {outbox: {id: {$in: [...]}}}}, a condition FerretDB v1 ignores
// ($pull there only removes elements equal to the given value; the update
// matches and modifies nothing, without error). Sent events then stayed and
// went out again on every later flush and every sweep. $pullAll of the
// elements exactly as read works on FerretDB and MongoDB alike. Once the relay
// removes what it sent itself, this type can go: the removal here then finds
// nothing to do.
type OutboxPublisher struct {
	pub    outbox.Publisher
	w      *mongox.Writer
	orders *mongo.Collection
	log    *slog.Logger
}

// NewOutboxPublisher returns a publisher that publishes through pub (the
// bus) and cleans the outboxes of orders (the collection the relay watches)
// through w.
func NewOutboxPublisher(pub outbox.Publisher, w *mongox.Writer, orders *mongo.Collection, log *slog.Logger) *OutboxPublisher {
	return &OutboxPublisher{pub: pub, w: w, orders: orders, log: log}
}

var outboxOnly = options.FindOne().SetProjection(bson.D{{Key: outbox.Field, Value: 1}})

// Publish publishes data on subject and, once it is out, removes it from the
// outbox of the order it is about (every order event carries the order's id
// as "id"). A failed removal is logged, not returned: the event is out, and
// at worst goes out again, which listeners tolerate.
func (p *OutboxPublisher) Publish(ctx context.Context, subject events.Subject, data []byte) error {
	if err := p.pub.Publish(ctx, subject, data); err != nil {
		return err
	}
	var ref struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		return nil // not an order event: nothing of ours to clean
	}
	oid, ok := objectID(ref.ID)
	if !ok {
		return nil
	}
	err := p.w.Lock(ctx, p.orders, oid, func(ctx context.Context) error {
		var d struct {
			Outbox []outbox.Pending `bson:"outbox"`
		}
		if err := p.orders.FindOne(ctx, bson.D{{Key: "_id", Value: oid}}, outboxOnly).Decode(&d); err != nil {
			return notFound(err)
		}
		var sent []outbox.Pending
		for _, e := range d.Outbox {
			if e.Subject == string(subject) && bytes.Equal(e.Data, data) {
				sent = append(sent, e)
			}
		}
		if len(sent) == 0 {
			return nil
		}
		_, err := p.orders.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
			bson.D{{Key: "$pullAll", Value: bson.D{{Key: outbox.Field, Value: sent}}}})
		return err
	})
	if err != nil {
		p.log.Warn("outbox: remove sent event", "order_id", ref.ID, "subject", string(subject), "err", err)
	}
	return nil
}
