package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	authapp "github.com/stuffmart/stuffmart/services/auth/app"
	"github.com/stuffmart/stuffmart/shared/service"
)

// FerretURIFile is the file in DATA_DIR that holds the MongoDB URI of a
// running stack's FerretDB, from start to stop, so that Admin reaches the
// data through it.
const FerretURIFile = "ferretdb.uri"

// Admin runs auth's operator command (authapp.Admin: grant EMAIL, revoke
// EMAIL, list) on the local stack's data in cfg.DataDir: `go run ./dev
// admin grant ann@uni.edu`. While a stack runs on that data, the command goes
// through the stack's FerretDB (FerretURIFile): a second FerretDB on the same
// files would not learn of the collections the first creates, nor the first
// of those it creates, and their writes would fail. Otherwise it runs a
// FerretDB of its own on the data for the time of the command.
//
// The role shows in a running session at its next refresh (within
// ACCESS_TOKEN_TTL) or at once after signing in again. Errors are those of
// authapp.Admin.
func Admin(ctx context.Context, cfg Config, log *slog.Logger, args []string, out io.Writer) error {
	uri, stop, err := adminFerret(cfg, log)
	if err != nil {
		return err
	}
	defer stop()
	acfg := authapp.Config{Service: service.Config{
		Name:      "auth",
		MongoURI:  uri,
		MongoDB:   "auth", // MONGO_DB of the auth service: its name (env)
		AccessTTL: cfg.AccessTokenTTL,
	}}
	return authapp.Admin(ctx, acfg, args, out)
}

// adminFerret returns the URI of the running stack's FerretDB, or starts
// one on cfg.DataDir and returns its URI and how to stop it.
func adminFerret(cfg Config, log *slog.Logger) (uri string, stop func(), err error) {
	raw, err := os.ReadFile(filepath.Join(cfg.DataDir, FerretURIFile))
	switch {
	case err == nil:
		uri = strings.TrimSpace(string(raw))
		if answers(uri) {
			return uri, func() {}, nil
		}
		// Left by a stack that was killed: nobody serves the data.
	case !errors.Is(err, fs.ErrNotExist):
		return "", nil, fmt.Errorf("read %s: %w", FerretURIFile, err)
	}
	f, err := startFerret(filepath.Join(cfg.DataDir, "ferretdb"), slog.New(minLevel{log.Handler(), slog.LevelError}))
	if err != nil {
		return "", nil, err
	}
	return f.URI, f.Stop, nil
}

// answers reports whether something accepts connections at uri's address.
func answers(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Host == "" {
		return false
	}
	c, err := net.DialTimeout("tcp", u.Host, time.Second)
	return err == nil && c.Close() == nil
}

// publishFerret writes uri to FerretURIFile; unpublishFerret removes it.
func publishFerret(dataDir, uri string) error {
	if err := os.WriteFile(filepath.Join(dataDir, FerretURIFile), []byte(uri+"\n"), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", FerretURIFile, err)
	}
	return nil
}

func unpublishFerret(dataDir string) error {
	if err := os.Remove(filepath.Join(dataDir, FerretURIFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", FerretURIFile, err)
	}
	return nil
}
