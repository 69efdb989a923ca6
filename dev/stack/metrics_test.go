package stack_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stuffmart/stuffmart/shared/correlation"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

// moved is one series that a story must have moved: the counter (or the
// histogram's count) of name whose labels include labels, at least min.
type moved struct {
	name   string
	labels []string
	min    float64
}

// storyMetrics is what each app's /metrics must show after the story of
// TestStackMetricsTellTheStory: a visitor saw the home page, a buyer signed
// in who bought two stuffs, paid for one (its order completed) and let the
// other expire. Extend it when an app counts more (docs/observability.md
// lists every metric); an app not listed is not scraped.
func storyMetrics() map[string][]moved {
	return map[string][]moved{
		"auth": {
			{"http_requests_total", []string{"route", "/api/users/signup", "method", "POST", "status", "201"}, 2},
			{"http_requests_total", []string{"route", "/api/users/signin", "method", "POST", "status", "200"}, 1},
			{"http_request_duration_seconds", []string{"route", "/api/users/signin", "method", "POST"}, 1},
			{"auth_signups_total", []string{"result", "succeeded"}, 2},
			{"auth_signins_total", []string{"result", "succeeded"}, 1},
		},
		"stuff": {
			{"http_requests_total", []string{"route", "/api/stuff", "method", "POST", "status", "201"}, 2},
			{"http_requests_total", []string{"route", "/api/stuff/:id", "method", "GET", "status", "200"}, 1},
			{"events_published_total", []string{"subject", "stuff:created", "result", "ok"}, 2},
			{"events_handled_total", []string{"subject", "order:created", "result", "acked"}, 2},
			{"events_handled_total", []string{"subject", "order:completed", "result", "acked"}, 1},
			{"events_handled_total", []string{"subject", "order:cancelled", "result", "acked"}, 1},
		},
		"orders": {
			{"http_requests_total", []string{"route", "/api/orders", "method", "POST", "status", "201"}, 2},
			{"events_handled_total", []string{"subject", "stuff:created", "result", "acked"}, 2},
			{"events_handled_total", []string{"subject", "payment:created", "result", "acked"}, 1},
			{"events_handled_total", []string{"subject", "expiration:complete", "result", "acked"}, 1},
			{"events_published_total", []string{"subject", "order:created", "result", "ok"}, 2},
			{"events_published_total", []string{"subject", "order:completed", "result", "ok"}, 1},
			{"events_published_total", []string{"subject", "order:cancelled", "result", "ok"}, 1},
			{"orders_holds_total", []string{"result", "taken"}, 2},
			{"orders_ended_total", []string{"outcome", "completed"}, 1},
			{"orders_ended_total", []string{"outcome", "expired"}, 1},
		},
		"payments": {
			{"http_requests_total", []string{"route", "/api/payments", "method", "POST", "status", "201"}, 1},
			{"payments_total", []string{"outcome", "succeeded"}, 1},
			{"events_handled_total", []string{"subject", "order:created", "result", "acked"}, 2},
			{"events_published_total", []string{"subject", "payment:created", "result", "ok"}, 1},
		},
		"expiration": {
			{"events_handled_total", []string{"subject", "order:created", "result", "acked"}, 2},
			{"events_published_total", []string{"subject", "expiration:complete", "result", "ok"}, 1},
			{"expiration_lateness_seconds", nil, 1},
		},
		"client": {
			{"http_requests_total", []string{"route", "/", "method", "GET", "status", "200"}, 1},
			{"storefront_page_cache_total", nil, 1},
		},
	}
}

