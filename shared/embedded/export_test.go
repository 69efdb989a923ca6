package embedded

import "log/slog"

// StartFerretWithoutIDIndex starts FerretDB as it comes, without the _id
// path index, so that benchmarks can show the difference.
func StartFerretWithoutIDIndex(dir, addr string, log *slog.Logger) (*Ferret, error) {
	return startFerret(dir, addr, log, false)
}
