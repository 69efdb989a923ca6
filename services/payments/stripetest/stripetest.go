// Package stripetest is a fake of the part of Stripe's API the payments
// service uses, for tests: PaymentIntents (create, with or without confirm;
// update; confirm; retrieve; cancel), refunds, and Checkout Sessions
// (create, retrieve, expire; a test pays one as a buyer would and gets the
// webhook event Stripe would send, to sign and post), with Stripe's test
// payment methods and Stripe's idempotency rules (the first answer to a key
// is kept, 5xx included, and replayed; the same key with other parameters
// is refused; a key still being answered gets 409). A test points the
// service at it (STRIPE_API_URL, STRIPE_SECRET_KEY = Key), turns faults on
// and off while it runs (slow answers, intents left processing, failing
// refunds, charges held until released), and reads back what really
// happened to the money: the intents of an order and their refunds.
//
// Only tests import it; it is not part of the service.
package stripetest

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Key is the secret key the fake accepts.
const Key = "sk_test_stripetest_0123456789"

// Server is a running fake Stripe.
type Server struct {
	// URL is the API base URL (STRIPE_API_URL).
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	intents  map[string]*intent
	order    []string // intent ids, oldest first
	sessions map[string]*Session
	sessOrd  []string // session ids, oldest first
	events   int
	refunds  []*Refund
	keys     map[string]*idem
	requests []Request
	faults   faults
	hold     chan struct{} // non-nil: charges wait for it to close
	arrived  chan struct{}
	release  func() // closes hold, once
}

type faults struct {
	slow        time.Duration // answers of charges held this long after the charge is done
	processing  time.Duration // successful charges stay processing this long
	failRefunds bool
}

// Intent is a PaymentIntent as the fake holds it.
type Intent struct {
	ID             string
	OrderID        string // metadata[order_id]
	Amount         int64
	AmountReceived int64
	Status         string // Stripe's: requires_payment_method, processing, succeeded, canceled, …
	PaymentMethod  string
	Refunded       int64 // cents refunded
}

type intent struct {
	Intent
	settleAt  time.Time // while processing: when it succeeds
	lastError map[string]any
}

// Refund is a refund the fake made.
type Refund struct {
	ID       string
	IntentID string
	Amount   int64
	Key      string // its idempotency key
}

// Request is a request that reached the fake.
type Request struct {
	Method, Path   string
	Form           url.Values
	IdempotencyKey string
}

type idem struct {
	fingerprint string
	done        bool
	status      int
	body        []byte
}

// New starts a fake Stripe, stopped when the test ends.
func New(tb interface{ Cleanup(func()) }) *Server {
	s := &Server{intents: map[string]*intent{}, sessions: map[string]*Session{}, keys: map[string]*idem{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	tb.Cleanup(s.Close)
	return s
}

// Close releases held charges and stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	release := s.release
	s.mu.Unlock()
	if release != nil {
		release()
	}
	s.srv.Close()
}

// SlowCharges makes every answer to a charge (a confirm, or a create that
// confirms) come d after the charge was done: a client whose timeout is
// shorter never learns that it was charged. 0 turns it off.
func (s *Server) SlowCharges(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.slow = d
}

// Processing makes a successful charge leave its intent "processing" for d
// before it succeeds (seen on the next request about it). 0 turns it off.
func (s *Server) Processing(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.processing = d
}

// SettleProcessing makes every intent that is processing succeed now.
func (s *Server) SettleProcessing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, in := range s.intents {
		if in.Status == "processing" {
			in.settleAt = time.Time{}
			s.settle(in)
		}
	}
}

// FailRefunds makes every refund answer 500 api_error without refunding
// (an answer Stripe keeps for its idempotency key), until turned off.
func (s *Server) FailRefunds(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.failRefunds = on
}

// HoldCharges makes charges wait, once they are counted and announced on
// arrived, until release is called (or the server closes).
func (s *Server) HoldCharges() (arrived <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := make(chan struct{})
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.mu.Lock()
			if s.hold == h {
				s.hold, s.release = nil, nil
			}
			s.mu.Unlock()
			close(h)
		})
	}
	s.hold, s.arrived, s.release = h, make(chan struct{}, 64), release
	return s.arrived, release
}

// Intents returns the PaymentIntents of an order, oldest first.
func (s *Server) Intents(orderID string) []Intent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Intent
	for _, id := range s.order {
		in := s.intents[id]
		s.settle(in)
		if in.OrderID == orderID {
			out = append(out, in.Intent)
		}
	}
	return out
}

