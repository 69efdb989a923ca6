package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The services do a create (POST /api/stuff, /api/orders, /api/payments)
// that carries an Idempotency-Key once per user and key for 24 hours: a
// request again with the key gets the first request's answer again (marked
// with the header Idempotent-Replayed: true), whatever it was but a 5xx. The
// storefront sends the key of the form submission (a random key rendered
// into the page with the form), so the same page submitted twice, by a
// double click or a retry after a lost answer, creates once and leads to the
// same page. Two more answers concern the key itself:
//
//   - 409 while the first request with the key is still being answered;
//   - 400 on the Idempotency-Key field when the key came with another body.
//
// create deals with both, so handlers see only the create's own answer.

// IdempotencyHeader is the request header carrying a create's key.
const IdempotencyHeader = "Idempotency-Key"

// replayedHeader marks an answer that a service kept for an earlier request
// with the same key.
const replayedHeader = "Idempotent-Replayed"

// The pause before asking again about a key whose first request is still
// being answered starts at inProgressFirstWait and doubles up to
// inProgressMaxWait: a listing or an order takes milliseconds, a payment
// may wait seconds on the card processor.
const (
	inProgressFirstWait = 20 * time.Millisecond
	inProgressMaxWait   = 500 * time.Millisecond
)

// create runs c, a create carrying the key c.key (none when empty), and
// decodes its 2xx answer into out.
//
//   - The key already used with another body: the same page submitted
//     again with other input, which is another submission. It is sent
//     again with a key derived from the key and the body, the same for
//     every resubmission of that input.
//   - A 409 that is not a replay is either the create's own answer (the
//     stuff is held by someone else) or the sign that the first request
//     with the key is still being answered. It is asked again, with a
//     growing pause, until the answer is a replay or something else,
//     within the call's timeout: the first request's answer is then this
//     request's too.
func (b *base) create(ctx context.Context, c call, out any) error {
	timeout := c.timeout
	if timeout <= 0 {
		timeout = b.timeout
	}
	deadline := time.Now().Add(timeout)
	_, err := b.into(ctx, c, out)
	if c.key == "" {
		return err
	}
	if keyUsedForAnotherBody(err) {
		k, kerr := bodyKey(c.key, c.body)
		if kerr != nil {
			return fmt.Errorf("%s %s %s: %w", b.name, c.method, c.path, kerr)
		}
		c.key = k
		_, err = b.into(ctx, c, out)
	}
	for wait := inProgressFirstWait; inProgress(err) && time.Now().Add(wait).Before(deadline); wait = min(2*wait, inProgressMaxWait) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		_, err = b.into(ctx, c, out)
	}
	return err
}

// inProgress reports whether err may mean that the first request with the
// key is still being answered: a 409 that is not a replay.
func inProgress(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusConflict && !e.Replayed
}

// keyUsedForAnotherBody reports whether err refuses the key because it came
// with another body before.
func keyUsedForAnotherBody(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
		return false
	}
	for _, it := range e.Items {
		if it.Field == IdempotencyHeader {
			return true
		}
	}
	return false
}

// bodyKey is the key for body sent with a key first used for another body.
func bodyKey(key string, body any) (string, error) {
	buf, err := json.Marshal(body)
	if err != nil {
		return "", fmt.Errorf("encode: %w", err)
	}
	sum := sha256.Sum256(buf)
	return key + "-" + hex.EncodeToString(sum[:8]), nil
}

// attemptKey is the key of a create's attempt n (from 0) while a replica
// catches up (awaitReplica). A service keeps its 404 answer under the key
// like any other, so each attempt needs a key of its own; they are derived
// from the submission's key, so a resubmission walks through the same keys
// and gets the same answers: at most one attempt of all of them creates.
func attemptKey(key string, n int) string {
	if key == "" || n == 0 {
		return key
	}
	return key + "." + strconv.Itoa(n)
}
