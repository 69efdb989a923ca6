// Command natsd runs the local stack's embedded nats-streaming-server (file
// store) as a process of its own, so that the fault tests in dev/chaos can
// kill it and start it again on the same port and files.
//
//	natsd -dir DATA -port 4222 -cluster stuffmart
//
// It prints its URL on stdout once it serves, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/stuffmart/stuffmart/shared/embedded"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		os.Exit(1)
	}
}

func run() error {
	dir := flag.String("dir", ".data/nats", "folder of the file store")
	port := flag.Int("port", 4222, "port to listen on (127.0.0.1)")
	cluster := flag.String("cluster", "stuffmart", "NATS Streaming cluster id")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := embedded.StartNATS(*cluster, "127.0.0.1", *port, *dir)
	if err != nil {
		return err
	}
	defer n.Stop()
	fmt.Println(n.URL)
	<-ctx.Done()
	return nil
}