// Charged returns the intents of an order that took money (succeeded,
// refunded or not).
func (s *Server) Charged(orderID string) []Intent {
	var out []Intent
	for _, in := range s.Intents(orderID) {
		if in.Status == "succeeded" {
			out = append(out, in)
		}
	}
	return out
}

// OrdersCharged returns every order the fake took money for, with the
// intents that did.
func (s *Server) OrdersCharged() map[string][]Intent {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]Intent{}
	for _, id := range s.order {
		in := s.intents[id]
		s.settle(in)
		if in.Status == "succeeded" {
			out[in.OrderID] = append(out[in.OrderID], in.Intent)
		}
	}
	return out
}

// Refunds returns the refunds of an intent.
func (s *Server) Refunds(intentID string) []Refund {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Refund
	for _, r := range s.refunds {
		if r.IntentID == intentID {
			out = append(out, *r)
		}
	}
	return out
}

// Requests returns the requests whose path starts with prefix, in order.
func (s *Server) Requests(prefix string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// ChargeRequests returns the requests that asked to charge an order: its
// confirms, and its creates that confirm.
func (s *Server) ChargeRequests(orderID string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.Method != http.MethodPost {
			continue
		}
		if r.Path == "/v1/payment_intents" && r.Form.Get("confirm") == "true" && r.Form.Get("metadata[order_id]") == orderID {
			out = append(out, r)
		}
		if id, ok := strings.CutSuffix(strings.TrimPrefix(r.Path, "/v1/payment_intents/"), "/confirm"); ok {
			if in := s.intents[id]; in != nil && in.OrderID == orderID {
				out = append(out, r)
			}
		}
	}
	return out
}

