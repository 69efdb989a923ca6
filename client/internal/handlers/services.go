package handlers

import (
	"context"

	"github.com/stuffmart/stuffmart/client/internal/api"
)

// The pages reach the services through these interfaces, each the few calls
// one area of pages makes; package api's clients implement them.

// Listings reads the stuff for sale (the stuff service): the home, search
// and seller pages, the stuff pages and the sitemap.
type Listings interface {
	// Find returns a page of the available listings q asks for (a search,
	// an order, a price range, a seller's). Errors: *api.Error 400 naming
	// each bad parameter.
	Find(ctx context.Context, s api.Session, q api.Query) (api.Page, error)
	// Get returns one listing, with its delivery if s may see it.
	Get(ctx context.Context, s api.Session, id string) (api.Listing, error)
}

// Selling lists and edits the signed-in seller's stuff (the stuff service).
// Create's key is the Idempotency-Key of the sell form's submission: the
// same key again gets the same listing.
type Selling interface {
	Create(ctx context.Context, s api.Session, key string, in api.ListingInput) (api.Listing, error)
	Update(ctx context.Context, s api.Session, id string, in api.ListingInput) (api.Listing, error)
	Mine(ctx context.Context, s api.Session) ([]api.Listing, error)
}

// Buying orders a stuff, holding it for the buyer (the orders service). A
// 404 means the stuff does not exist: waiting for the orders service to hear
// of a stuff listed a moment ago is the implementation's job. key is the
// Idempotency-Key of the BUY submission: the same key again gets the same
// order.
type Buying interface {
	Create(ctx context.Context, s api.Session, key, stuffID string) (api.Order, error)
}

// Orders reads and cancels the signed-in buyer's orders (the orders
// service).
type Orders interface {
	List(ctx context.Context, s api.Session) ([]api.Order, error)
	Get(ctx context.Context, s api.Session, id string) (api.Order, error)
	Cancel(ctx context.Context, s api.Session, id string) error
}

// Paying pays an order (the payments service): Pay with a payment method
// or a coupon, Checkout by starting a card checkout on the card processor's
// hosted page, ConfirmCheckout when the buyer is back from it. A 404 means the order does not exist: waiting for the
// payments service to hear of an order created a moment ago is the
// implementation's job. key is the Idempotency-Key of the form's
// submission: the same key again gets the same payment or checkout.
type Paying interface {
	Pay(ctx context.Context, s api.Session, key string, in api.PayInput) (api.Payment, error)
	Checkout(ctx context.Context, s api.Session, key string, in api.CheckoutInput) (api.Checkout, error)
	ConfirmCheckout(ctx context.Context, s api.Session, orderID, sessionID string) (bool, error)
}

// Coupons lists and creates coupons for admins (the payments service).
type Coupons interface {
	Coupons(ctx context.Context, s api.Session) ([]api.Coupon, error)
	CreateCoupon(ctx context.Context, s api.Session, in api.NewCoupon) (api.Coupon, error)
}

// Accounts signs visitors up, in and out (the auth service).
type Accounts interface {
	SignUp(ctx context.Context, s api.Session, in api.NewAccount) (api.SignedIn, error)
	SignIn(ctx context.Context, s api.Session, in api.Credentials) (api.SignedIn, error)
	SignOut(ctx context.Context, s api.Session) ([]string, error)
}

// Account shows and edits the signed-in user's own account (the auth
// service): the account page.
type Account interface {
	CurrentUser(ctx context.Context, s api.Session) (api.User, bool, error)
	SetName(ctx context.Context, s api.Session, name string) (api.User, error)
}

// Profiles reads what anyone may see of an account (the auth service): a
// seller's display name. Errors: *api.Error 404 for an unknown or banned
// user.
type Profiles interface {
	User(ctx context.Context, id string) (api.PublicUser, error)
}

// Users lists and bans accounts for admins (the auth service).
type Users interface {
	Users(ctx context.Context, s api.Session, page, limit int) (api.UserList, error)
	Ban(ctx context.Context, s api.Session, id string) (api.User, error)
	Unban(ctx context.Context, s api.Session, id string) (api.User, error)
}

// Services are the services' calls the handlers make, one interface per
// area of pages. Every field is required.
type Services struct {
	Listings Listings
	Selling  Selling
	Buying   Buying
	Orders   Orders
	Paying   Paying
	Coupons  Coupons
	Accounts Accounts
	Account  Account
	Users    Users
	Profiles Profiles
}
