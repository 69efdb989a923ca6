// Command auth runs the Stuffmart auth service: accounts, sessions,
// refresh tokens, roles and bans under /api/users.
//
// `auth admin grant|revoke EMAIL` and `auth admin list` are the operator's
// command for the admin role (app.AdminMain), configured by the same
// environment as the service.
package main

import (
	"context"
	"os"

	"github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/shared/service"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "admin" {
		os.Exit(app.AdminMain(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
	}
	service.Main("auth", app.LoadConfig, app.Run)
}