// Charge makes a succeeded PaymentIntent for an order directly (as if the
// service had charged it and lost the answer) and returns it.
func (s *Server) Charge(orderID string, amount int64) Intent {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.newIntent(url.Values{"amount": {strconv.FormatInt(amount, 10)}, "currency": {"usd"}, "metadata[order_id]": {orderID}})
	in.Status, in.AmountReceived, in.PaymentMethod = "succeeded", amount, "pm_card_visa"
	return in.Intent
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+Key {
		writeError(w, http.StatusUnauthorized, map[string]any{"type": "invalid_request_error", "message": "Invalid API Key provided"})
		return
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "message": "unreadable body"})
		return
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		writeError(w, http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "message": "malformed body"})
		return
	}
	if r.Method == http.MethodGet {
		form = r.URL.Query()
	}
	key := r.Header.Get("Idempotency-Key")

	s.mu.Lock()
	s.requests = append(s.requests, Request{Method: r.Method, Path: r.URL.Path, Form: form, IdempotencyKey: key})
	var entry *idem
	if key != "" && r.Method == http.MethodPost {
		sum := sha256.Sum256([]byte(r.Method + " " + r.URL.Path + "\n" + string(raw)))
		fp := fmt.Sprintf("%x", sum)
		if prev := s.keys[key]; prev != nil {
			s.mu.Unlock()
			switch {
			case prev.fingerprint != fp:
				writeError(w, http.StatusBadRequest, map[string]any{"type": "idempotency_error",
					"message": "Keys for idempotent requests can only be used with the same parameters they were first used with."})
			case !prev.done:
				writeError(w, http.StatusConflict, map[string]any{"type": "invalid_request_error", "code": "idempotency_key_in_use",
					"message": "There is currently another in-progress request using this Idempotent Key."})
			default:
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Idempotent-Replayed", "true")
				w.WriteHeader(prev.status)
				_, _ = w.Write(prev.body) // a client that went away does not matter
			}
			return
		}
		entry = &idem{fingerprint: fp}
		s.keys[key] = entry
	}
	a, charge := s.handle(r.Method, r.URL.Path, form, key)
	hold, arrived, slow := s.hold, s.arrived, s.faults.slow
	if entry != nil {
		entry.done, entry.status, entry.body = true, a.status, a.body
	}
	s.mu.Unlock()

	if charge {
		if hold != nil {
			arrived <- struct{}{}
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}
		if slow > 0 {
			select {
			case <-time.After(slow):
			case <-r.Context().Done():
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body) // a client that went away does not matter
}

// answer is a status and a JSON body.
type answer struct {
	status int
	body   []byte
}

// handle applies one request under s.mu and returns the answer and whether
// it was a charge.
func (s *Server) handle(method, path string, form url.Values, key string) (a answer, charge bool) {
	rest, _ := strings.CutPrefix(path, "/v1/")
	parts := strings.Split(rest, "/")
	switch {
	case method == http.MethodPost && rest == "payment_intents":
		if form.Get("amount") == "" || form.Get("currency") == "" {
			return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "message": "Missing required param: amount.", "param": "amount"}), false
		}
		if n, _ := strconv.ParseInt(form.Get("amount"), 10, 64); n < 50 {
			return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "code": "amount_too_small",
				"message": "Amount must be at least $0.50 usd", "param": "amount"}), false
		}
		in := s.newIntent(form)
		if pm := form.Get("payment_method"); pm != "" {
			in.PaymentMethod, in.Status = pm, "requires_confirmation"
		}
		if form.Get("confirm") == "true" {
			return s.confirm(in, in.PaymentMethod), true
		}
		return ok(intentJSON(in)), false
	case len(parts) >= 2 && parts[0] == "payment_intents":
		in := s.intents[parts[1]]
		if in == nil {
			return errorBody(http.StatusNotFound, map[string]any{"type": "invalid_request_error", "code": "resource_missing",
				"message": "No such payment_intent: '" + parts[1] + "'", "param": "intent"}), false
		}
		s.settle(in)
		switch {
		case method == http.MethodGet && len(parts) == 2:
			return ok(intentJSON(in)), false
		case method == http.MethodPost && len(parts) == 2:
			if !slices.Contains([]string{"requires_payment_method", "requires_confirmation", "requires_action"}, in.Status) {
				return unexpectedState(in, "update"), false
			}
			if a := form.Get("amount"); a != "" {
				n, _ := strconv.ParseInt(a, 10, 64)
				if n < 50 {
					return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "code": "amount_too_small",
						"message": "Amount must be at least $0.50 usd", "param": "amount"}), false
				}
				in.Amount = n
			}
			return ok(intentJSON(in)), false
		case method == http.MethodPost && parts[2] == "confirm":
			pm := form.Get("payment_method")
			if pm == "" {
				pm = in.PaymentMethod
			}
			return s.confirm(in, pm), true
		case method == http.MethodPost && parts[2] == "cancel":
			if !slices.Contains([]string{"requires_payment_method", "requires_confirmation", "requires_action"}, in.Status) {
				return unexpectedState(in, "cancel"), false
			}
			in.Status = "canceled"
			return ok(intentJSON(in)), false
		}
	case method == http.MethodPost && rest == "refunds":
		return s.refund(form, key), false
	case method == http.MethodPost && rest == "checkout/sessions":
		return s.newSession(form), false
	case len(parts) >= 3 && parts[0] == "checkout" && parts[1] == "sessions":
		cs := s.sessions[parts[2]]
		if cs == nil {
			return errorBody(http.StatusNotFound, map[string]any{"type": "invalid_request_error", "code": "resource_missing",
				"message": "No such checkout.session: '" + parts[2] + "'", "param": "session"}), false
		}
		switch {
		case method == http.MethodGet && len(parts) == 3:
			return ok(sessionJSON(cs)), false
		case method == http.MethodPost && len(parts) == 4 && parts[3] == "expire":
			if cs.Status != "open" {
				return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error",
					"message": `Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of ` + cs.Status + "."}), false
			}
			cs.Status = "expired"
			return ok(sessionJSON(cs)), false
		}
	}
	return errorBody(http.StatusNotFound, map[string]any{"type": "invalid_request_error", "message": "Unrecognized request URL (" + method + ": " + path + ")"}), false
}

func (s *Server) newIntent(form url.Values) *intent {
	amount, _ := strconv.ParseInt(form.Get("amount"), 10, 64)
	in := &intent{Intent: Intent{
		ID: fmt.Sprintf("pi_fake_%d", len(s.order)+1), OrderID: form.Get("metadata[order_id]"),
		Amount: amount, Status: "requires_payment_method",
	}}
	s.intents[in.ID] = in
	s.order = append(s.order, in.ID)
	return in
}

// settle moves a processing intent whose time has come to succeeded.
func (s *Server) settle(in *intent) {
	if in.Status == "processing" && !time.Now().Before(in.settleAt) {
		in.Status, in.AmountReceived = "succeeded", in.Amount
	}
}

// declines are Stripe's test payment methods that are declined.
var declines = map[string][2]string{
	"pm_card_chargeDeclined":                  {"generic_decline", "Your card was declined."},
	"pm_card_chargeDeclinedInsufficientFunds": {"insufficient_funds", "Your card has insufficient funds."},
	"pm_card_insufficientFunds":               {"insufficient_funds", "Your card has insufficient funds."},
}

