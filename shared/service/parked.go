package service

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
)

// ParkedCollection holds the messages a service's listeners will not apply:
// permanent failures, and failures that outlived the retry budget.
const ParkedCollection = "parked_events"

// ParkedEvent is one parked message as the admin routes show it.
type ParkedEvent struct {
	ID         string    `json:"id" bson:"_id"`
	Subject    string    `json:"subject" bson:"subject"`
	Sequence   int64     `json:"sequence" bson:"sequence"`
	Data       string    `json:"data" bson:"data"`
	Deliveries int       `json:"deliveries" bson:"deliveries"`
	Error      string    `json:"error" bson:"error"`
	ParkedAt   time.Time `json:"parkedAt" bson:"parkedAt"`
}

// routeParked serves the admin routes of parked messages on the service's
// own port (not routed by the ingress or the local gateway: reach them with
// kubectl port-forward, or the service's URL that make dev prints):
//
//	GET  /admin/parked              the parked messages, oldest first (at most 500)
//	POST /admin/parked/:id/redrive  publish it again on its subject, then forget it
//
// A message is re-driven to every consumer of its subject; listeners are
// idempotent, so those that had applied it change nothing.
func (s *Service) routeParked() {
	g := s.Echo.Group("/admin/parked", auth.RequireAdmin)
	g.GET("", s.listParked)
	g.POST("/:id/redrive", s.redriveParked)
}

func (s *Service) listParked(c echo.Context) error {
	ctx := c.Request().Context()
	cur, err := s.DB.Collection(ParkedCollection).Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "parkedAt", Value: 1}}).SetLimit(500))
	if err != nil {
		return fmt.Errorf("list parked events: %w", err)
	}
	out := []ParkedEvent{}
	if err := cur.All(ctx, &out); err != nil {
		return fmt.Errorf("list parked events: %w", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"parked": out})
}

func (s *Service) redriveParked(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	coll := s.DB.Collection(ParkedCollection)
	var p ParkedEvent
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&p)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return errs.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("read parked event %s: %w", id, err)
	}
	if err := s.Bus.Publish(ctx, events.Subject(p.Subject), []byte(p.Data)); err != nil {
		return &errs.HTTPError{Status: http.StatusServiceUnavailable, Message: "The event bus is unreachable; try again"}
	}
	// Forgotten once it is out again; should it fail once more, it is
	// parked anew with its new sequence.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.Writer.DeleteByID(dctx, coll, id); err != nil {
		return fmt.Errorf("forget re-driven event %s: %w", id, err)
	}
	s.Log.Info("parked event re-driven", "id", id, "subject", p.Subject)
	return c.JSON(http.StatusOK, map[string]string{"redriven": id})
}

// countParked is the events_parked gauge: the number of parked messages, or
// -1 when the database does not answer within a second (a scrape must not
// hang on it).
func (s *Service) countParked() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := s.DB.Collection(ParkedCollection).CountDocuments(ctx, bson.D{})
	if err != nil {
		return -1
	}
	return float64(n)
}
