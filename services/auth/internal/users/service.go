package users

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stuffmart/stuffmart/shared/errs"
)

// Options configures a Service. The zero value of each field is a sensible
// default.
type Options struct {
	// RefreshTTL is how long a refresh token is valid; default 7 days.
	RefreshTTL time.Duration
	// RefreshGrace is how long a used refresh token still gives the answer
	// of its first use (to a client whose answer was lost, or a second
	// replica of the storefront refreshing the same cookie); default
	// DefaultRefreshGrace.
	RefreshGrace time.Duration
	// Secret keys the derivation of rotated refresh tokens (see Refresh);
	// required, 32 bytes or more. The service's SESSION_KEY.
	Secret []byte
	// PasswordCost is the bcrypt cost; default DefaultPasswordCost. Tests use
	// bcrypt.MinCost to stay fast.
	PasswordCost int
	// SignInLimit limits sign-ins per account, keyed by normalized email;
	// RefreshLimit limits refreshes per account, keyed by user id. Both are
	// checked before the costly part (bcrypt, the writes of a rotation).
	// Default: no limit.
	SignInLimit, RefreshLimit Limiter
	// Backoff delays sign-in to an account after failed ones; nil: none.
	Backoff *Backoff
	// Metrics counts sign-ins and sign-ups by result; nil counts nothing.
	Metrics Metrics
	// ProfileTTL is how long Profile answers from memory; default
	// DefaultProfileTTL.
	ProfileTTL time.Duration
	// Now is the clock; default time.Now. Tests pin it.
	Now func() time.Time
}

// Session is what a successful sign-up, sign-in or refresh gives the client:
// the user, with its effective role, and a new refresh token in the clear, to
// be sealed into the session cookie next to an access token.
type Session struct {
	User         User
	RefreshToken string
}

// DefaultRefreshGrace is the default Options.RefreshGrace: long enough for a
// retry or a concurrent refresh, short enough that a stolen copy of a used
// token is of no use once its holder has moved on.
const DefaultRefreshGrace = 10 * time.Second

// Service holds the account rules: sign-up, sign-in, sign-out, refresh-token
// rotation with reuse detection, listing and bans. Roles are the operator's
// (see Roles).
type Service struct {
	users      Store
	tokens     TokenStore
	pw         *hasher
	refreshTTL time.Duration
	grace      time.Duration
	// successorKey derives rotated refresh tokens (successorOf).
	successorKey []byte
	signInLimit  Limiter
	refreshLimit Limiter
	backoff      *Backoff
	metrics      Metrics
	profiles     *profileCache
	now          func() time.Time
}

// NewService returns a Service over the stores. It fails on an invalid
// password cost or a secret shorter than 32 bytes.
func NewService(users Store, tokens TokenStore, opts Options) (*Service, error) {
	pw, err := newHasher(opts.PasswordCost)
	if err != nil {
		return nil, err
	}
	if len(opts.Secret) < 32 {
		return nil, errors.New("users: the secret must have 32 bytes or more")
	}
	s := &Service{users: users, tokens: tokens, pw: pw,
		refreshTTL: opts.RefreshTTL, grace: opts.RefreshGrace, successorKey: successorKey(opts.Secret),
		signInLimit: opts.SignInLimit, refreshLimit: opts.RefreshLimit, backoff: opts.Backoff, metrics: opts.Metrics, now: opts.Now}
	if s.refreshTTL <= 0 {
		s.refreshTTL = 7 * 24 * time.Hour
	}
	if s.grace <= 0 {
		s.grace = DefaultRefreshGrace
	}
	if s.signInLimit == nil {
		s.signInLimit = unlimited{}
	}
	if s.refreshLimit == nil {
		s.refreshLimit = unlimited{}
	}
	if s.metrics == nil {
		s.metrics = uncounted{}
	}
	if s.now == nil {
		s.now = time.Now
	}
	ttl := opts.ProfileTTL
	if ttl <= 0 {
		ttl = DefaultProfileTTL
	}
	s.profiles = newProfileCache(ttl)
	return s, nil
}

// NewAccount is what a sign-up asks for.
type NewAccount struct {
	Email, Password string
	// Name is the display name; nil when none was given: the account then
	// shows DefaultName until its owner chooses one (SetName).
	Name *string
}

// SignUp creates an account and signs it in, always as a user: an admin is
// made by the operator, from an account that exists (Roles.Grant), never by
// whoever signs up first with an address. Errors: a validation error (400)
// naming each bad field (email, password, name), ErrEmailInUse. Each
// sign-up is counted in Options.Metrics.
func (s *Service) SignUp(ctx context.Context, a NewAccount) (Session, error) {
	sess, err := s.signUp(ctx, a)
	if r, ok := result(err); ok {
		s.metrics.SignUp(r)
	}
	return sess, err
}