func (s *Server) confirm(in *intent, pm string) answer {
	if !slices.Contains([]string{"requires_payment_method", "requires_confirmation", "requires_action"}, in.Status) {
		return unexpectedState(in, "confirm")
	}
	if d, ok := declines[pm]; ok {
		in.PaymentMethod, in.Status = pm, "requires_payment_method"
		in.lastError = map[string]any{"type": "card_error", "code": "card_declined", "decline_code": d[0], "message": d[1]}
		e := map[string]any{"type": "card_error", "code": "card_declined", "decline_code": d[0], "message": d[1], "payment_intent": intentJSON(in)}
		return errorBody(http.StatusPaymentRequired, e)
	}
	if !strings.HasPrefix(pm, "pm_card_") {
		return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "code": "resource_missing",
			"message": "No such PaymentMethod: '" + pm + "'", "param": "payment_method"})
	}
	in.PaymentMethod, in.lastError = pm, nil
	if s.faults.processing > 0 {
		in.Status, in.settleAt = "processing", time.Now().Add(s.faults.processing)
	} else {
		in.Status, in.AmountReceived = "succeeded", in.Amount
	}
	return ok(intentJSON(in))
}

func (s *Server) refund(form url.Values, key string) answer {
	in := s.intents[form.Get("payment_intent")]
	if in == nil {
		return errorBody(http.StatusNotFound, map[string]any{"type": "invalid_request_error", "code": "resource_missing",
			"message": "No such payment_intent: '" + form.Get("payment_intent") + "'", "param": "payment_intent"})
	}
	s.settle(in)
	if s.faults.failRefunds {
		return errorBody(http.StatusInternalServerError, map[string]any{"type": "api_error", "message": "An unknown error occurred"})
	}
	if in.Status != "succeeded" {
		return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error",
			"message": "This PaymentIntent does not have a successful charge to refund."})
	}
	amount := in.AmountReceived - in.Refunded
	if a := form.Get("amount"); a != "" {
		amount, _ = strconv.ParseInt(a, 10, 64)
	}
	if in.Refunded >= in.AmountReceived {
		return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "code": "charge_already_refunded",
			"message": "Charge for " + in.ID + " has already been refunded."})
	}
	if amount <= 0 || in.Refunded+amount > in.AmountReceived {
		return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "param": "amount",
			"message": "Refund amount is greater than unrefunded amount on charge"})
	}
	r := &Refund{ID: fmt.Sprintf("re_fake_%d", len(s.refunds)+1), IntentID: in.ID, Amount: amount, Key: key}
	s.refunds = append(s.refunds, r)
	in.Refunded += amount
	return ok(map[string]any{"id": r.ID, "object": "refund", "amount": amount, "payment_intent": in.ID, "status": "succeeded"})
}

func intentJSON(in *intent) map[string]any {
	m := map[string]any{
		"id": in.ID, "object": "payment_intent", "amount": in.Amount, "amount_received": in.AmountReceived,
		"currency": "usd", "status": in.Status, "livemode": false,
		"metadata": map[string]string{"order_id": in.OrderID},
	}
	if in.PaymentMethod != "" {
		m["payment_method"] = in.PaymentMethod
	}
	if in.lastError != nil {
		m["last_payment_error"] = in.lastError
	}
	return m
}

func unexpectedState(in *intent, what string) answer {
	return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
		"message":        fmt.Sprintf("You cannot %s this PaymentIntent because it has a status of %s.", what, in.Status),
		"payment_intent": intentJSON(in)})
}

func ok(v any) answer {
	b, _ := json.Marshal(v) // maps of strings and numbers
	return answer{http.StatusOK, b}
}

func errorBody(status int, e map[string]any) answer {
	b, _ := json.Marshal(map[string]any{"error": e}) // maps of strings and numbers
	return answer{status, b}
}

func writeError(w http.ResponseWriter, status int, e map[string]any) {
	b := errorBody(status, e).body
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b) // a client that went away does not matter
}

// Session is a Checkout Session as the fake holds it.
type Session struct {
	ID            string
	URL           string
	OrderID       string // client_reference_id
	Title         string // its one line item's product name
	Amount        int64  // amount_total
	Currency      string
	Quantity      string
	Mode          string
	MethodTypes   []string // payment_method_types
	Metadata      map[string]string
	SuccessURL    string
	CancelURL     string
	ExpiresAt     int64
	Status        string // open, complete, expired
	PaymentStatus string // unpaid, paid
	PaymentIntent string // the PaymentIntent that took the money, once paid
	IntentOrderID string // payment_intent_data[metadata][order_id]
}

