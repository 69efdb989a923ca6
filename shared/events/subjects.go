// Package events is the one place where Stuffmart's event subjects and
// payloads are defined, and the only package that knows about NATS Streaming
// (stan is end-of-life: a move to JetStream should touch this package only).
package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stuffmart/stuffmart/shared/correlation"
)

// Subject names a channel.
type Subject string

// Every subject the services exchange; docs/events.md says who publishes
// and who consumes each.
const (
	StuffCreated       Subject = "stuff:created"
	StuffUpdated       Subject = "stuff:updated"
	OrderCreated       Subject = "order:created"
	OrderCancelled     Subject = "order:cancelled"
	OrderCompleted     Subject = "order:completed"
	ExpirationComplete Subject = "expiration:complete"
	PaymentCreated     Subject = "payment:created"
	UserBanned         Subject = "user:banned"
	UserUnbanned       Subject = "user:unbanned"
)

// Event is a payload that knows its subject.
type Event interface {
	Subject() Subject
}

// Order statuses carried in order events.
const (
	OrderStatusCreated   = "created"
	OrderStatusCancelled = "cancelled"
	OrderStatusComplete  = "complete"
)

// StuffData is the payload of stuff:created and stuff:updated. Version
// increases by one on every change; OrderID is set while an order holds it.
type StuffData struct {
	ID       string `json:"id"`
	Version  int64  `json:"version"`
	Title    string `json:"title"`
	Price    int64  `json:"price"`
	Currency string `json:"currency"`
	UserID   string `json:"userId"`
	OrderID  string `json:"orderId,omitempty"`
	// Status is available, reserved or sold.
	Status string `json:"status,omitempty"`
}

// StuffCreatedEvent is published when a stuff is listed.
type StuffCreatedEvent StuffData

// Subject is stuff:created.
func (StuffCreatedEvent) Subject() Subject { return StuffCreated }

// StuffUpdatedEvent is published on every change of a stuff.
type StuffUpdatedEvent StuffData

// Subject is stuff:updated.
func (StuffUpdatedEvent) Subject() Subject { return StuffUpdated }

// StuffRef names a stuff inside order events. Title is set in
// order:created only: the title the buyer ordered (payments names the card
// payment after it).
type StuffRef struct {
	ID    string `json:"id"`
	Title string `json:"title,omitempty"`
	Price int64  `json:"price,omitempty"`
}

// OrderCreatedEvent is published when a buyer's order takes hold of a stuff.
type OrderCreatedEvent struct {
	ID        string    `json:"id"`
	Version   int64     `json:"version"`
	Status    string    `json:"status"`
	UserID    string    `json:"userId"`
	ExpiresAt time.Time `json:"expiresAt"`
	Stuff     StuffRef  `json:"stuff"`
}

// Subject is order:created.
func (OrderCreatedEvent) Subject() Subject { return OrderCreated }

// OrderCancelledEvent is published when an order is cancelled or expires; the
// stuff is released.
type OrderCancelledEvent struct {
	ID      string   `json:"id"`
	Version int64    `json:"version"`
	Stuff   StuffRef `json:"stuff"`
}

// Subject is order:cancelled.
func (OrderCancelledEvent) Subject() Subject { return OrderCancelled }

// OrderCompletedEvent is published when an order is paid; the stuff is sold
// to UserID.
type OrderCompletedEvent struct {
	ID      string   `json:"id"`
	Version int64    `json:"version"`
	UserID  string   `json:"userId"`
	Stuff   StuffRef `json:"stuff"`
}

// Subject is order:completed.
func (OrderCompletedEvent) Subject() Subject { return OrderCompleted }

// ExpirationCompleteEvent is published when an order's hold deadline passes.
type ExpirationCompleteEvent struct {
	OrderID string `json:"orderId"`
}

// Subject is expiration:complete.
func (ExpirationCompleteEvent) Subject() Subject { return ExpirationComplete }

// PaymentCreatedEvent is published when an order is paid.
type PaymentCreatedEvent struct {
	ID         string `json:"id"`
	OrderID    string `json:"orderId"`
	Amount     int64  `json:"amount"`
	ProviderID string `json:"providerId"`
}

// Subject is payment:created.
func (PaymentCreatedEvent) Subject() Subject { return PaymentCreated }

// UserBannedEvent is published when an admin bans a user. Every service
// refuses the user's access tokens issued before At; the stuff service hides
// the user's listings and orders cancels the user's open orders.
type UserBannedEvent struct {
	UserID string    `json:"userId"`
	At     time.Time `json:"at,omitempty"`
}

// Subject is user:banned.
func (UserBannedEvent) Subject() Subject { return UserBanned }

// UserUnbannedEvent is published when an admin lifts a ban: the stuff
// service lists the user's stuff again. (Tokens need nothing: the user signs
// in again, and a token issued after the ban is accepted.)
type UserUnbannedEvent struct {
	UserID string    `json:"userId"`
	At     time.Time `json:"at,omitempty"`
}

// Subject is user:unbanned.
func (UserUnbannedEvent) Subject() Subject { return UserUnbanned }

// Encode marshals an event's payload. When ctx carries a correlation id the
// payload carries it too, as "correlationId" beside the event's own fields
// (the envelope: NATS Streaming messages have no headers).
func Encode(ctx context.Context, ev Event) ([]byte, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", ev.Subject(), err)
	}
	id := correlation.ID(ctx)
	if id == "" || len(b) < 2 || b[0] != '{' {
		return b, nil
	}
	// Valid ids need no JSON escaping.
	env := make([]byte, 0, len(b)+len(id)+20)
	env = append(env, `{"correlationId":"`...)
	env = append(env, id...)
	env = append(env, '"')
	if len(b) > 2 {
		env = append(env, ',')
	}
	return append(env, b[1:]...), nil
}

// Decode unmarshals a message's payload into T. A payload that does not decode
// is Permanent: redelivering it cannot help.
func Decode[T Event](m Msg) (T, error) {
	var v T
	if err := json.Unmarshal(m.Data, &v); err != nil {
		return v, Permanent(fmt.Errorf("decode %s: %w", m.Subject, err))
	}
	return v, nil
}
