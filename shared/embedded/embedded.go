// Package embedded runs the real infrastructure in-process for tests and the
// local stack: FerretDB v1 (MongoDB wire protocol over SQLite files) and
// nats-streaming-server with a file store. Kubernetes runs the real servers;
// services never know the difference.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	natsd "github.com/nats-io/nats-server/v2/server"
	stand "github.com/nats-io/nats-streaming-server/server"
	"github.com/nats-io/nats-streaming-server/stores"
)

var ferretNewMu sync.Mutex

// Ferret is a running embedded FerretDB.
type Ferret struct {
	URI    string
	cancel context.CancelFunc
	done   chan error

	stopIndexer context.CancelFunc
	indexerDone chan struct{}
}

// StartFerret serves the MongoDB wire protocol on addr ("127.0.0.1:0" picks a
// port) backed by SQLite files in dir (created if needed, kept after Stop).
// Every collection's table gets the index that makes lookups by _id take
// constant time (see idindex.go): those that exist before StartFerret
// returns, those created later within a tenth of a second.
func StartFerret(dir, addr string, log *slog.Logger) (*Ferret, error) {
	return startFerret(dir, addr, log, true)
}

func startFerret(dir, addr string, log *slog.Logger, idIndex bool) (*Ferret, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("ferretdb data dir: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// ferretdb.New writes a package variable of FerretDB's; two stacks
	// starting at once in one process (parallel tests) would race on it.
	ferretNewMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: addr},
		Handler:  "sqlite",
		// Never ?mode=memory: it deadlocks under concurrency.
		//
		// synchronous(normal): FerretDB runs SQLite in WAL mode, where
		// NORMAL commits without an fsync each time (the log is synced at
		// checkpoints). A commit is durable when the process dies or is
		// killed, and the files are never corrupted; only a crash of the
		// machine itself (power loss) may roll back the last commits. It
		// is what makes the local stack keep up with bursts: an fsync per
		// commit held every write of a service's database back (326
		// against 525 listings created a second, see the README). Real
		// MongoDB, in Kubernetes, journals as it does.
		SQLiteURL: "file:" + abs + "/?_pragma=synchronous(normal)",
		Logger:    log,
	})
	ferretNewMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("ferretdb: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	uri := f.MongoDBURI()
	if err := waitTCP(hostOf(uri), 10*time.Second, done); err != nil {
		cancel()
		return nil, fmt.Errorf("ferretdb did not start: %w", err)
	}
	ictx, stopIndexer := context.WithCancel(context.Background())
	indexerDone := make(chan struct{})
	if idIndex {
		ix := newIDIndexer(abs, log)
		if err := ix.sync(ctx); err != nil {
			stopIndexer()
			cancel()
			<-done
			return nil, fmt.Errorf("ferretdb _id path indexes: %w", err)
		}
		go ix.run(ictx, indexerDone)
	} else {
		close(indexerDone)
	}
	return &Ferret{URI: uri, cancel: cancel, done: done, stopIndexer: stopIndexer, indexerDone: indexerDone}, nil
}

// Stop shuts FerretDB down and waits for it.
func (f *Ferret) Stop() {
	f.stopIndexer()
	<-f.indexerDone
	f.cancel()
	<-f.done
}

// The limits of every NATS Streaming channel, here and in Kubernetes
// (k8s/nats.yaml passes the same to the server).
const (
	ChannelMaxAge   = 7 * 24 * time.Hour
	ChannelMaxBytes = 512 << 20 // 512 MB
)

// NATS is a running embedded NATS Streaming server.
type NATS struct {
	URL       string
	ClusterID string
	srv       *stand.StanServer
}

// StartNATS runs nats-streaming-server with cluster id clusterID on
// host:port (port 0 picks one) and, when dir is not empty, a file store in
// dir that survives restarts; otherwise a memory store.
func StartNATS(clusterID, host string, port int, dir string) (*NATS, error) {
	sopts := stand.GetDefaultOptions()
	sopts.ID = clusterID
	sopts.ReplaceDurable = true
	// Find clients that vanished (a killed service) within seconds, not the
	// default minutes, so their unacked messages go to live queue members.
	sopts.ClientHBInterval = time.Second
	sopts.ClientHBTimeout = time.Second
	sopts.ClientHBFailCount = 3
	sopts.StoreLimits.MaxChannels = 0 // unlimited
	sopts.StoreLimits.MaxSubscriptions = 0
	// Each channel keeps a week of messages and at most ChannelMaxBytes:
	// far more than any consumer needs (a failing message is retried for
	// six hours, then parked in its consumer's database), and bounded.
	sopts.StoreLimits.MaxAge = ChannelMaxAge
	sopts.StoreLimits.MaxBytes = ChannelMaxBytes
	sopts.StoreLimits.MaxMsgs = 0 // bounded by bytes and age
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("nats data dir: %w", err)
		}
		sopts.StoreType = stores.TypeFile
		sopts.FilestoreDir = dir
	}
	nopts := stand.DefaultNatsServerOptions
	nopts.Host = host
	nopts.Port = port
	if port == 0 {
		nopts.Port = natsd.RANDOM_PORT
	}
	srv, err := stand.RunServerWithOpts(sopts, &nopts)
	if err != nil {
		return nil, fmt.Errorf("nats-streaming-server: %w", err)
	}
	return &NATS{URL: srv.ClientURL(), ClusterID: clusterID, srv: srv}, nil
}

// Port is the TCP port clients connect to.
func (n *NATS) Port() int {
	_, p, _ := net.SplitHostPort(hostOf(n.URL))
	port, _ := strconv.Atoi(p)
	return port
}

// Stop shuts the server down.
func (n *NATS) Stop() { n.srv.Shutdown() }

func hostOf(uri string) string {
	// mongodb://127.0.0.1:1234/ or nats://127.0.0.1:4222
	for _, p := range []string{"mongodb://", "nats://"} {
		if len(uri) > len(p) && uri[:len(p)] == p {
			uri = uri[len(p):]
		}
	}
	for i := 0; i < len(uri); i++ {
		if uri[i] == '/' || uri[i] == '?' {
			return uri[:i]
		}
	}
	return uri
}

func waitTCP(addr string, timeout time.Duration, died <-chan error) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		select {
		case derr := <-died:
			return errors.Join(errors.New("exited"), derr)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
