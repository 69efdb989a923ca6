// Command stuff runs the Stuffmart stuff service: listings and their
// reservation state under /api/stuff.
package main

import (
	"github.com/stuffmart/stuffmart/services/stuff/app"
	"github.com/stuffmart/stuffmart/shared/service"
)

func main() { service.Main("stuff", app.LoadConfig, app.Run) }
