package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stuffmart/stuffmart/shared/embedded"
	"github.com/stuffmart/stuffmart/shared/web"
)

// ClusterID is the NATS Streaming cluster id of the local stack, as in
// Kubernetes.
const ClusterID = "stuffmart"

func startFerret(dir string, log *slog.Logger) (*embedded.Ferret, error) {
	return embedded.StartFerret(dir, "127.0.0.1:0", log)
}

// Defaults of Config.ReadyTimeout and Config.StopTimeout.
const (
	defaultReadyTimeout = 60 * time.Second
	defaultStopTimeout  = 10 * time.Second
)

// startAttempts is how often a service is started on a fresh port when the
// port picked for it was taken in the meantime.
const startAttempts = 3

// Info describes a stack that is up: every service answered /readyz.
type Info struct {
	// URL is where the gateway serves: http://localhost:PORT.
	URL      string
	DataDir  string
	MongoURI string
	NATSURL  string
	Services []Running
	// Targets is the file that lists every app's /metrics for Prometheus
	// (file_sd_configs; dev/prometheus.yml reads it).
	Targets string
	// DebugURL serves the process's profiles ("" unless DEBUG_ADDR is set).
	DebugURL string
}

// Running is one service of a stack that is up.
type Running struct {
	Name   string
	Prefix string
	// URL is where the service itself listens, on 127.0.0.1.
	URL string
}

// Run starts the stack, calls ready once every service is ready, and serves
// until ctx ends; then it stops the gateway, the services, NATS and FerretDB,
// in that order, and returns. Data stays in cfg.DataDir for the next run.
// It returns an error when something fails to start or to stop, or when a
// service or the gateway stops on its own (the rest is then stopped too); a
// ctx that ends during start-up is not an error.
func Run(ctx context.Context, cfg Config, log *slog.Logger, ready func(Info)) (err error) {
	begin := time.Now()
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = defaultReadyTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = defaultStopTimeout
	}
	log.Info("starting stuffmart", "config", cfg)
	s := &stack{cfg: cfg, log: log}
	defer func() {
		stopBegin := time.Now()
		err = errors.Join(err, s.stop())
		log.Info("stuffmart stopped", "shutdown", time.Since(stopBegin).Round(time.Millisecond))
	}()

	info, err := s.start(ctx)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("interrupted while starting")
			return nil
		}
		return err
	}
	log.Info("stuffmart is ready", "url", info.URL, "startup", time.Since(begin).Round(time.Millisecond))
	if ready != nil {
		ready(info)
	}

	select {
	case <-ctx.Done():
		log.Info("stopping stuffmart")
		return nil
	case err := <-s.gatewayDone:
		s.gatewayDone = nil
		return fmt.Errorf("gateway stopped: %w", err)
	case p := <-s.exited:
		return fmt.Errorf("%s stopped on its own: %w", p.svc.Name, orExited(p.err))
	}
}

// stack is one run's state; stop undoes whatever start got to.
type stack struct {
	cfg Config
	log *slog.Logger

	listener    net.Listener
	apiURL      string // the gateway, as the client reaches the services
	ferret      *embedded.Ferret
	nats        *embedded.NATS
	secrets     Secrets
	stopSvcs    context.CancelFunc
	mu          sync.Mutex
	procs       []*proc
	exited      chan *proc
	gateway     *Gateway
	stopGateway context.CancelFunc
	gatewayDone chan error
	debugLn     net.Listener // DEBUG_ADDR's, until its server owns it
	debugDone   chan error
}

// proc is one start of one service.
type proc struct {
	svc  Service
	addr string
	done chan struct{}
	err  error // set before done is closed
	// failed is set when start-up already reported err.
	failed bool
}