func (s *Service) signUp(ctx context.Context, a NewAccount) (Session, error) {
	email := NormalizeEmail(a.Email)
	var name *string
	if a.Name != nil {
		n := NormalizeName(*a.Name)
		name = &n
	}
	if err := validateSignUp(email, a.Password, name); err != nil {
		return Session{}, err
	}
	hash, err := s.pw.hash(a.Password)
	if err != nil {
		return Session{}, err
	}
	u := User{Email: email, PasswordHash: hash, Role: RoleUser, CreatedAt: s.now()}
	if name != nil {
		u.Name = *name
	}
	if err := s.users.Create(ctx, &u); err != nil {
		return Session{}, fmt.Errorf("sign up: %w", err)
	}
	return s.startSession(ctx, u)
}

// SignIn checks the credentials and starts a new refresh-token family.
// Errors: a validation error for a malformed email or empty password,
// ErrInvalidCredentials for an unknown email or a wrong password (answered
// alike and in similar time), errs.ErrNotAuthorized for a banned user (told
// only to someone who knows the password), *errs.TooManyRequestsError when
// the account backs off after failures from client (Backoff) or is over its
// limit. Both are decided before the password is checked: bcrypt is what an
// attacker would make auth spend its CPU on. client is the caller's network
// (the rate limits' key, web.ClientIP): failures from one network do not
// hold up sign-ins from another. Each sign-in is counted in
// Options.Metrics.
func (s *Service) SignIn(ctx context.Context, email, password, client string) (Session, error) {
	sess, err := s.signIn(ctx, email, password, client)
	if r, ok := result(err); ok {
		s.metrics.SignIn(r)
	}
	return sess, err
}

func (s *Service) signIn(ctx context.Context, email, password, client string) (Session, error) {
	email = NormalizeEmail(email)
	if err := validateSignIn(email, password); err != nil {
		return Session{}, err
	}
	// The backoff first: a refused try does not use up the limit.
	run := backoffKey(email, client)
	wait, ticket := s.backoff.Wait(run)
	if wait > 0 {
		return Session{}, tooMany(wait, BackoffLimit)
	}
	if ok, wait := s.signInLimit.Allow(email); !ok {
		// Not released: a refused try counts as made (Backoff.Released).
		return Session{}, tooMany(wait, limitName(s.signInLimit))
	}
	u, err := s.users.ByEmail(ctx, email)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		s.backoff.Released(run, ticket)
		return Session{}, fmt.Errorf("sign in: %w", err)
	}
	// u.PasswordHash is nil for an unknown email: matches compares against a
	// dummy hash so the answer takes as long.
	ok, err := s.pw.matches(u.PasswordHash, password)
	if err != nil {
		s.backoff.Released(run, ticket)
		return Session{}, fmt.Errorf("sign in %s: %w", u.ID, err)
	}
	if !ok {
		s.backoff.Failed(run)
		return Session{}, ErrInvalidCredentials
	}
	s.backoff.Succeeded(run)
	if u.Banned {
		return Session{}, fmt.Errorf("sign in: user %s is banned: %w", u.ID, errs.ErrNotAuthorized)
	}
	return s.startSession(ctx, u)
}

