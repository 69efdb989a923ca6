package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/shared/errs"
	"github.com/stuffmart/stuffmart/shared/service"
	"github.com/stuffmart/stuffmart/shared/testkit"
)

func TestRunServesUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil { // Run listens on it itself
		t.Fatal(err)
	}
	cfg := app.Config{
		Service: service.Config{Name: "auth", HTTPAddr: addr, MongoURI: testkit.MongoURI(t), MongoDB: testkit.Mongo(t).Name(),
			NATS: testkit.NATS(t), JWTKey: jwtKey, SessionKey: sessionKey, AccessTTL: accessTTL, RefreshTTL: refreshTTL, BodyLimit: "64K"},
		PasswordCost: bcrypt.MinCost,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, testkit.Logger(t)) }()

	ready := func() bool {
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		defer res.Body.Close()
		return res.StatusCode == http.StatusOK
	}
	testkit.Eventually(t, 15*time.Second, ready, "auth never became ready on %s", addr)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// Like every service, auth starts while its database is unreachable (the
// Kubernetes order of starts is not guaranteed) and is not ready until the
// database answers and its indexes exist: no traffic reaches it before the
// unique email index that "Email in use" rests on.
func TestStartsWithoutItsDatabaseButIsNotReady(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil { // nothing listens there now
		t.Fatal(err)
	}
	cfg := app.Config{Service: service.Config{Name: "auth", MongoURI: "mongodb://" + addr + "/?serverSelectionTimeoutMS=300", MongoDB: "auth",
		NATS: testkit.NATS(t), JWTKey: jwtKey, SessionKey: sessionKey, AccessTTL: accessTTL, RefreshTTL: refreshTTL, BodyLimit: "64K"}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := app.New(ctx, cfg, testkit.Logger(t))
	if err != nil {
		t.Fatalf("New without a database: %v", err)
	}
	a.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Log(err) // the database never answered
		}
	})
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body := testkit.ErrorItems(t, mustRead(t, res))
	if res.StatusCode != http.StatusServiceUnavailable || !slices.ContainsFunc(body, func(it errs.Item) bool { return it.Message == "database is not ready" }) {
		t.Fatalf("/readyz without a database = %d %+v, want 503 naming the database", res.StatusCode, body)
	}
	if !slices.ContainsFunc(body, func(it errs.Item) bool { return it.Message == "indexes is not ready" }) {
		t.Fatalf("/readyz without a database = %+v, want it to name the indexes too", body)
	}
}

func mustRead(t *testing.T, res *http.Response) []byte {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
