package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/events"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"MONGO_URI": "mongodb://localhost:27017", "NATS_URL": "nats://localhost:4222",
		"JWT_KEY": testkit.JWTKey, "SESSION_KEY": testkit.SessionKey,
	}
	tests := []struct {
		name      string
		set       map[string]string
		wantHold  time.Duration
		wantSweep time.Duration
		wantMax   int
		wantErr   []string
	}{
		{"defaults", nil, 15 * time.Minute, 30 * time.Second, 3, nil},
		{"order hold", map[string]string{"ORDER_HOLD": "90s"}, 90 * time.Second, 30 * time.Second, 3, nil},
		{"order sweep", map[string]string{"ORDER_SWEEP": "2m"}, 15 * time.Minute, 2 * time.Minute, 3, nil},
		{"max open orders", map[string]string{"MAX_OPEN_ORDERS": "1"}, 15 * time.Minute, 30 * time.Second, 1, nil},
		{"bad order hold", map[string]string{"ORDER_HOLD": "soon"}, 0, 0, 0, []string{"ORDER_HOLD"}},
		{"bad order sweep", map[string]string{"ORDER_SWEEP": "0s"}, 0, 0, 0, []string{"ORDER_SWEEP"}},
		{"no open order allowed", map[string]string{"MAX_OPEN_ORDERS": "0"}, 0, 0, 0, []string{"MAX_OPEN_ORDERS"}},
		{"negative open orders", map[string]string{"MAX_OPEN_ORDERS": "-2"}, 0, 0, 0, []string{"MAX_OPEN_ORDERS"}},
		{"open orders not a number", map[string]string{"MAX_OPEN_ORDERS": "many"}, 0, 0, 0, []string{"MAX_OPEN_ORDERS"}},
		{"everything missing at once", map[string]string{"MONGO_URI": "", "NATS_URL": "", "JWT_KEY": "", "ORDER_HOLD": "-1m", "ORDER_SWEEP": "often", "MAX_OPEN_ORDERS": "0"}, 0, 0, 0,
			[]string{"MONGO_URI", "NATS_URL", "JWT_KEY", "ORDER_HOLD", "ORDER_SWEEP", "MAX_OPEN_ORDERS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.set {
				env[k] = v
			}
			cfg, err := app.LoadConfig(func(k string) string { return env[k] })
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.OrderHold != tc.wantHold || cfg.OrderSweep != tc.wantSweep || cfg.MaxOpenOrders != tc.wantMax || cfg.Service.Name != "orders" || cfg.Service.MongoDB != "orders" {
					t.Fatalf("config = %+v", cfg)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, name := range tc.wantErr {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
		})
	}
}

func TestCreateOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seller := newID()
	buyer, bc := h.User("")
	stuff := h.list(seller, 1999)
	before := time.Now()
	res := h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+stuff+`"}`, bc).Want(http.StatusCreated)
	body := res.Body
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "status", "userId", "expiresAt", "stuff", "version"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("response lacks %q: %s", k, body)
		}
	}
	for _, k := range []string{"_id", "outbox"} {
		if _, ok := raw[k]; ok {
			t.Errorf("response leaks %q: %s", k, body)
		}
	}
	var o orderJSON
	res.Decode(&o)
	if o.Status != "created" || o.UserID != buyer.ID || o.Version != 1 || o.Stuff.ID != stuff || o.Stuff.Price != 1999 || o.Stuff.Title != "Notes "+stuff[16:] {
		t.Fatalf("order = %+v", o)
	}
	if o.ExpiresAt.Before(before.Add(orderHold).Add(-time.Second)) || o.ExpiresAt.After(time.Now().Add(orderHold).Add(time.Second)) {
		t.Fatalf("expiresAt %v, want now + %v", o.ExpiresAt, orderHold)
	}
	ev := h.wait(events.OrderCreated, o.ID)
	if ev.Version != 1 || ev.Status != "created" || ev.UserID != buyer.ID || ev.Stuff.ID != stuff || ev.Stuff.Price != 1999 {
		t.Fatalf("order:created = %+v", ev)
	}
	h.waitOutboxesEmpty()
}

