package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/shared/auth"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/web"
)

// IdempotencyHeader is the request header that names a request a client may
// send more than once (a retry after a lost answer).
const IdempotencyHeader = "Idempotency-Key"

// Times of the idempotency records.
const (
	// idempotencyTTL is how long a key is remembered.
	idempotencyTTL = 24 * time.Hour
	// claimTimeout is how long a first request may take to answer before a
	// retry with its key takes over (its process was killed, say).
	claimTimeout = 30 * time.Second
)

// idempotencyCollection holds one record per key: the claim of the first
// request, then its answer.
const idempotencyCollection = "idempotency"

type idemDoc struct {
	ID          string    `bson:"_id"` // user, method, path, key
	BodyHash    string    `bson:"bodyHash"`
	Done        bool      `bson:"done"`
	Status      int       `bson:"status,omitempty"`
	ContentType string    `bson:"contentType,omitempty"`
	Body        []byte    `bson:"body,omitempty"`
	CreatedAt   time.Time `bson:"createdAt"`
	ClaimedAt   time.Time `bson:"claimedAt"`
}

// Idempotent is middleware for a POST that creates something. A signed-in
// user's request with an Idempotency-Key header is done once: the answer to
// the first request with a key is stored, and a request with the same key,
// user, method and path within 24 hours gets that answer again (with the
// header Idempotent-Replayed: true) without the work being done twice.
// Which request is first is decided by a unique insert of the key's record.
//
//   - The same key with another body is refused: 400.
//   - A request that comes while the first is still being answered: 409.
//   - A 5xx answer is not kept: the request may be tried again.
//   - A first request that never answered (its process died) leaves a claim
//     that a retry takes over after claimTimeout; the handler runs again,
//     and the services make that safe by minting what they create from the
//     key (web.IdempotencyOf, mongox.DerivedObjectID).
//
// Requests without the header, or anonymous, pass through unchanged. Put it
// after auth.RequireUser.
func (s *Service) Idempotent() echo.MiddlewareFunc {
	coll := s.DB.Collection(idempotencyCollection)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			key := c.Request().Header.Get(IdempotencyHeader)
			u, signedIn := auth.FromEcho(c)
			if key == "" || !signedIn {
				return next(c)
			}
			if !validKey(key) {
				return errs.Invalid(IdempotencyHeader, "Idempotency-Key must be 1 to 255 visible ASCII characters")
			}
			body, err := io.ReadAll(c.Request().Body)
			if err != nil {
				return err // too large: Echo's body limit answers 413
			}
			c.Request().Body = io.NopCloser(bytes.NewReader(body))
			sum := sha256.Sum256(body)
			d := idemDoc{
				ID:       u.ID + "\x00" + c.Request().Method + "\x00" + c.Path() + "\x00" + key,
				BodyHash: hex.EncodeToString(sum[:]),
			}
			ctx := c.Request().Context()
			replay, err := s.claimKey(ctx, coll, &d)
			if err != nil || replay != nil {
				if replay != nil {
					c.Response().Header().Set("Idempotent-Replayed", "true")
					return c.Blob(replay.Status, replay.ContentType, replay.Body)
				}
				return err
			}
			c.SetRequest(c.Request().WithContext(web.WithIdempotency(ctx, web.Idempotency{Key: key, Since: d.CreatedAt})))
			rec := &recorder{ResponseWriter: c.Response().Writer}
			c.Response().Writer = rec
			if err := next(c); err != nil {
				c.Error(err) // answered here, so that the answer is recorded
			}
			// Finish even if the client went away: the next try replays.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			status := c.Response().Status
			if status >= http.StatusInternalServerError {
				if _, err := s.Writer.DeleteByID(fctx, coll, d.ID, bson.E{Key: "claimedAt", Value: d.ClaimedAt}); err != nil {
					s.Log.Warn("idempotency: release the claim of a failed request", "err", err)
				}
				return nil
			}
			if _, err := s.Writer.UpdateByID(fctx, coll, d.ID, bson.D{{Key: "$set", Value: bson.D{
				{Key: "done", Value: true},
				{Key: "status", Value: status},
				{Key: "contentType", Value: c.Response().Header().Get(echo.HeaderContentType)},
				{Key: "body", Value: rec.body.Bytes()},
			}}}, bson.E{Key: "claimedAt", Value: d.ClaimedAt}); err != nil {
				s.Log.Warn("idempotency: keep the answer", "err", err)
			}
			return nil
		}
	}
}

// claimKey inserts d's claim, or returns the stored answer to replay, or an
// error to answer (409 in progress, 400 another body).
func (s *Service) claimKey(ctx context.Context, coll *mongo.Collection, d *idemDoc) (*idemDoc, error) {
	for attempt := 0; attempt < 3; attempt++ {
		now := time.Now().UTC().Truncate(time.Millisecond)
		d.CreatedAt, d.ClaimedAt = now, now
		err := s.Writer.Insert(ctx, coll, d)
		if err == nil {
			return nil, nil
		}
		if !mongox.IsDuplicate(err) {
			return nil, fmt.Errorf("claim idempotency key: %w", err)
		}
		var prev idemDoc
		err = coll.FindOne(ctx, bson.D{{Key: "_id", Value: d.ID}}).Decode(&prev)
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue // released meanwhile: claim again
		}
		if err != nil {
			return nil, fmt.Errorf("read idempotency key: %w", err)
		}
		switch {
		case now.Sub(prev.CreatedAt) > idempotencyTTL:
			// Forgotten: the record is for an older request.
			if _, err := s.Writer.DeleteByID(ctx, coll, d.ID, bson.E{Key: "createdAt", Value: prev.CreatedAt}); err != nil {
				return nil, fmt.Errorf("forget an old idempotency key: %w", err)
			}
			continue
		case prev.BodyHash != d.BodyHash:
			return nil, errs.Invalid(IdempotencyHeader, "Idempotency-Key was already used for another request")
		case prev.Done:
			return &prev, nil
		case now.Sub(prev.ClaimedAt) < claimTimeout:
			return nil, errs.Conflict("A request with this Idempotency-Key is still being answered")
		}
		// The first request never answered: take its claim over, once.
		ok, err := s.Writer.UpdateByID(ctx, coll, d.ID, bson.D{{Key: "$set", Value: bson.D{{Key: "claimedAt", Value: now}}}},
			bson.E{Key: "claimedAt", Value: prev.ClaimedAt})
		if err != nil {
			return nil, fmt.Errorf("take over an idempotency key: %w", err)
		}
		if !ok {
			return nil, errs.Conflict("A request with this Idempotency-Key is still being answered")
		}
		d.CreatedAt = prev.CreatedAt // what the first try minted from
		return nil, nil
	}
	return nil, errs.Conflict("A request with this Idempotency-Key is still being answered")
}

// pruneIdempotency deletes the records older than idempotencyTTL, hourly.
func (s *Service) pruneIdempotency(ctx context.Context) {
	coll := s.DB.Collection(idempotencyCollection)
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := s.Writer.DeleteMany(ctx, coll, bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: time.Now().Add(-idempotencyTTL)}}}})
		if err != nil && ctx.Err() == nil {
			s.Log.Warn("idempotency: prune", "err", err)
		} else if n > 0 {
			s.Log.Debug("idempotency: pruned", "count", n)
		}
	}
}

func validKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// recorder passes a response through and keeps a copy of its body.
type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.body.Write(p) // a bytes.Buffer write never fails
	return r.ResponseWriter.Write(p)
}