func (s *Server) newSession(form url.Values) answer {
	for _, p := range []string{"mode", "success_url", "cancel_url", "line_items[0][price_data][currency]", "line_items[0][price_data][unit_amount]",
		"line_items[0][price_data][product_data][name]", "line_items[0][quantity]"} {
		if form.Get(p) == "" {
			return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "message": "Missing required param: " + p + ".", "param": p})
		}
	}
	amount, _ := strconv.ParseInt(form.Get("line_items[0][price_data][unit_amount]"), 10, 64)
	if amount < 50 {
		return errorBody(http.StatusBadRequest, map[string]any{"type": "invalid_request_error", "code": "amount_too_small",
			"message": "The Checkout Session's total amount due must add up to at least $0.50 usd"})
	}
	id := fmt.Sprintf("cs_test_fake_%d", len(s.sessOrd)+1)
	cs := &Session{
		ID: id, URL: "https://checkout.stripe.test/c/pay/" + id, OrderID: form.Get("client_reference_id"),
		Title: form.Get("line_items[0][price_data][product_data][name]"), Amount: amount,
		Currency: form.Get("line_items[0][price_data][currency]"), Quantity: form.Get("line_items[0][quantity]"),
		Mode: form.Get("mode"), Metadata: map[string]string{}, SuccessURL: form.Get("success_url"), CancelURL: form.Get("cancel_url"),
		Status: "open", PaymentStatus: "unpaid", IntentOrderID: form.Get("payment_intent_data[metadata][order_id]"),
	}
	cs.ExpiresAt, _ = strconv.ParseInt(form.Get("expires_at"), 10, 64)
	for k, v := range form {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") {
			cs.Metadata[strings.TrimSuffix(name, "]")] = v[0]
		}
		if strings.HasPrefix(k, "payment_method_types[") {
			cs.MethodTypes = append(cs.MethodTypes, v[0])
		}
	}
	s.sessions[id] = cs
	s.sessOrd = append(s.sessOrd, id)
	return ok(sessionJSON(cs))
}

func sessionJSON(cs *Session) map[string]any {
	m := map[string]any{
		"id": cs.ID, "object": "checkout.session", "url": cs.URL, "mode": cs.Mode, "status": cs.Status,
		"payment_status": cs.PaymentStatus, "client_reference_id": cs.OrderID, "metadata": cs.Metadata,
		"amount_total": cs.Amount, "currency": cs.Currency, "success_url": cs.SuccessURL, "cancel_url": cs.CancelURL,
		"expires_at": cs.ExpiresAt, "livemode": false, "payment_intent": nil,
	}
	if cs.PaymentIntent != "" {
		m["payment_intent"] = cs.PaymentIntent
	}
	if cs.Status != "open" {
		m["url"] = nil
	}
	return m
}

// Sessions returns the Checkout Sessions of an order (client_reference_id),
// oldest first.
func (s *Server) Sessions(orderID string) []Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Session
	for _, id := range s.sessOrd {
		if cs := s.sessions[id]; cs.OrderID == orderID {
			out = append(out, *cs)
		}
	}
	return out
}

// PaySession pays open session id as a buyer on Checkout's page would with
// a card that succeeds: a PaymentIntent of the session's order takes its
// amount, and the session is complete and paid. It returns the session, or
// false if it was not open.
func (s *Server) PaySession(id string) (Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.sessions[id]
	if cs == nil || cs.Status != "open" {
		return Session{}, false
	}
	in := s.newIntent(url.Values{"amount": {strconv.FormatInt(cs.Amount, 10)}, "currency": {cs.Currency}, "metadata[order_id]": {cs.OrderID}})
	in.Status, in.AmountReceived, in.PaymentMethod = "succeeded", cs.Amount, "pm_card_visa"
	cs.Status, cs.PaymentStatus, cs.PaymentIntent = "complete", "paid", in.ID
	return *cs, true
}

// Event returns the webhook event of type typ (checkout.session.completed,
// checkout.session.expired, ...) about session id as it is now, as Stripe
// would post it: to be signed (stripe-go's webhook.GenerateTestSignedPayload)
// and posted to the service's webhook. change, if set, alters the session
// object first (a test forging an amount).
func (s *Server) Event(id, typ string, change ...func(map[string]any)) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events++
	obj := map[string]any{}
	if cs := s.sessions[id]; cs != nil {
		obj = sessionJSON(cs)
	}
	for _, c := range change {
		c(obj)
	}
	b, _ := json.Marshal(map[string]any{ // maps of strings and numbers
		"id": fmt.Sprintf("evt_fake_%d", s.events), "object": "event", "api_version": "2023-10-16", "created": time.Now().Unix(),
		"livemode": false, "pending_webhooks": 1, "type": typ, "data": map[string]any{"object": obj},
	})
	return b
}