func (s *stack) start(ctx context.Context) (Info, error) {
	cfg := s.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return Info{}, fmt.Errorf("data dir: %w", err)
	}
	secrets, err := LoadSecrets(filepath.Join(cfg.DataDir, SecretsFile), cfg.Secrets)
	if err != nil {
		return Info{}, err
	}
	s.secrets = secrets

	// Take the gateway's port first: a port in use fails before anything
	// slow starts.
	if s.listener, err = net.Listen("tcp", ":"+strconv.Itoa(cfg.Port)); err != nil {
		return Info{}, fmt.Errorf("gateway: %w", err)
	}
	if cfg.DebugAddr != "" {
		if s.debugLn, err = net.Listen("tcp", cfg.DebugAddr); err != nil {
			return Info{}, fmt.Errorf("DEBUG_ADDR: %w", err)
		}
	}
	s.apiURL = "http://127.0.0.1:" + strconv.Itoa(s.listener.Addr().(*net.TCPAddr).Port)

	t := time.Now()
	// FerretDB logs every connection at info and dumps whole wire messages
	// at warn for commands it lacks (the driver's endSessions at every
	// shutdown): keep it to errors unless LOG_LEVEL is debug.
	ferretFloor := slog.LevelError
	if cfg.LogLevel <= slog.LevelDebug {
		ferretFloor = cfg.LogLevel
	}
	ferretLog := slog.New(minLevel{s.log.Handler(), ferretFloor}).With("component", "ferretdb")
	if s.ferret, err = startFerret(filepath.Join(cfg.DataDir, "ferretdb"), ferretLog); err != nil {
		return Info{}, err
	}
	s.log.Info("ferretdb started", "uri", s.ferret.URI, "took", time.Since(t).Round(time.Millisecond))
	if err := publishFerret(cfg.DataDir, s.ferret.URI); err != nil {
		return Info{}, err
	}

	t = time.Now()
	if s.nats, err = embedded.StartNATS(ClusterID, "127.0.0.1", 0, filepath.Join(cfg.DataDir, "nats")); err != nil {
		return Info{}, err
	}
	s.log.Info("nats streaming started", "url", s.nats.URL, "took", time.Since(t).Round(time.Millisecond))

	running, err := s.startServices(ctx)
	if err != nil {
		return Info{}, err
	}

	var routes []Route
	info := Info{DataDir: cfg.DataDir, MongoURI: s.ferret.URI, NATSURL: s.nats.URL}
	for _, p := range running {
		u := &url.URL{Scheme: "http", Host: p.addr}
		info.Services = append(info.Services, Running{Name: p.svc.Name, Prefix: p.svc.Prefix, URL: u.String()})
		if p.svc.Prefix != "" {
			routes = append(routes, Route{Name: p.svc.Name, Prefix: p.svc.Prefix, Target: u})
		}
	}
	s.gateway = NewGateway(routes, s.log.With("component", "gateway"))
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopGateway = cancel
	s.gatewayDone = make(chan error, 1)
	ln := s.listener
	s.listener = nil // the server owns it now
	go func() {
		s.gatewayDone <- web.ServeListener(gctx, s.log.With("component", "gateway"), ln, s.gateway, 3*time.Second)
	}()
	info.URL = "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	if info.Targets, err = writeTargets(cfg.DataDir, running); err != nil {
		return Info{}, err
	}
	if cfg.DebugAddr != "" {
		dln := s.debugLn
		s.debugLn = nil // the server owns it now
		s.debugDone = make(chan error, 1)
		go func() {
			s.debugDone <- web.ServeListener(gctx, s.log.With("component", "profiles"), dln, web.Profiles(), time.Second)
		}()
		info.DebugURL = "http://" + cfg.DebugAddr + "/debug/pprof/"
	}
	return info, nil
}

// TargetsFile is the file, in DATA_DIR, listing every app's metrics
// endpoint in Prometheus's file_sd format; rewritten at every start, as the
// ports change.
const TargetsFile = "prometheus-targets.json"

// writeTargets writes TargetsFile: one target per app, labelled with its
// name.
func writeTargets(dataDir string, running []*proc) (string, error) {
	type group struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	groups := make([]group, 0, len(running))
	for _, p := range running {
		groups = append(groups, group{Targets: []string{p.addr}, Labels: map[string]string{"app": p.svc.Name}})
	}
	b, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dataDir, TargetsFile)
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("metrics targets: %w", err)
	}
	return path, nil
}

var errAnotherFailed = errors.New("another service failed to start")

