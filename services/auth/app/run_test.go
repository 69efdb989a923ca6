package app_test

import (
	"context"
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
			NATS: testkit.NATS(t), JWTKey: testkit.JWTKey, SessionKey: testkit.SessionKey,
			AccessTTL: testkit.AccessTTL, RefreshTTL: testkit.RefreshTTL, BodyLimit: testkit.BodyLimit},
		PasswordCost: bcrypt.MinCost,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, testkit.Logger(t)) }()

	testkit.WaitReady(t, "http://"+addr)
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
		NATS: testkit.NATS(t), JWTKey: testkit.JWTKey, SessionKey: testkit.SessionKey,
		AccessTTL: testkit.AccessTTL, RefreshTTL: testkit.RefreshTTL, BodyLimit: testkit.BodyLimit}}
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
	res := testkit.NewClient(t, srv.URL).Do(http.MethodGet, "/readyz", nil)
	body := res.Errors()
	if res.Status != http.StatusServiceUnavailable || !slices.ContainsFunc(body, func(it errs.Item) bool { return it.Message == "database is not ready" }) {
		t.Fatalf("/readyz without a database = %d %+v, want 503 naming the database", res.Status, body)
	}
	if !slices.ContainsFunc(body, func(it errs.Item) bool { return it.Message == "indexes is not ready" }) {
		t.Fatalf("/readyz without a database = %+v, want it to name the indexes too", body)
	}
}