// TestRoutesAndBadInput walks every route with good and bad input, in order:
// each case may rely on the ones before it.
func TestRoutesAndBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seller, sc := h.User("")
	buyer, bc := h.User("")
	other, oc := h.User("")
	stuff := h.list(seller.ID, 500)
	sold := newID()
	h.Peer.Publish(events.StuffCreatedEvent{ID: sold, Version: 1, Title: "gone", Price: 100, UserID: seller.ID, Status: "sold"})
	h.waitReplica(sold, 1)
	order := h.buy(bc, stuff)
	tampered := *bc
	tampered.Value = tampered.Value[:len(tampered.Value)-4] + "AAAA"
	unknown := newID()

	const (
		post = http.MethodPost
		get  = http.MethodGet
		del  = http.MethodDelete
	)
	js := func(s string) string { return `{"stuffId":"` + s + `"}` }
	tests := []struct {
		name        string
		method      string
		path        string
		body        string
		contentType string
		cookie      *http.Cookie
		wantCode    int
		wantMsg     string // the exact message of the one error, for 4xx
		wantField   string
	}{
		// POST /api/orders
		{"create: anonymous", post, "/api/orders", js(stuff), "", nil, 401, "Not authorized", ""},
		{"create: tampered cookie", post, "/api/orders", js(stuff), "", &tampered, 401, "Not authorized", ""},
		{"create: own stuff", post, "/api/orders", js(stuff), "", sc, 400, "You cannot buy your own stuff", ""},
		{"create: held by another order", post, "/api/orders", js(stuff), "", oc, 409, heldMsg, ""},
		{"create: sold stuff", post, "/api/orders", js(sold), "", oc, 400, "The stuff has already been sold", ""},
		{"create: unknown stuff", post, "/api/orders", js(unknown), "", oc, 404, "Not Found", ""},
		{"create: malformed id", post, "/api/orders", js("abc"), "", oc, 404, "Not Found", ""},
		{"create: id with operator text", post, "/api/orders", js(`$ne`), "", oc, 404, "Not Found", ""},
		{"create: missing stuffId", post, "/api/orders", `{}`, "", oc, 400, "Stuff id is required", "stuffId"},
		{"create: null stuffId", post, "/api/orders", `{"stuffId":null}`, "", oc, 400, "Stuff id is required", "stuffId"},
		{"create: operator object", post, "/api/orders", `{"stuffId":{"$ne":null}}`, "", oc, 400, "Must be a string", "stuffId"},
		{"create: number", post, "/api/orders", `{"stuffId":123}`, "", oc, 400, "Must be a string", "stuffId"},
		{"create: float", post, "/api/orders", `{"stuffId":1.5}`, "", oc, 400, "Must be a string", "stuffId"},
		{"create: array", post, "/api/orders", `{"stuffId":["` + stuff + `"]}`, "", oc, 400, "Must be a string", "stuffId"},
		{"create: unknown field", post, "/api/orders", `{"stuffId":"` + stuff + `","price":1}`, "", oc, 400, "Unknown field", "price"},
		{"create: operator field", post, "/api/orders", `{"$where":"1"}`, "", oc, 400, "Unknown field", "$where"},
		{"create: not JSON", post, "/api/orders", `stuffId=1`, "", oc, 400, "Malformed JSON", ""},
		{"create: truncated JSON", post, "/api/orders", `{"stuffId":"`, "", oc, 400, "Malformed JSON", ""},
		{"create: two objects", post, "/api/orders", js(stuff) + js(stuff), "", oc, 400, "Request body must hold a single JSON object", ""},
		{"create: JSON array", post, "/api/orders", `[]`, "", oc, 400, "Request body must be a JSON object", ""},
		{"create: empty body", post, "/api/orders", ``, "", oc, 415, "Content-Type must be application/json", ""},
		{"create: empty JSON body", post, "/api/orders", ``, "application/json", oc, 400, "Request body must be a JSON object", ""},
		{"create: form content type", post, "/api/orders", js(stuff), "application/x-www-form-urlencoded", oc, 415, "Content-Type must be application/json", ""},
		{"create: body too large", post, "/api/orders", `{"stuffId":"` + strings.Repeat("a", 70<<10) + `"}`, "", oc, 413, "Request body too large", ""},
		{"create: query operators are ignored", post, "/api/orders?stuffId[$ne]=1", js(unknown), "", oc, 404, "Not Found", ""},

		// GET /api/orders/:id
		{"get: anonymous", get, "/api/orders/" + order.ID, "", "", nil, 401, "Not authorized", ""},
		{"get: someone else's", get, "/api/orders/" + order.ID, "", "", oc, 401, "Not authorized", ""},
		{"get: the seller's view is not an owner's", get, "/api/orders/" + order.ID, "", "", sc, 401, "Not authorized", ""},
		{"get: owner", get, "/api/orders/" + order.ID, "", "", bc, 200, "", ""},
		{"get: unknown", get, "/api/orders/" + unknown, "", "", bc, 404, "Not Found", ""},
		{"get: malformed", get, "/api/orders/not-an-id", "", "", bc, 404, "Not Found", ""},
		{"get: operator in path", get, "/api/orders/%7B%22$ne%22:null%7D", "", "", bc, 404, "Not Found", ""},
		{"get: operator in query", get, "/api/orders/" + order.ID + "?id[$ne]=1", "", "", bc, 200, "", ""},

		// GET /api/orders
		{"list: anonymous", get, "/api/orders", "", "", nil, 401, "Not authorized", ""},
		{"list: mine", get, "/api/orders", "", "", bc, 200, "", ""},
		{"list: operators in query ignored", get, "/api/orders?page[$gt]=1&x[$gt]=1&userId[$ne]=x", "", "", bc, 200, "", ""},
		{"list: page 0", get, "/api/orders?page=0", "", "", bc, 400, "Must be an integer from 1 to 10000", "page"},
		{"list: limit too big", get, "/api/orders?limit=1000", "", "", bc, 400, "Must be an integer from 1 to 100", "limit"},
		{"list: limit not a number", get, "/api/orders?limit=ten", "", "", bc, 400, "Must be an integer from 1 to 100", "limit"},
		{"list: page as float", get, "/api/orders?page=1.5", "", "", bc, 400, "Must be an integer from 1 to 10000", "page"},

		// DELETE /api/orders/:id
		{"cancel: anonymous", del, "/api/orders/" + order.ID, "", "", nil, 401, "Not authorized", ""},
		{"cancel: someone else's", del, "/api/orders/" + order.ID, "", "", oc, 401, "Not authorized", ""},
		{"cancel: unknown", del, "/api/orders/" + unknown, "", "", bc, 404, "Not Found", ""},
		{"cancel: malformed", del, "/api/orders/xyz", "", "", bc, 404, "Not Found", ""},
		{"cancel: owner", del, "/api/orders/" + order.ID, "", "", bc, 204, "", ""},
		{"cancel: again", del, "/api/orders/" + order.ID, "", "", bc, 400, "Only an order that is created can be cancelled", ""},
		{"create: released stuff, by someone else", post, "/api/orders", js(stuff), "", oc, 201, "", ""},
		{"create: now held for the other buyer", post, "/api/orders", js(stuff), "", bc, 409, heldMsg, ""},

		// the rest of the service
		{"unknown route", get, "/api/nope", "", "", bc, 404, "Not Found", ""},
		{"method not allowed", http.MethodPut, "/api/orders/" + order.ID, js(stuff), "", bc, 405, "Method Not Allowed", ""},
		{"healthz", get, "/healthz", "", "", nil, 200, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := []testkit.RequestOption{testkit.WithCookie(tc.cookie)}
			if tc.contentType != "" {
				opts = append(opts, testkit.WithHeader("Content-Type", tc.contentType))
			}
			res := h.client(t).Do(tc.method, tc.path, jsonBody(tc.body), opts...)
			if tc.wantCode < 400 {
				res.Want(tc.wantCode)
				return
			}
			res.WantError(tc.wantCode, tc.wantMsg, tc.wantField)
		})
	}

	// What the walk left: the buyer's one cancelled order, the other's one
	// created order; nothing else was written by the bad requests.
	lists := []struct {
		name   string
		id     string
		cookie *http.Cookie
		want   []string
	}{{"buyer", buyer.ID, bc, []string{"cancelled"}}, {"other", other.ID, oc, []string{"created"}}, {"seller", seller.ID, sc, nil}}
	for _, l := range lists {
		var list []orderJSON
		h.do(get, "/api/orders", "", l.cookie).Want(http.StatusOK).Decode(&list)
		var got []string
		for _, o := range list {
			if o.UserID != l.id {
				t.Fatalf("list of %s holds %+v", l.name, o)
			}
			got = append(got, o.Status)
		}
		if strings.Join(got, ",") != strings.Join(l.want, ",") {
			t.Errorf("orders of %s: %v, want %v", l.name, got, l.want)
		}
	}
	got := h.order(bc, order.ID)
	if got.Status != "cancelled" || got.Version != 2 {
		t.Fatalf("cancelled order = %+v", got)
	}
	ev := h.wait(events.OrderCancelled, order.ID)
	if ev.Version != 2 || ev.Stuff.ID != stuff {
		t.Fatalf("order:cancelled = %+v", ev)
	}
}

func TestListNewestFirstWithPages(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	bc := h.buyer()
	var ids []string
	for range 3 {
		ids = append(ids, h.buy(bc, h.list(newID(), 100)).ID)
	}
	tests := []struct {
		query string
		want  []string
	}{
		{"", []string{ids[2], ids[1], ids[0]}},
		{"?limit=2", []string{ids[2], ids[1]}},
		{"?limit=2&page=2", []string{ids[0]}},
		{"?page=3&limit=2", []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			var list []orderJSON
			h.client(t).Do(http.MethodGet, "/api/orders"+tc.query, nil, testkit.WithCookie(bc)).Want(http.StatusOK).Decode(&list)
			got := []string{}
			for _, o := range list {
				got = append(got, o.ID)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
