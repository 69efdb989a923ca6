// Command orders runs the orders service: orders, the hold that makes a stuff
// exclusive to one buyer, and the replica of stuff they are placed on.
package main

import (
	"github.com/stuffmart/stuffmart/services/orders/app"
	"github.com/stuffmart/stuffmart/shared/service"
)

func main() { service.Main("orders", app.LoadConfig, app.Run) }
