// Package chaos runs Stuffmart as separate processes, the way it runs in a
// cluster: the embedded FerretDB and NATS Streaming servers (dev/cmd) and
// each service's real binary, each on its own port with its own log. The fault
// tests beside it kill any of them (SIGKILL: no goodbye), start it again, and
// check that nothing was lost or done twice.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Services are the services a cluster runs, by binary name (their main
// packages live in services/<name>).
var Services = []string{"auth", "stuff", "orders", "payments", "expiration"}

// Build compiles the two servers and every service into dir with the Go
// toolchain, from the repository root (two folders up from dev/chaos).
func Build(ctx context.Context, root, dir string) error {
	pkgs := []string{"./dev/cmd/ferretdb", "./dev/cmd/natsd"}
	for _, s := range Services {
		pkgs = append(pkgs, "./services/"+s)
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", dir + string(os.PathSeparator)}, pkgs...)...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// Proc is one process of the cluster.
type Proc struct {
	Name string
	// Addr is where it listens (host:port).
	Addr string
	bin  string
	args []string
	env  []string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the process (its output goes to its log file).
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s is running", p.Name)
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return errors.Join(err, f.Close())
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // its end is what Kill and Stop wait for
		_ = f.Close()  // the log is complete
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// Kill kills the process at once (SIGKILL) and waits for it to be gone.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL) }

// Stop asks the process to stop (SIGTERM), waits for it, and kills it if
// it is still there after 15 s.
func (p *Proc) Stop() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM) // it may be gone already
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
}

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig) // it may be gone already
	<-done
}

// Running reports whether the process was started and has not ended.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Log returns what the process wrote so far.
func (p *Proc) Log() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// URL is the process's HTTP base URL.
func (p *Proc) URL() string { return "http://" + p.Addr }

// Cluster is the whole system as separate processes.
type Cluster struct {
	Dir   string
	Mongo *Proc
	NATS  *Proc
	// Svc holds each service's process by name.
	Svc map[string]*Proc
}

// Options configures New.
type Options struct {
	// Bin is the folder Build compiled into.
	Bin string
	// Dir holds the data and the logs.
	Dir string
	// Env is added to every service's environment (JWT_KEY, SESSION_KEY,
	// ORDER_HOLD, STRIPE_SECRET_KEY, …).
	Env map[string]string
}

// New lays out a cluster on free ports; nothing runs until Start.
func New(o Options) (*Cluster, error) {
	c := &Cluster{Dir: o.Dir, Svc: map[string]*Proc{}}
	for _, d := range []string{"logs", "ferretdb", "nats"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	mongoAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	natsPort, err := stablePort()
	if err != nil {
		return nil, err
	}
	logOf := func(name string) string { return filepath.Join(o.Dir, "logs", name+".log") }
	c.Mongo = &Proc{Name: "ferretdb", Addr: mongoAddr, bin: filepath.Join(o.Bin, "ferretdb"),
		args: []string{"-dir", filepath.Join(o.Dir, "ferretdb"), "-addr", mongoAddr}, env: os.Environ(), log: logOf("ferretdb")}
	c.NATS = &Proc{Name: "natsd", Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(natsPort)), bin: filepath.Join(o.Bin, "natsd"),
		args: []string{"-dir", filepath.Join(o.Dir, "nats"), "-port", strconv.Itoa(natsPort), "-cluster", "stuffmart"}, env: os.Environ(), log: logOf("natsd")}
	for _, name := range Services {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		env := map[string]string{
			"HTTP_ADDR":       addr,
			"MONGO_URI":       "mongodb://" + mongoAddr + "/",
			"MONGO_DB":        name,
			"NATS_URL":        "nats://" + c.NATS.Addr,
			"NATS_CLUSTER_ID": "stuffmart",
		}
		for k, v := range o.Env {
			env[k] = v
		}
		list := os.Environ()
		for k, v := range env {
			list = append(list, k+"="+v)
		}
		c.Svc[name] = &Proc{Name: name, Addr: addr, bin: filepath.Join(o.Bin, name), env: list, log: logOf(name)}
	}
	return c, nil
}

// Start starts the servers, then every service, and waits until each
// service's /readyz answers 200.
func (c *Cluster) Start(ctx context.Context) error {
	for _, p := range []*Proc{c.Mongo, c.NATS} {
		if err := p.Start(); err != nil {
			return err
		}
		if err := WaitTCP(ctx, p.Addr); err != nil {
			return fmt.Errorf("%s: %w\n%s", p.Name, err, p.Log())
		}
	}
	for _, name := range Services {
		if err := c.Svc[name].Start(); err != nil {
			return err
		}
	}
	for _, name := range Services {
		if err := WaitReady(ctx, c.Svc[name]); err != nil {
			return err
		}
	}
	return nil
}

// Stop stops every process, services first.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, p := range c.Svc {
		wg.Go(p.Stop)
	}
	wg.Wait()
	c.NATS.Stop()
	c.Mongo.Stop()
}

// Logs returns the tail of every process's log, for a failing test.
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	all := []*Proc{c.Mongo, c.NATS}
	for _, name := range Services {
		all = append(all, c.Svc[name])
	}
	for _, p := range all {
		l := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
		if len(l) > lines {
			l = l[len(l)-lines:]
		}
		fmt.Fprintf(&b, "---- %s\n%s\n", p.Name, strings.Join(l, "\n"))
	}
	return b.String()
}

// WaitTCP waits until addr accepts connections or ctx ends.
func WaitTCP(ctx context.Context, addr string) error {
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never accepted connections: %w", addr, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitReady waits until p's /readyz answers 200 or ctx ends.
func WaitReady(ctx context.Context, p *Proc) error {
	hc := &http.Client{Timeout: time.Second}
	for {
		status, err := Ready(hc, p)
		if err == nil && status == http.StatusOK {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never ready (last: %d %v)\n%s", p.Name, status, err, p.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Ready returns the status of p's /readyz.
func Ready(hc *http.Client, p *Proc) (int, error) {
	res, err := hc.Get(p.URL() + "/readyz")
	if err != nil {
		return 0, err
	}
	_ = res.Body.Close() // only the status matters
	return res.StatusCode, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// stablePort returns a free port below Linux's ephemeral range, so that it
// stays free while NATS is down: in the ephemeral range, clients redialing a
// port nobody listens on can end up connected to themselves on it and keep
// the server from starting again.
func stablePort() (int, error) {
	for range 100 {
		port := 20000 + int(time.Now().UnixNano()%12000)
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		return port, ln.Close()
	}
	return 0, errors.New("no free port below the ephemeral range")
}