// SignOut revokes the family of refreshToken, so neither it nor any token
// rotated from it works again. An empty or unknown token is not an error:
// signing out always succeeds for the client.
func (s *Service) SignOut(ctx context.Context, refreshToken string) error {
	if refreshToken == "" {
		return nil
	}
	t, err := s.tokens.Token(ctx, HashToken(refreshToken))
	if errors.Is(err, errs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	if err := s.tokens.RevokeFamily(ctx, t.FamilyID, t.UserID, s.now()); err != nil {
		return fmt.Errorf("sign out: %w", err)
	}
	return nil
}

// Refresh exchanges a refresh token for a new session: the token is used up
// and a successor in the same family is returned (rotation). The user, and
// so the role the new access token carries, is read again. Every refusal is
// errs.ErrNotAuthorized (wrapped with the reason): a missing, unknown,
// expired or revoked token, or a banned or deleted user. A user over the
// refresh limit gets *errs.TooManyRequestsError, decided before anything is
// written; the token stays usable.
//
// A token presented again within the grace after its first use, while the
// successor that use issued is still unused (the token is the immediate
// previous one), gets the same answer as the first time: the same successor,
// with a new access token in the same family. That is a client retrying a
// refresh whose answer it lost, or two replicas of the storefront refreshing
// one cookie at once. Any other second use (after the grace, or once the
// successor was used) revokes the whole family, successors included: one of
// the two holders is a thief, and both must sign in again.
//
// Race safety: the use of a token is claimed by one unique-key insert that
// carries its result (the successor's stored form), so of any number of
// concurrent refreshes with one token exactly one claims it and the others
// read its result. The successor is derived from the used token
// (successorOf), so every presenter computes the same one and none has to
// wait for the winner to save it: whoever comes first saves it.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Session, error) {
	if refreshToken == "" {
		return Session{}, unauthorized("no refresh token")
	}
	now := s.now()
	hash := HashToken(refreshToken)
	t, err := s.tokens.Token(ctx, hash)
	if errors.Is(err, errs.ErrNotFound) {
		return Session{}, unauthorized("unknown refresh token")
	}
	if err != nil {
		return Session{}, fmt.Errorf("refresh: %w", err)
	}
	if !now.Before(t.ExpiresAt) {
		return Session{}, unauthorized("refresh token expired")
	}
	if ok, wait := s.refreshLimit.Allow(t.UserID); !ok {
		return Session{}, tooMany(wait, limitName(s.refreshLimit))
	}
	revoked, err := s.tokens.FamilyRevoked(ctx, t.FamilyID)
	if err != nil {
		return Session{}, fmt.Errorf("refresh: %w", err)
	}
	if revoked {
		return Session{}, unauthorized("refresh token family revoked")
	}
	next, nextStored := stored(successorOf(s.successorKey, refreshToken), t.UserID, t.FamilyID, now, s.refreshTTL)
	use := Use{Hash: hash, UserID: t.UserID, FamilyID: t.FamilyID, ExpiresAt: t.ExpiresAt, UsedAt: now, Next: nextStored}
	if err := s.tokens.ClaimUse(ctx, use); err != nil {
		if !errors.Is(err, ErrTokenUsed) {
			return Session{}, fmt.Errorf("refresh: %w", err)
		}
		if use, err = s.usedAgain(ctx, t, next, now); err != nil {
			return Session{}, err
		}
	}
	u, err := s.users.ByID(ctx, t.UserID)
	if errors.Is(err, errs.ErrNotFound) {
		return Session{}, s.refuse(ctx, t, now, "user gone")
	}
	if err != nil {
		return Session{}, fmt.Errorf("refresh: %w", err)
	}
	if u.Banned {
		return Session{}, s.refuse(ctx, t, now, "user banned")
	}
	// Saved after the user is checked, by whichever presenter gets here
	// first; the others find it saved.
	if err := s.tokens.CreateToken(ctx, use.Next); err != nil {
		return Session{}, fmt.Errorf("issue refresh token for %s: %w", u.ID, err)
	}
	return Session{User: u, RefreshToken: next}, nil
}

// usedAgain decides about token t, presented again after its use was claimed
// (next is the successor derived from it now). It returns the first use's
// claim when the grace allows the same answer, and otherwise revokes the
// family and returns the 401.
func (s *Service) usedAgain(ctx context.Context, t RefreshToken, next string, now time.Time) (Use, error) {
	use, err := s.tokens.Use(ctx, t.Hash)
	if err != nil && !errors.Is(err, errs.ErrNotFound) {
		return Use{}, fmt.Errorf("refresh: %w", err)
	}
	switch {
	case err != nil:
		return Use{}, s.refuse(ctx, t, now, "refresh token reused (its use is forgotten)")
	case !now.Before(use.UsedAt.Add(s.grace)):
		return Use{}, s.refuse(ctx, t, now, "refresh token reused")
	case use.Next.Hash != HashToken(next):
		// A use recorded without its successor, or under another secret.
		return Use{}, s.refuse(ctx, t, now, "refresh token reused (its successor is unknown)")
	}
	_, err = s.tokens.Use(ctx, use.Next.Hash)
	switch {
	case err == nil:
		return Use{}, s.refuse(ctx, t, now, "refresh token reused: its successor was used")
	case !errors.Is(err, errs.ErrNotFound):
		return Use{}, fmt.Errorf("refresh: %w", err)
	}
	return use, nil
}

// refuse revokes t's family and returns the 401 for reason (or the error of
// the revocation, which must not be lost: the family would stay usable).
func (s *Service) refuse(ctx context.Context, t RefreshToken, now time.Time, reason string) error {
	if err := s.tokens.RevokeFamily(ctx, t.FamilyID, t.UserID, now); err != nil {
		return fmt.Errorf("refresh: %s: %w", reason, err)
	}
	return unauthorized(reason)
}

func unauthorized(reason string) error {
	return fmt.Errorf("%s: %w", reason, errs.ErrNotAuthorized)
}

// startSession issues the first token of a new family.
func (s *Service) startSession(ctx context.Context, u User) (Session, error) {
	return s.issue(ctx, u, newFamilyID(), s.now())
}

