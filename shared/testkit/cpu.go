package testkit

import (
	"syscall"
	"testing"
	"time"
)

// CPUTime is the CPU time (user and system) this process has used. The
// benchmarks report CPU per request or per operation with it: on a shared
// machine, wall-clock figures count the time other processes took the CPU
// too, while CPU time barely moves.
func CPUTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ReportCPUPerOp starts counting the process's CPU time; the func it returns
// reports it per iteration of b, as cpu-ns/op:
//
//	defer testkit.ReportCPUPerOp(b)()
func ReportCPUPerOp(b *testing.B) func() {
	b.Helper()
	start := CPUTime(b)
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64((CPUTime(b)-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}
