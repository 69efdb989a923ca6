package app_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stuffmart/stuffmart/services/auth/app"
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

func TestNewGivesUpWhenTheDatabaseNeverAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil { // nothing listens there now
		t.Fatal(err)
	}
	cfg := app.Config{Service: service.Config{Name: "auth", MongoURI: "mongodb://" + addr + "/", MongoDB: "auth",
		NATS: testkit.NATS(t), JWTKey: jwtKey, SessionKey: sessionKey, AccessTTL: accessTTL, RefreshTTL: refreshTTL, BodyLimit: "64K"}}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	a, err := app.New(ctx, cfg, testkit.Logger(t))
	if err == nil {
		if cerr := a.Close(context.Background()); cerr != nil {
			t.Log(cerr)
		}
		t.Fatal("New succeeded without a database")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("New: %v, want the context's deadline", err)
	}
}
