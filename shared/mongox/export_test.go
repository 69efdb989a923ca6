package mongox

// LockCount is the number of per-document locks the Writer holds right now
// (held or waited for); tests use it to check that locks are released.
func (w *Writer) LockCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.locks)
}

// SetAtomicFilters tells the Writer what the server does instead of asking
// it, so tests on FerretDB also run the path MongoDB takes.
func (w *Writer) SetAtomicFilters(atomic bool) {
	w.server.mu.Lock()
	defer w.server.mu.Unlock()
	w.server.known, w.server.atomic = true, atomic
}
