// Command ferretdb runs the local stack's embedded FerretDB (the MongoDB
// wire protocol over SQLite files, with the _id index the embedded package
// adds) as a process of its own, so that the fault tests in dev/chaos can
// kill it and start it again.
//
//	ferretdb -dir DATA -addr 127.0.0.1:27017
//
// It prints its URI on stdout once it serves, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/stuffmart/stuffmart/shared/embedded"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", ".data/ferretdb", "folder of the SQLite files")
	addr := flag.String("addr", "127.0.0.1:27017", "address to listen on")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := embedded.StartFerret(*dir, *addr, log)
	if err != nil {
		return err
	}
	defer f.Stop()
	fmt.Println(f.URI)
	<-ctx.Done()
	return nil
}
