// Package pages holds one templ component per storefront page and the view
// models they render. Handlers compute every value (prices formatted, what
// the visitor may do, error messages); the templates only branch on them.
package pages

import (
	"strconv"

	"github.com/stuffmart/stuffmart/client/internal/views/components"
)

// Home is the list of available stuff, in an order and a price range.
type Home struct {
	Cards []components.Card
	Pager components.Pager
	// Total is the number of available listings (in the range).
	Total int
	// First is whether this is the plain first page (which has the intro).
	First    bool
	SignedIn bool
	Controls components.Controls
	// Filtered: the page has a price range, so that an empty page says so
	// and offers to clear it (Controls.ClearURL).
	Filtered bool
	// Invalid: the order or range is wrong (Controls has the messages):
	// no listings are shown.
	Invalid bool
}

// Search is the search page: the results of a search, in an order and a
// price range.
type Search struct {
	// Query is the search; "" shows how to search.
	Query string
	// Summary says how many matched: "3 results".
	Summary  string
	Cards    []components.Card
	Pager    components.Pager
	Controls components.Controls
	// Error is a search the stuff service refused (a 400), its message.
	Error string
	// Invalid: the order or range is wrong (Controls has the messages).
	Invalid bool
	// RangeURL, when set, is the same search without its price range (the
	// empty page offers it).
	RangeURL string
}

// Seller is a seller's page: their display name and available stuff.
type Seller struct {
	// Name is the display name; "" when it could not be fetched.
	Name  string
	Cards []components.Card
	Pager components.Pager
	Total int
	First bool
}

// Stuff is one listing's page.
type Stuff struct {
	ID          string
	Title       string
	Description string
	Price       string
	Listed      string
	ListedISO   string
	BadgeKind   string
	BadgeText   string
	// What the visitor may do: exactly one of these blocks shows.
	CanBuy   bool   // signed in, not the seller, available: the BUY form
	SignInTo string // anonymous and available: the sign-in link (with next)
	Held     bool   // reserved by an order: "being checked out"
	Sold     bool
	IsSeller bool
	// EditURL is set for the seller while the listing may be edited.
	EditURL string
	BuyURL  string
	// Hold is how long an order holds the stuff, in words: "15 minutes".
	Hold string
	CSRF string
	// Key is the BUY form's idempotency key.
	Key string
	// Delivery is shown to the seller and to a buyer.
	Delivery    string
	DeliveryURL string
	Bought      bool
	Error       string
	// SellerURL is the seller's page; SellerName their display name (""
	// when it could not be fetched: a neutral label links there). No
	// SellerURL: the seller has no page (an account no longer there).
	SellerURL  string
	SellerName string
	// Crumbs are the page's breadcrumbs, itself last.
	Crumbs []components.Crumb
}

// StuffForm is the sell and edit form.
type StuffForm struct {
	Heading   string
	Intro     string
	Action    string
	Submit    string
	CancelURL string
	CSRF      string
	// Key is the sell form's idempotency key (none for an edit).
	Key         string
	Errors      []string
	Title       components.Field
	Description components.Field
	Price       components.Field
	Delivery    components.Field
}

// AuthForm is the sign-in and sign-up form.
type AuthForm struct {
	Heading string
	Intro   string
	Action  string
	Submit  string
	CSRF    string
	Next    string
	Errors  []string
	// Name is the display name, asked at sign-up only (nil otherwise).
	Name     *components.Field
	Email    components.Field
	Password components.Field
	AltText  string
	AltLink  string
	AltURL   string
}

// AccountForm is the account page: the owner's email, shown to them only,
// and the display-name form.
type AccountForm struct {
	CSRF   string
	Errors []string
	Email  string
	Name   components.Field
}

// OrderRow is one order in the list of the buyer's orders.
type OrderRow struct {
	URL       string
	Title     string
	Price     string
	Created   string
	BadgeKind string
	BadgeText string
	// ContentURL is set for a complete order: what was bought.
	ContentURL string
}

// Orders is the list of the buyer's orders.
type Orders struct {
	Rows []OrderRow
}

// Order is one order's page.
type Order struct {
	ID        string
	Title     string
	StuffURL  string
	Price     string
	Created   string
	BadgeKind string
	BadgeText string
	// Deadline is the hold's end, as text and as an ISO timestamp.
	Deadline    string
	DeadlineISO string
	// RemainingMS and Remaining (m:ss) are the time left when the page
	// was made; the countdown shows while the order can be paid.
	RemainingMS int64
	Remaining   string
	Payable     bool
	Expired     bool
	Cancelled   bool
	Complete    bool
	// Confirming: the buyer is back from a paid card checkout and the
	// payment is not recorded yet (the page reloads itself meanwhile).
	Confirming bool
	// EndedAfterPayment: the buyer is back from a paid card checkout, but
	// the order was cancelled or expired (such a payment is refunded).
	EndedAfterPayment bool
	ContentURL        string
	PayAction         string
	// CheckoutAction is the "Pay by card" form's action.
	CheckoutAction string
	CancelURL      string
	CSRF           string
	// Key is the payment form's idempotency key; CheckoutKey the "Pay by
	// card" form's.
	Key         string
	CheckoutKey string
	// Offline offers Stripe's test cards; otherwise a payment method id.
	Offline     bool
	Cards       []components.Choice
	MethodField components.Field
	MethodError string
	Coupon      components.Field
	// CheckoutCoupon is the "Pay by card" form's coupon field.
	CheckoutCoupon components.Field
	Errors         []string
}

// Content is what a buyer bought.
type Content struct {
	Title       string
	StuffURL    string
	OrderURL    string
	Delivery    string
	DeliveryURL string
	// Pending: paid, but the sale is still being recorded.
	Pending   bool
	Cancelled bool
}

// MineRow is one of the seller's listings.
type MineRow struct {
	URL       string
	EditURL   string
	Title     string
	Price     string
	BadgeKind string
	BadgeText string
}

// Mine is the seller's listings.
type Mine struct {
	Rows []MineRow
}

// CouponRow is one coupon in the admin list.
type CouponRow struct {
	Code        string
	PercentOff  string
	Redemptions string
	Expires     string
}

// Coupons is the admin coupon page.
type Coupons struct {
	CSRF           string
	Errors         []string
	Created        string
	PercentOff     components.Field
	MaxRedemptions components.Field
	ExpiresAt      components.Field
	Rows           []CouponRow
}

// UserRow is one account in the admin list.
type UserRow struct {
	Email string
	// Name is the display name others see (what a moderator checks).
	Name   string
	Role   string
	Banned bool
	// Self is the admin's own account (not bannable).
	Self      bool
	BanURL    string
	UnbanURL  string
	BadgeKind string
	BadgeText string
}

// Users is the admin user page.
type Users struct {
	CSRF  string
	Rows  []UserRow
	Pager components.Pager
	Total string
}

// Error is an error page: 403, 404, 409, 5xx.
type Error struct {
	Status    int
	Heading   string
	Message   string
	BackURL   string
	BackText  string
	RequestID string
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

func itoa(n int) string { return strconv.Itoa(n) }
