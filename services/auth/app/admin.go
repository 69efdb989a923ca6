package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.mongodb.org/mongo-driver/mongo"

	"github.com/stuffmart/stuffmart/services/auth/internal/store"
	"github.com/stuffmart/stuffmart/services/auth/internal/users"
	"github.com/stuffmart/stuffmart/shared/mongox"
	"github.com/stuffmart/stuffmart/shared/outbox"
	"github.com/stuffmart/stuffmart/shared/validate"
)

// ErrUsage is returned by Admin for arguments it does not understand.
var ErrUsage = errors.New("usage")

// adminUsage is what AdminMain prints with a usage error.
const adminUsage = `usage: auth admin grant EMAIL    make the account of EMAIL an admin
       auth admin revoke EMAIL   make it a plain user again and end its sessions
       auth admin list           list the admins
The account must exist: the person signs up first.`

// adminTimeout bounds one command, the database's answer included.
const adminTimeout = 30 * time.Second

// AdminMain is the body of `auth admin ARGS...` (main passes os.Args[2:],
// os.Getenv, os.Stdout and os.Stderr): it reads the configuration as the
// service does (LoadConfig; only the database is used), runs Admin and
// returns the exit status: 0 done, 1 failed (the reason on stderr), 2 bad
// arguments (with the usage). In Kubernetes it runs next to the service,
// with its environment: kubectl exec deploy/auth -- /app admin grant EMAIL.
func AdminMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if _, _, err := parseAdmin(args); err != nil {
		fmt.Fprintf(stderr, "auth admin: %v\n%s\n", err, adminUsage)
		return 2
	}
	cfg, err := LoadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "auth admin: configuration: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	if err := Admin(ctx, cfg, args, stdout); err != nil {
		fmt.Fprintf(stderr, "auth admin: %v\n", err)
		return 1
	}
	return 0
}

// Admin runs the operator's command on the database of cfg and prints its
// outcome to out:
//
//	grant EMAIL   makes the account of EMAIL an admin (users.Roles.Grant)
//	revoke EMAIL  makes it a plain user and ends its sessions (users.Roles.Revoke)
//	list          prints the admins, "EMAIL<tab>ID" a line, by email
//
// Roles are never given at sign-up and never follow a list of addresses:
// only this command changes them, and only for accounts that exist. It
// writes through a Writer of its own, as another replica would: safe on
// MongoDB, where the guard is in the filter; on the local stack's FerretDB
// see dev/ (`go run ./dev admin`). Errors: ErrUsage (wrapped) for bad
// arguments, users.ErrNoAccount (wrapped) when no account has the email.
func Admin(ctx context.Context, cfg Config, args []string, out io.Writer) (err error) {
	cmd, email, err := parseAdmin(args)
	if err != nil {
		return err
	}
	client, err := mongox.Connect(ctx, cfg.Service.MongoURI)
	if err != nil {
		return err
	}
	defer func() {
		if derr := client.Disconnect(context.WithoutCancel(ctx)); derr != nil {
			err = errors.Join(err, fmt.Errorf("disconnect: %w", derr))
		}
	}()
	db := client.Database(cfg.Service.MongoDB)
	w := mongox.NewWriter()
	roles := users.NewRoles(store.NewUsers(db, w, noRelay{}), store.NewTokens(db, w), cfg.Now)
	ttl := cfg.Service.AccessTTL
	switch cmd {
	case "grant":
		u, changed, err := roles.Grant(ctx, email)
		if err != nil {
			return signUpFirst(err)
		}
		if !changed {
			_, err = fmt.Fprintf(out, "%s is already an admin\n", u.Email)
			return err
		}
		_, err = fmt.Fprintf(out, "%s is now an admin; their sessions show it at their next refresh (within %s) or when they sign in again\n", u.Email, ttl)
		return err
	case "revoke":
		u, changed, err := roles.Revoke(ctx, email)
		if err != nil {
			return signUpFirst(err)
		}
		if !changed {
			_, err = fmt.Fprintf(out, "%s was not an admin; their sessions are ended\n", u.Email)
			return err
		}
		_, err = fmt.Fprintf(out, "%s is no longer an admin and their sessions are ended; an access token issued before keeps the admin role until it expires, within %s\n", u.Email, ttl)
		return err
	default: // list
		admins, err := roles.Admins(ctx)
		if err != nil {
			return err
		}
		if len(admins) == 0 {
			_, err = fmt.Fprintln(out, "no admins")
			return err
		}
		for _, u := range admins {
			banned := ""
			if u.Banned {
				banned = "\tbanned"
			}
			if _, err := fmt.Fprintf(out, "%s\t%s%s\n", u.Email, u.ID, banned); err != nil {
				return err
			}
		}
		return nil
	}
}

// parseAdmin checks the arguments of the command: its name, and the email
// of grant and revoke, normalized.
func parseAdmin(args []string) (cmd, email string, err error) {
	if len(args) == 0 {
		return "", "", fmt.Errorf("%w: no command", ErrUsage)
	}
	switch cmd = args[0]; cmd {
	case "grant", "revoke":
		if len(args) != 2 {
			return "", "", fmt.Errorf("%w: %s takes one email", ErrUsage, cmd)
		}
		email = users.NormalizeEmail(args[1])
		if !validate.Email(email) {
			return "", "", fmt.Errorf("%w: %q is not an email", ErrUsage, args[1])
		}
		return cmd, email, nil
	case "list":
		if len(args) != 1 {
			return "", "", fmt.Errorf("%w: list takes no argument", ErrUsage)
		}
		return cmd, "", nil
	default:
		return "", "", fmt.Errorf("%w: unknown command %q", ErrUsage, cmd)
	}
}

// signUpFirst tells the operator what to do when no account has the email.
func signUpFirst(err error) error {
	if errors.Is(err, users.ErrNoAccount) {
		return fmt.Errorf("%w: the person signs up first, then run the command again", err)
	}
	return err
}

// noRelay stands in for the outbox relay in the command: a role change
// publishes no event, and one a store method did push would wait in its
// document for the service's relay, whose sweep finds it.
type noRelay struct{}

func (noRelay) Notify(*mongo.Collection, any, ...outbox.Pending) {}