// startServices starts every service at once and waits until each is ready.
func (s *stack) startServices(ctx context.Context) ([]*proc, error) {
	svcCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopSvcs = cancel
	s.exited = make(chan *proc, len(s.cfg.Services)*startAttempts)

	// Waiting ends at the deadline, on Ctrl-C, or as soon as one service fails.
	failed, cancelWait := context.WithCancelCause(ctx)
	defer cancelWait(nil)
	wctx, cancelTimeout := context.WithTimeoutCause(failed, s.cfg.ReadyTimeout,
		fmt.Errorf("not ready within %s", s.cfg.ReadyTimeout))
	defer cancelTimeout()
	probe := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

	running := make([]*proc, len(s.cfg.Services))
	errs := make([]error, len(s.cfg.Services))
	var wg sync.WaitGroup
	for i, svc := range s.cfg.Services {
		wg.Go(func() {
			running[i], errs[i] = s.launch(svcCtx, wctx, probe, svc)
			if errs[i] != nil {
				if errors.Is(errs[i], errAnotherFailed) {
					errs[i] = nil // reported by the one that failed
				} else {
					cancelWait(errAnotherFailed)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, p := range running {
		go func() {
			<-p.done
			s.exited <- p
		}()
	}
	return running, nil
}

// launch starts svc on a free port and waits for its /readyz; when the port
// was taken between picking and listening, it tries another.
func (s *stack) launch(svcCtx, wctx context.Context, probe *http.Client, svc Service) (*proc, error) {
	log := s.log.With("service", svc.Name)
	for attempt := 1; ; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", svc.Name, err)
		}
		t := time.Now()
		p := s.spawn(svcCtx, svc, addr, log)
		err = waitReady(wctx, probe, p)
		if err == nil {
			log.Info("service ready", "addr", addr, "took", time.Since(t).Round(time.Millisecond))
			return p, nil
		}
		select {
		case <-p.done:
			p.failed = true
		default: // still running: stop reports it if it does not stop
		}
		if errors.Is(err, syscall.EADDRINUSE) && attempt < startAttempts {
			log.Warn("port taken, trying another", "addr", addr)
			continue
		}
		return nil, fmt.Errorf("%s: %w", svc.Name, err)
	}
}

func (s *stack) spawn(ctx context.Context, svc Service, addr string, log *slog.Logger) *proc {
	p := &proc{svc: svc, addr: addr, done: make(chan struct{})}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	env := s.env(svc, addr)
	go func() {
		defer close(p.done)
		p.err = svc.Start(ctx, func(k string) string { return env[k] }, log)
	}()
	return p
}

// env is what a service's Kubernetes Deployment would set for it.
func (s *stack) env(svc Service, addr string) map[string]string {
	return ServiceEnv(s.cfg, s.secrets, Endpoints{MongoURI: s.ferret.URI, NATSURL: s.nats.URL, APIURL: s.apiURL}, svc.Name, addr)
}

// Endpoints are where the stack's shared parts listen.
type Endpoints struct {
	// MongoURI is the embedded FerretDB, NATSURL the embedded NATS Streaming
	// server, APIURL the gateway (the storefront calls the services through
	// it, as it calls their Services in Kubernetes).
	MongoURI, NATSURL, APIURL string
}

// ServiceEnv is the environment the stack runs service name with, listening
// on addr: the variables its Kubernetes Deployment sets, with the stack's
// values. The k8s module's tests compare what each app makes of it with
// what it makes of its Deployment's environment.
func ServiceEnv(cfg Config, secrets Secrets, ep Endpoints, name, addr string) map[string]string {
	return map[string]string{
		"HTTP_ADDR":         addr,
		"MONGO_URI":         ep.MongoURI,
		"MONGO_DB":          name,
		"NATS_URL":          ep.NATSURL,
		"NATS_CLUSTER_ID":   ClusterID,
		"JWT_KEY":           secrets.JWTKey,
		"SESSION_KEY":       secrets.SessionKey,
		"ACCESS_TOKEN_TTL":  cfg.AccessTokenTTL.String(),
		"ORDER_HOLD":        cfg.OrderHold.String(),
		"STRIPE_SECRET_KEY": cfg.StripeSecretKey,
		"STRIPE_API_URL":    cfg.StripeAPIURL,
		// Offline, the stand-in for Stripe Checkout signs its events with it.
		"STRIPE_WEBHOOK_SECRET": secrets.StripeWebhookSecret,
		// The gateway and the storefront run in this process: loopback is
		// the only proxy whose forwarded headers count.
		"TRUSTED_PROXIES": "127.0.0.0/8,::1",
		"RATE_LIMIT":      onOff(cfg.RateLimit),
		"MAX_OPEN_ORDERS": strconv.Itoa(cfg.MaxOpenOrders),
		// The storefront calls the services through the gateway, as it
		// calls them through the ingress's Services in Kubernetes.
		"API_URL":          ep.APIURL,
		"PAYMENTS_OFFLINE": strconv.FormatBool(cfg.StripeSecretKey == ""),
	}
}

// waitReady polls p's /readyz until it answers 200, p exits, or ctx ends.
func waitReady(ctx context.Context, probe *http.Client, p *proc) error {
	u := "http://" + p.addr + "/readyz"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "no answer yet"
	for {
		status, body, err := get(ctx, probe, u)
		switch {
		case err == nil && status == http.StatusOK:
			return nil
		case err == nil:
			last = fmt.Sprintf("/readyz answered %d %s", status, body)
		case ctx.Err() == nil: // keep what the service said, not the deadline
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited while starting: %w", orExited(p.err))
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %s)", context.Cause(ctx), last)
		case <-tick.C:
		}
	}
}

func get(ctx context.Context, c *http.Client, u string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, strings.TrimSpace(string(body)), err
}

// freeAddr picks a free port on 127.0.0.1. Another process may take it
// before the service listens; launch then retries.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port: %w", err)
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

func orExited(err error) error {
	if err == nil {
		return errors.New("returned without an error")
	}
	return err
}

// stop undoes start in reverse order: gateway, services, NATS, FerretDB.
// Each step waits at most cfg.StopTimeout.
func (s *stack) stop() error {
	var errs []error
	if s.listener != nil {
		if err := s.listener.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close gateway listener: %w", err))
		}
	}
	if s.debugLn != nil {
		if err := s.debugLn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close DEBUG_ADDR listener: %w", err))
		}
	}
	if s.stopGateway != nil {
		s.stopGateway()
		if s.gatewayDone != nil { // nil when it already ended
			select {
			case err := <-s.gatewayDone:
				if err != nil {
					errs = append(errs, fmt.Errorf("gateway: %w", err))
				}
			case <-time.After(s.cfg.StopTimeout):
				errs = append(errs, fmt.Errorf("gateway did not stop within %s", s.cfg.StopTimeout))
			}
		}
		s.gateway.Close()
		s.log.Debug("gateway stopped")
		if s.debugDone != nil { // stopGateway ends the profiles' server too
			if err := <-s.debugDone; err != nil {
				errs = append(errs, fmt.Errorf("profiles: %w", err))
			}
		}
	}
	if s.stopSvcs != nil {
		errs = append(errs, s.stopServices())
	}
	if s.nats != nil {
		errs = append(errs, s.within("nats streaming", s.nats.Stop))
	}
	if s.ferret != nil {
		errs = append(errs, unpublishFerret(s.cfg.DataDir), s.within("ferretdb", s.ferret.Stop))
	}
	return errors.Join(errs...)
}

