// Package store keeps the auth service's users and refresh tokens in
// MongoDB (FerretDB locally). It maps bson documents to domain types and
// driver errors to domain errors, and keeps hot reads on _id, the one lookup
// FerretDB serves quickly.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
)

// Collection names.
const (
	UsersCollection           = "users"
	TokensCollection          = "refresh_tokens"
	UsesCollection            = "refresh_uses"
	RevokedFamiliesCollection = "revoked_families"
)

// Indexes are the indexes the stores rely on; create them before serving.
// The unique email index is what makes "Email in use" hold under concurrent
// sign-ups; the uniqueness of _id makes the refresh-token claims.
func Indexes() []mongox.Index {
	return []mongox.Index{
		{Collection: UsersCollection, Keys: bson.D{{Key: "email", Value: 1}}, Unique: true, Name: "email_unique"},
		{Collection: TokensCollection, Keys: bson.D{{Key: "userId", Value: 1}}, Name: "user"},
	}
}

// Notifier is told about documents whose outbox got an event; the outbox
// relay implements it.
type Notifier interface {
	Notify(coll *mongo.Collection, id any, pending ...outbox.Pending)
}

// Users is the users collection.
type Users struct {
	coll  *mongo.Collection
	w     *mongox.Writer
	relay Notifier
}

// NewUsers returns the users store. Updates go through w, the one write path
// (docs/data-safety.md, rule 2); relay is notified of events pushed to a
// user's outbox.
func NewUsers(db *mongo.Database, w *mongox.Writer, relay Notifier) *Users {
	return &Users{coll: db.Collection(UsersCollection), w: w, relay: relay}
}

type userDoc struct {
	ID    primitive.ObjectID `bson:"_id"`
	Email string             `bson:"email"`
	// Name is absent from accounts without a chosen display name.
	Name         string    `bson:"name,omitempty"`
	PasswordHash []byte    `bson:"passwordHash"`
	Role         string    `bson:"role"`
	Banned       bool      `bson:"banned"`
	Version      int64     `bson:"version"`
	CreatedAt    time.Time `bson:"createdAt"`
	UpdatedAt    time.Time `bson:"updatedAt"`
}

func (d userDoc) user() users.User {
	return users.User{
		ID:           d.ID.Hex(),
		Email:        d.Email,
		Name:         d.Name,
		PasswordHash: d.PasswordHash,
		Role:         d.Role,
		Banned:       d.Banned,
		Version:      d.Version,
		CreatedAt:    d.CreatedAt,
	}
}

// noOutbox keeps pending events out of reads.
var noOutbox = bson.D{{Key: outbox.Field, Value: 0}}

// Create inserts u with version 0 and sets u.ID. Errors: users.ErrEmailInUse
// when the unique email index refuses it.
func (s *Users) Create(ctx context.Context, u *users.User) error {
	d := userDoc{ID: primitive.NewObjectID(), Email: u.Email, Name: u.Name, PasswordHash: u.PasswordHash, Role: u.Role,
		Banned: u.Banned, CreatedAt: u.CreatedAt, UpdatedAt: u.CreatedAt}
	if err := s.w.Insert(ctx, s.coll, d); err != nil {
		if mongox.IsDuplicate(err) {
			return users.ErrEmailInUse
		}
		return fmt.Errorf("insert user: %w", err)
	}
	u.ID, u.Version = d.ID.Hex(), 0
	return nil
}

// ByEmail finds a user by normalized email; errs.ErrNotFound if none. On
// FerretDB a lookup on a field other than _id is several times slower than
// by _id; it serves sign-in and the operator's role command only.
func (s *Users) ByEmail(ctx context.Context, email string) (users.User, error) {
	return s.findOne(ctx, bson.D{{Key: "email", Value: email}})
}

// ByID finds a user by id; errs.ErrNotFound if none or if id is not an
// ObjectID in hex.
func (s *Users) ByID(ctx context.Context, id string) (users.User, error) {
	oid, err := primitive.ObjectIDFromHex(id)
	if err != nil {
		return users.User{}, errs.ErrNotFound
	}
	return s.findOne(ctx, bson.D{{Key: "_id", Value: oid}})
}

func (s *Users) findOne(ctx context.Context, filter bson.D) (users.User, error) {
	var d userDoc
	err := s.coll.FindOne(ctx, filter, options.FindOne().SetProjection(noOutbox)).Decode(&d)
	if err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return users.User{}, errs.ErrNotFound
		}
		return users.User{}, fmt.Errorf("find user: %w", err)
	}
	return d.user(), nil
}

