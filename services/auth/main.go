// Command auth runs the Stuffmart auth service: accounts, sessions,
// refresh tokens, roles and bans under /api/users.
package main

import (
	"github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/shared/service"
)

func main() { service.Main("auth", app.LoadConfig, app.Run) }
