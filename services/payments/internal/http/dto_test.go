package http

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/stuffmart/stuffmart/services/payments/internal/payments"
	"github.com/stuffmart/stuffmart/shared/errs"
)

// TestPayError: the provider's answers reach the buyer with the status and
// body the API promises, the cause of a provider failure stays hidden (but
// is what the error handler logs), and the domain error can still be found
// in the chain.
func TestPayError(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	tests := []struct {
		name   string
		err    error
		status int
		items  []errs.Item
	}{
		{"declined", &payments.DeclinedError{Code: "generic_decline", Message: "Your card was declined."},
			http.StatusPaymentRequired, []errs.Item{{Message: "Your card was declined.", Field: "paymentMethod"}}},
		{"unknown payment method", &payments.InvalidPaymentMethodError{Message: "No such PaymentMethod: 'pm_x'"},
			http.StatusBadRequest, []errs.Item{{Message: "No such PaymentMethod: 'pm_x'", Field: "paymentMethod"}}},
		{"amount refused", &payments.AmountError{Message: "Amount must be at least 50 cents"},
			http.StatusBadRequest, []errs.Item{{Message: "Amount must be at least 50 cents"}}},
		{"provider failure", fmt.Errorf("pay: %w", &payments.ProviderError{Err: cause}),
			http.StatusBadGateway, []errs.Item{{Message: providerUnreachable}}},
		{"outcome not known yet", fmt.Errorf("record payment: %w", payments.ErrPaymentPending),
			http.StatusServiceUnavailable, []errs.Item{{Message: paymentPending}}},
		{"domain refusal", payments.ErrAlreadyPaid,
			http.StatusBadRequest, []errs.Item{{Message: "Order has already been paid"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := payError(tc.err)
			e, ok := errs.As(got)
			if !ok {
				t.Fatalf("%v is not an errs.Error", got)
			}
			if e.StatusCode() != tc.status || !slices.Equal(e.Serialize(), tc.items) {
				t.Fatalf("%d %+v, want %d %+v", e.StatusCode(), e.Serialize(), tc.status, tc.items)
			}
			if got.Error() != tc.err.Error() || !errors.Is(got, tc.err) {
				t.Fatalf("error %q does not read or unwrap as %q", got, tc.err)
			}
		})
	}
	if got := payError(cause); got != cause {
		t.Fatalf("an error that is none of the provider's became %v", got)
	}
}