// List returns users newest first (ObjectIDs grow with time) and the total.
func (s *Users) List(ctx context.Context, skip, limit int) ([]users.User, int64, error) {
	cur, err := s.coll.Find(ctx, bson.D{}, options.Find().
		SetSort(bson.D{{Key: "_id", Value: -1}}).
		SetSkip(int64(skip)).
		SetLimit(int64(limit)).
		SetProjection(bson.D{{Key: "passwordHash", Value: 0}, {Key: outbox.Field, Value: 0}}))
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	total, err := s.coll.CountDocuments(ctx, bson.D{})
	if err != nil {
		return nil, 0, fmt.Errorf("count users: %w", err)
	}
	out := make([]users.User, len(docs))
	for i, d := range docs {
		out[i] = d.user()
	}
	return out, total, nil
}

// SetBanned sets the banned flag through the Writer. The change carries its
// event in the same update: user:banned when it bans, user:unbanned when it
// lifts a ban (both {userId, at: now}); the relay is notified, so the event
// goes out even if NATS is down right now. Setting the flag the user already
// has is a no-op (no version bump, no event). Errors: errs.ErrNotFound.
func (s *Users) SetBanned(ctx context.Context, id string, banned bool, now time.Time) (users.User, error) {
	oid, err := primitive.ObjectIDFromHex(id)
	if err != nil {
		return users.User{}, errs.ErrNotFound
	}
	var change events.Event = events.UserUnbannedEvent{UserID: oid.Hex(), At: now}
	if banned {
		change = events.UserBannedEvent{UserID: oid.Hex(), At: now}
	}
	ev, err := outbox.New(ctx, change, now)
	if err != nil {
		return users.User{}, err
	}
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "banned", Value: banned}, {Key: "updatedAt", Value: now}}},
		{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
		outbox.Push(ev),
	}
	// Guarded on the opposite state: setting the state the user already
	// has changes nothing.
	matched, err := s.w.UpdateByID(ctx, s.coll, oid, update, bson.E{Key: "banned", Value: !banned})
	if err != nil {
		return users.User{}, fmt.Errorf("set banned=%t on %s: %w", banned, id, err)
	}
	if matched {
		s.relay.Notify(s.coll, oid, ev)
	}
	// Not matched: unknown (ByID says so) or already in that state.
	return s.ByID(ctx, id)
}

// SetRole gives the user with email the role through the Writer and
// returns the user as stored and whether the role changed (false: the user
// had it already). The update is guarded on the role read: if another
// change of the role came in between, the one stored wins and is returned.
// An operator's command, not a hot path: the lookup by email scans on
// FerretDB. Errors: errs.ErrNotFound if no user has that email.
func (s *Users) SetRole(ctx context.Context, email, role string, now time.Time) (users.User, bool, error) {
	u, err := s.ByEmail(ctx, email)
	if err != nil {
		return users.User{}, false, err
	}
	if u.Role == role {
		return u, false, nil
	}
	oid, err := primitive.ObjectIDFromHex(u.ID)
	if err != nil {
		return users.User{}, false, err
	}
	matched, err := s.w.UpdateByID(ctx, s.coll, oid, bson.D{
		{Key: "$set", Value: bson.D{{Key: "role", Value: role}, {Key: "updatedAt", Value: now}}},
		{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
	}, bson.E{Key: "role", Value: u.Role})
	if err != nil {
		return users.User{}, false, fmt.Errorf("set role %s on %s: %w", role, u.ID, err)
	}
	if u, err = s.ByID(ctx, u.ID); err != nil {
		return users.User{}, false, err
	}
	return u, matched, nil
}

// SetName sets the display name of user id through the Writer, as its
// one write path (docs/data-safety.md, rule 2): a plain $set by _id, the
// last edit wins. Errors: errs.ErrNotFound for an unknown or malformed id.
func (s *Users) SetName(ctx context.Context, id, name string, now time.Time) (users.User, error) {
	oid, err := primitive.ObjectIDFromHex(id)
	if err != nil {
		return users.User{}, errs.ErrNotFound
	}
	matched, err := s.w.UpdateByID(ctx, s.coll, oid, bson.D{
		{Key: "$set", Value: bson.D{{Key: "name", Value: name}, {Key: "updatedAt", Value: now}}},
		{Key: "$inc", Value: bson.D{{Key: "version", Value: 1}}},
	})
	if err != nil {
		return users.User{}, fmt.Errorf("set name of %s: %w", id, err)
	}
	if !matched {
		return users.User{}, errs.ErrNotFound
	}
	return s.ByID(ctx, id)
}

// WithRole returns the users who have role, by email. It filters on role (a
// scan on FerretDB): for the operator's command only.
func (s *Users) WithRole(ctx context.Context, role string) ([]users.User, error) {
	cur, err := s.coll.Find(ctx, bson.D{{Key: "role", Value: role}}, options.Find().
		SetSort(bson.D{{Key: "email", Value: 1}}).
		SetProjection(bson.D{{Key: "passwordHash", Value: 0}, {Key: outbox.Field, Value: 0}}))
	if err != nil {
		return nil, fmt.Errorf("find users with role %s: %w", role, err)
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("find users with role %s: %w", role, err)
	}
	out := make([]users.User, len(docs))
	for i, d := range docs {
		out[i] = d.user()
	}
	return out, nil
}
