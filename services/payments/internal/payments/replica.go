package payments

import (
	"context"
	"errors"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Order statuses of the replica (the same words as in order events).
const (
	StatusCreated   = "created"
	StatusCancelled = "cancelled"
	StatusComplete  = "complete"
)

// Order is the local replica of an order: what paying for it needs.
type Order struct {
	ID     string
	UserID string
	// Title is the stuff's title as ordered ("" for orders announced before
	// order:created carried it).
	Title     string
	Price     int64 // cents
	Status    string
	Version   int64
	ExpiresAt time.Time
}

// ErrOutOfOrder is returned by the replica when an event is ahead of it (an
// earlier version is not applied yet): the event must be retried later.
var ErrOutOfOrder = errors.New("order event ahead of the replica")

// OrderCreated adds an order to the replica; a redelivery changes nothing.
func (s *Service) OrderCreated(ctx context.Context, o Order) error {
	if o.Status == "" {
		o.Status = StatusCreated
	}
	err := s.store.InsertOrder(ctx, o)
	if errors.Is(err, ErrExists) {
		return nil
	}
	return err
}

// OrderChanged applies version of order id with its new status (cancelled or
// complete). It is applied only on top of version-1; an older or equal
// version is a redelivery and changes nothing; a newer one returns
// ErrOutOfOrder. When the order is cancelled, whatever it paid is owed back
// and its intent is closed (see closeOrder); an error then means the
// provider could not be asked, and the cancellation is handled again.
func (s *Service) OrderChanged(ctx context.Context, id string, version int64, status string) error {
	o, err := s.store.Order(ctx, id)
	if errors.Is(err, errs.ErrNotFound) {
		return ErrOutOfOrder
	}
	if err != nil {
		return err
	}
	switch {
	case o.Version >= version:
	case o.Version == version-1:
		if err := s.store.SetOrderStatus(ctx, id, o.Version, version, status); err != nil {
			return err
		}
		o.Status = status
	default:
		return ErrOutOfOrder
	}
	if status != StatusCancelled || o.Status != StatusCancelled {
		return nil
	}
	return s.closeOrder(ctx, id)
}
