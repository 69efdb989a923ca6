// Command client runs the Stuffmart storefront: the server-rendered pages
// students use in a browser and crawlers read, built on the services' APIs.
package main

import (
	"github.com/stuffmart/stuffmart/client/app"
	"github.com/stuffmart/stuffmart/shared/service"
)

func main() { service.Main("client", app.LoadConfig, app.Run) }
