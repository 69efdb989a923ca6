package web

import (
	"net/http"
	"net/http/pprof"
)

// Profiles serves net/http/pprof under /debug/pprof/. Serve it on a listener
// of its own bound to loopback (DEBUG_ADDR), never on the public port:
// profiles show the program's insides and a CPU profile costs CPU.
//
//	go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=30
func Profiles() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
