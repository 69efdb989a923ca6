// Command expiration runs the expiration service: durable timers for order
// deadlines, published as expiration:complete events.
package main

import (
	"github.com/stuffmart/stuffmart/services/expiration/app"
	"github.com/stuffmart/stuffmart/shared/service"
)

func main() { service.Main("expiration", app.LoadConfig, app.Run) }