func (s *Service) issue(ctx context.Context, u User, familyID string, now time.Time) (Session, error) {
	tok, stored := newToken(u.ID, familyID, now, s.refreshTTL)
	if err := s.tokens.CreateToken(ctx, stored); err != nil {
		return Session{}, fmt.Errorf("issue refresh token for %s: %w", u.ID, err)
	}
	return Session{User: u, RefreshToken: tok}, nil
}

// List returns page (from 1) of users, limit per page, newest first, and the
// total number of users. For admins.
func (s *Service) List(ctx context.Context, page, limit int) ([]User, int64, error) {
	us, total, err := s.users.List(ctx, (page-1)*limit, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	return us, total, nil
}

// Ban bans user id on behalf of admin actorID: the user can no longer sign
// in or refresh, every refresh-token family of theirs is revoked (so the ban
// holds within one access-token lifetime), and user:banned is published.
// Errors: errs.ErrNotFound for an unknown or malformed id, ErrCannotBanSelf.
func (s *Service) Ban(ctx context.Context, actorID, id string) (User, error) {
	u, err := s.users.ByID(ctx, id)
	if err != nil {
		return User{}, fmt.Errorf("ban %s: %w", id, err)
	}
	if u.ID == actorID {
		return User{}, ErrCannotBanSelf
	}
	now := s.now()
	u, err = s.users.SetBanned(ctx, u.ID, true, now)
	s.profiles.forget(id)
	if err != nil {
		return User{}, fmt.Errorf("ban %s: %w", id, err)
	}
	// After the flag: a refresh racing with the ban is refused by the flag if
	// it starts after this point, by the revocation otherwise.
	if err := s.tokens.RevokeUser(ctx, u.ID, now); err != nil {
		return User{}, fmt.Errorf("ban %s: %w", id, err)
	}
	return u, nil
}

// Unban lifts a ban and publishes user:unbanned (the stuff service lists the
// user's stuff again). Revoked refresh tokens stay revoked: the user signs in
// again. Errors: errs.ErrNotFound for an unknown or malformed id.
func (s *Service) Unban(ctx context.Context, id string) (User, error) {
	u, err := s.users.SetBanned(ctx, id, false, s.now())
	s.profiles.forget(id)
	if err != nil {
		return User{}, fmt.Errorf("unban %s: %w", id, err)
	}
	return u, nil
}

// User returns the account of id, for its signed-in owner. Errors:
// errs.ErrNotFound (wrapped) for an unknown or malformed id.
func (s *Service) User(ctx context.Context, id string) (User, error) {
	u, err := s.users.ByID(ctx, id)
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// Profile returns the public view of account id, its id and DisplayName,
// for anyone to see. A banned account has no profile: its stuff is hidden,
// and the name it chose may be why it was banned. Answers are kept in
// memory for Options.ProfileTTL (see DefaultProfileTTL); SetName, Ban and
// Unban through this Service drop them at once. Errors: ErrUserNotFound for
// an unknown, malformed or banned id, alike, so the answer does not tell a
// ban from an unknown id.
func (s *Service) Profile(ctx context.Context, id string) (User, error) {
	now := s.now()
	e, gen, ok := s.profiles.get(id, now)
	if ok {
		if e.gone {
			return User{}, ErrUserNotFound
		}
		return User{ID: e.id, Name: e.name}, nil
	}
	u, err := s.users.ByID(ctx, id)
	switch {
	case errors.Is(err, errs.ErrNotFound) || (err == nil && u.Banned):
		s.profiles.put(id, profileEntry{gone: true}, now, gen)
		return User{}, ErrUserNotFound
	case err != nil:
		return User{}, fmt.Errorf("profile %s: %w", id, err)
	}
	p := User{ID: u.ID, Name: u.DisplayName()}
	s.profiles.put(id, profileEntry{id: p.ID, name: p.Name}, now, gen)
	return p, nil
}

// SetName changes the display name of user id, the signed-in user's own
// account (the caller passes the id of the access token, never one from the
// request), and returns the user as stored. The name is trimmed and
// validated as at sign-up. Errors: a validation error (400, field name),
// ErrUserNotFound when the account is gone.
func (s *Service) SetName(ctx context.Context, id, name string) (User, error) {
	name = NormalizeName(name)
	if err := validateName(name); err != nil {
		return User{}, err
	}
	u, err := s.users.SetName(ctx, id, name, s.now())
	s.profiles.forget(id)
	switch {
	case errors.Is(err, errs.ErrNotFound):
		return User{}, ErrUserNotFound
	case err != nil:
		return User{}, fmt.Errorf("set name of %s: %w", id, err)
	}
	return u, nil
}
