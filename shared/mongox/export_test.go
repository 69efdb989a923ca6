package mongox

// LockCount is the number of per-document locks the Writer holds right now
// (held or waited for); tests use it to check that locks are released.
func (w *Writer) LockCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.locks)
}
