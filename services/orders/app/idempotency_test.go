package app_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	"github.com/stuffmart/stuffmart/shared/testkit"
)

// idempotencyRecord is the _id of the record the service keeps of a key.
func idempotencyRecord(userID, key string) string {
	return userID + "\x00POST\x00/api/orders\x00" + key
}

// TestCreateOrderWithIdempotencyKey: a retried POST /api/orders with the
// same Idempotency-Key gets the first answer again, not a 409 from the hold
// its own first try took, and no second order is placed. A first try that
// died without answering (after its hold, or after its order too) is taken
// over by the retry, which finishes what it started and answers with the
// order it made.
func TestCreateOrderWithIdempotencyKey(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	seller := newID()
	post := func(c *http.Cookie, stuffID, key string) *testkit.Response {
		t.Helper()
		return h.HTTP.Do(http.MethodPost, "/api/orders", testkit.Raw(`{"stuffId":"`+stuffID+`"}`),
			testkit.WithCookie(c), testkit.WithHeader("Idempotency-Key", key))
	}

	// A retry after an answer.
	{
		_, c := h.User("")
		stuff := h.list(seller, 700)
		var first, again orderJSON
		post(c, stuff, "k-1").Want(http.StatusCreated).Decode(&first)
		res := post(c, stuff, "k-1").Want(http.StatusCreated)
		res.Decode(&again)
		if again != first {
			t.Fatalf("retry answered %+v, want the first answer %+v", again, first)
		}
		if n := h.ordersOf(stuff); n != 1 {
			t.Fatalf("%d orders placed, want 1", n)
		}
		// Another key is another purchase: the stuff is held.
		post(c, stuff, "k-2").WantError(http.StatusConflict, heldMsg, "")
	}

	// dead makes the first try with key look like one whose process died
	// before answering, a minute ago: its record is not done and its claim
	// old enough to be taken over.
	dead := func(userID, key string) {
		t.Helper()
		_, err := h.DB.Collection("idempotency").UpdateOne(context.Background(),
			bson.D{{Key: "_id", Value: idempotencyRecord(userID, key)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "done", Value: false}, {Key: "claimedAt", Value: time.Now().Add(-time.Minute)}}}})
		if err != nil {
			t.Fatal(err)
		}
	}

	// The first try died after placing the order.
	{
		u, c := h.User("")
		stuff := h.list(seller, 800)
		var first, again orderJSON
		post(c, stuff, "k-3").Want(http.StatusCreated).Decode(&first)
		dead(u.ID, "k-3")
		post(c, stuff, "k-3").Want(http.StatusCreated).Decode(&again)
		if again.ID != first.ID || again.Status != "created" {
			t.Fatalf("retry answered %+v, want the first try's order %s", again, first.ID)
		}
		if n := h.ordersOf(stuff); n != 1 {
			t.Fatalf("%d orders placed, want 1", n)
		}
	}

	// The first try died between its hold and its order.
	{
		u, c := h.User("")
		stuff := h.list(seller, 900)
		var first, again orderJSON
		post(c, stuff, "k-4").Want(http.StatusCreated).Decode(&first)
		oid, err := primitive.ObjectIDFromHex(first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.DB.Collection("orders").DeleteOne(context.Background(), bson.D{{Key: "_id", Value: oid}}); err != nil {
			t.Fatal(err)
		}
		dead(u.ID, "k-4")
		post(c, stuff, "k-4").Want(http.StatusCreated).Decode(&again)
		if again.ID != first.ID || again.Status != "created" || again.Stuff.ID != stuff {
			t.Fatalf("retry answered %+v, want an order %s of the stuff", again, first.ID)
		}
		if o := h.order(c, first.ID); o.Status != "created" {
			t.Fatalf("order after the retry: %+v", o)
		}
		// The retry's order holds the stuff.
		h.do(http.MethodPost, "/api/orders", `{"stuffId":"`+stuff+`"}`, h.buyer()).WantError(http.StatusConflict, heldMsg, "")
	}
}
