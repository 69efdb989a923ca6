// Command payments runs the Stuffmart payments service: charges (Stripe, or
// an offline test mode), coupons and refunds under /api/payments.
package main

import (
	"github.com/stuffmart/stuffmart/services/payments/app"
	"github.com/stuffmart/stuffmart/shared/service"
)

func main() { service.Main("payments", app.LoadConfig, app.Run) }