func (s *stack) stopServices() error {
	s.stopSvcs()
	s.mu.Lock()
	procs := s.procs
	s.mu.Unlock()
	deadline := time.NewTimer(s.cfg.StopTimeout)
	defer deadline.Stop()
	var errs []error
	for _, p := range procs {
		select {
		case <-p.done:
			if p.err != nil && !p.failed && !errors.Is(p.err, context.Canceled) {
				errs = append(errs, fmt.Errorf("%s: %w", p.svc.Name, p.err))
			}
			s.log.Debug("service stopped", "service", p.svc.Name)
		case <-deadline.C:
			return errors.Join(append(errs, fmt.Errorf("%s did not stop within %s", p.svc.Name, s.cfg.StopTimeout))...)
		}
	}
	return errors.Join(errs...)
}

// within runs stop, giving up waiting after cfg.StopTimeout.
func (s *stack) within(name string, stop func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		stop()
	}()
	select {
	case <-done:
		s.log.Debug("stopped", "component", name)
		return nil
	case <-time.After(s.cfg.StopTimeout):
		return fmt.Errorf("%s did not stop within %s", name, s.cfg.StopTimeout)
	}
}

// minLevel drops records below floor, for chatty embedded servers.
type minLevel struct {
	slog.Handler
	floor slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.floor && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(as), h.floor}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h.Handler.WithGroup(name), h.floor}
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}