// TestStackMetricsTellTheStory: after a purchase and an expiry, each
// service's /metrics, scraped on its own port as Prometheus would, shows
// the requests it served, the events it published and handled and what its
// rules decided; the gateway, which is what the public reaches, serves no
// /metrics. The logs of every service tell the expired purchase's story
// under the correlation id of its BUY, from the order to the stuff released.
func TestStackMetricsTellTheStory(t *testing.T) {
	t.Parallel()
	logs := &logLines{}
	st := startStackLogging(t, t.TempDir(), slog.New(slog.NewJSONHandler(logs, nil)), "ORDER_HOLD", "6s")
	if status, _ := newClient(t, st.info.URL).do(http.MethodGet, "/", nil, ""); status != http.StatusOK {
		t.Fatalf("GET / = %d", status)
	}
	creds := map[string]string{"email": "buyer@uni.edu", "password": "password123"}
	seller := newClient(t, st.info.URL)
	seller.expect(http.MethodPost, "/api/users/signup", map[string]string{"email": "seller@uni.edu", "password": "password123"}, http.StatusCreated)
	newClient(t, st.info.URL).expect(http.MethodPost, "/api/users/signup", creds, http.StatusCreated)
	buyer := newClient(t, st.info.URL)
	buyer.expect(http.MethodPost, "/api/users/signin", creds, http.StatusOK)

	sell := func(title string) string {
		var s idOnly
		decode(t, seller.expect(http.MethodPost, "/api/stuff", map[string]any{
			"title": title, "description": "notes", "price": 900, "delivery": "https://files.example/" + title,
		}, http.StatusCreated), &s)
		return s.ID
	}
	// buy sends BUY with correlationID, as the storefront passes on its
	// request's.
	buy := func(stuffID, correlationID string) string {
		var o idOnly
		testkit.Eventually(t, 5*time.Second, func() bool {
			status, raw := buyer.send(http.MethodPost, "/api/orders", map[string]string{"stuffId": stuffID}, correlation.Header, correlationID)
			if status == http.StatusCreated {
				decode(t, raw, &o)
			}
			return status != http.StatusNotFound // orders learns of new stuff by event
		}, "stuff %s never reached the orders service", stuffID)
		if o.ID == "" {
			t.Fatalf("BUY of %s was refused", stuffID)
		}
		return o.ID
	}
	orderStatus := func(id string) string {
		var o struct {
			Status string `json:"status"`
		}
		decode(t, buyer.expect(http.MethodGet, "/api/orders/"+id, nil, http.StatusOK), &o)
		return o.Status
	}

	// The first order is left to expire while the second is paid.
	unpaid := buy(sell("essay"), "story-unpaid")
	notes := sell("calculus")
	buyer.expect(http.MethodGet, "/api/stuff/"+notes, nil, http.StatusOK)
	paid := buy(notes, "story-paid")
	testkit.Eventually(t, 5*time.Second, func() bool {
		status, _ := buyer.do(http.MethodPost, "/api/payments", map[string]string{"orderId": paid, "paymentMethod": "pm_card_visa"}, "")
		if status != http.StatusNotFound && status != http.StatusCreated {
			t.Fatalf("POST /api/payments = %d, want 201", status)
		}
		return status == http.StatusCreated // 404 until payments learns of the order by event
	}, "order %s never reached the payments service", paid)
	testkit.Eventually(t, 5*time.Second, func() bool { return orderStatus(paid) == "complete" }, "order never completed")
	testkit.Eventually(t, 20*time.Second, func() bool { return orderStatus(unpaid) == "cancelled" }, "unpaid order never expired")

	urls := map[string]string{}
	for _, s := range st.info.Services {
		urls[s.Name] = s.URL
	}
	for app, want := range storyMetrics() {
		if urls[app] == "" {
			t.Fatalf("no app %s in the stack (%v)", app, urls)
		}
		var missing []string
		testkit.Eventually(t, 10*time.Second, func() bool {
			got := testkit.Scrape(t, urls[app]+"/metrics")
			missing = missing[:0]
			for _, m := range want {
				if v := got.Value(m.name, m.labels...); v < m.min {
					missing = append(missing, fmt.Sprintf("%s%v = %v, want at least %v", m.name, m.labels, v, m.min))
				}
			}
			return len(missing) == 0
		}, "%s's /metrics did not move:\n%s", app, lazy(func() string { return strings.Join(missing, "\n") }))
	}

	// grep story-unpaid: BUY, the deadline scheduled and fired, the order
	// cancelled, the stuff released (and payments told).
	for _, want := range []map[string]string{
		{"service": "orders", "msg": "request", "method": "POST", "path": "/api/orders", "status": "201"},
		{"service": "expiration", "msg": "event handled", "subject": "order:created"},
		{"service": "expiration", "msg": "deadline fired", "order_id": unpaid},
		{"service": "orders", "msg": "event handled", "subject": "expiration:complete"},
		{"service": "stuff", "msg": "event handled", "subject": "order:cancelled"},
		{"service": "payments", "msg": "event handled", "subject": "order:cancelled"},
	} {
		want[correlation.LogKey] = "story-unpaid"
		testkit.Eventually(t, 5*time.Second, func() bool { return logs.has(want) }, "no log line %v", want)
	}

	// The public reaches the gateway only; its /metrics is nobody's (the
	// storefront, which takes the path, refuses forwarded requests).
	status, body := getBody(t, st.info.URL+"/metrics")
	if status != http.StatusNotFound || strings.Contains(body, "# TYPE") || strings.Contains(body, "go_goroutines") {
		t.Fatalf("the gateway's GET /metrics = %d %.300s, want a 404 without metrics", status, body)
	}
}

// lazy is text made when it is printed: a failure message of
// testkit.Eventually that tells what the last try saw.
type lazy func() string

func (l lazy) String() string { return l() }

// logLines keeps what a JSON logger writes, one line per Write.
type logLines struct {
	mu  sync.Mutex
	all [][]byte
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, slices.Clone(p))
	return len(p), nil
}

// has reports whether a line has every attribute of want (as strings).
func (l *logLines) has(want map[string]string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.all {
		var got map[string]any
		if json.Unmarshal(line, &got) != nil {
			continue
		}
		if matches(got, want) {
			return true
		}
	}
	return false
}

func matches(got map[string]any, want map[string]string) bool {
	for k, v := range want {
		if fmt.Sprint(got[k]) != v {
			return false
		}
	}
	return true
}
