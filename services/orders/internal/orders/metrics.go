package orders

// Metrics counts what the rules decide (the app counts it in the service's
// Prometheus registry: orders_holds_total and orders_ended_total, see
// docs/observability.md).
type Metrics interface {
	// Hold counts one BUY by what it got: HoldTaken, HoldRefused or
	// HoldTooManyOpen.
	Hold(result string)
	// Ended counts one order brought to its end: EndCompleted,
	// EndCancelled or EndExpired.
	Ended(ending string)
}

// What a BUY got.
const (
	// HoldTaken: the order is placed and holds the stuff.
	HoldTaken = "taken"
	// HoldRefused: another order holds the stuff (the 409, ErrHeld).
	HoldRefused = "refused"
	// HoldTooManyOpen: the buyer has MaxOpen orders waiting for payment
	// (ErrTooManyOpen).
	HoldTooManyOpen = "too_many_open"
)

// How an order ended.
const (
	// EndCompleted: paid (complete).
	EndCompleted = "completed"
	// EndCancelled: cancelled by its buyer, because its buyer was banned,
	// or because it lost its stuff or slot before it was confirmed or paid.
	EndCancelled = "cancelled"
	// EndExpired: cancelled at its deadline (expiration:complete, or the
	// sweep of overdue orders).
	EndExpired = "expired"
)

// statusOf is the status an order ends in.
func statusOf(ending string) string {
	if ending == EndCompleted {
		return StatusComplete
	}
	return StatusCancelled
}

// uncounted is the Metrics of a Service given none.
type uncounted struct{}

func (uncounted) Hold(string)  {}
func (uncounted) Ended(string) {}
