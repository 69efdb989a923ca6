package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	// The pure-Go SQLite driver FerretDB itself uses; importing it here
	// makes the dependency explicit (it registers the "sqlite" driver).
	_ "modernc.org/sqlite"
)

// Why this file exists
//
// FerretDB v1.24.2's SQLite backend keeps each collection in a table with one
// JSON column, _ferretdb_sjson, and creates the unique _id index on the
// expression
//
//	_ferretdb_sjson->"_id"
//
// but every query it pushes down by _id (find, update, delete of a filter
// that is exactly {_id: X}) compares a different expression:
//
//	_ferretdb_sjson->'$._id' = ?
//
// The two mean the same JSON path, but SQLite uses an expression index only
// for the identical expression, so every lookup by _id scans the whole table
// and costs grow with the collection (9 ms for a FindOne at 5,000 documents,
// 45 ms for an update).
//
// The fix here keeps, next to FerretDB's own index, a plain (non-unique)
// index on exactly the expression its queries use, for every collection of
// every database, including collections created after start. FerretDB never
// sees it: it lists and drops indexes from its own metadata table, and a
// dropped collection's table takes the index with it. Uniqueness stays
// FerretDB's own index's job.
//
// Alternatives weighed: a patched FerretDB kept in the repository (50,000
// lines to carry for a one-line change), a build overlay (every go command
// would need a flag), or writing services around it (every store would have
// to know which server it talks to). This keeps the fix inside the embedded
// package, so services never know, and real MongoDB is untouched.
//
// How it keeps in step: one goroutine looks at the data folder every
// idIndexEvery. A database file whose size and modification time (and those
// of its write-ahead log) did not change is skipped without opening it;
// otherwise a short-lived SQLite connection reads the schema version and, if
// it moved, creates the missing indexes. Connections are never held between
// looks: a connection left open while FerretDB drops a database would keep
// that database's write-ahead log alive for a database created next under the
// same name.
//
// The expressions are FerretDB v1.24.2's (IDColumn in its
// internal/backends/sqlite/metadata package); TestIDLookupsUseAnIndex reads
// the SQL FerretDB really runs and fails if a lookup by _id scans.

const (
	// idPathExpr is the expression FerretDB's queries compare _id with.
	idPathExpr = `_ferretdb_sjson->'$._id'`
	// idIndexSuffix names the extra index: FerretDB names its own indexes
	// "<table>_<index name>", so a double underscore cannot clash with an
	// index a client creates under a sensible name.
	idIndexSuffix = "__id_path"
	// metadataTable is FerretDB's table of collections (name, table_name).
	metadataTable = "_ferretdb_collections"
	// dbFileExt is the extension of FerretDB's database files.
	dbFileExt = ".sqlite"
	// idIndexEvery is how often the data folder is looked at. A collection
	// created in between is small, so its first lookups scan few rows.
	idIndexEvery = 100 * time.Millisecond
)

// idIndexer keeps the extra _id index on every FerretDB table in dir.
type idIndexer struct {
	dir string
	log *slog.Logger
	dbs map[string]*dbState // by file path
}

// dbState is what the indexer last saw of one database file.
type dbState struct {
	main, wal fileStamp
	schema    int64 // PRAGMA schema_version when every table was indexed
}

type fileStamp struct {
	size    int64
	modTime time.Time
	exists  bool
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime(), exists: true}
}

func newIDIndexer(dir string, log *slog.Logger) *idIndexer {
	return &idIndexer{dir: dir, log: log, dbs: map[string]*dbState{}}
}

// run keeps the indexes in step until ctx ends, then closes done.
func (x *idIndexer) run(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(idIndexEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := x.sync(ctx); err != nil && ctx.Err() == nil {
				// The next look tries again; lookups only get slower meanwhile.
				x.log.Warn("embedded ferretdb: _id path index", "err", err)
			}
		}
	}
}

// sync indexes every table of every database file that changed since the
// last look.
func (x *idIndexer) sync(ctx context.Context) error {
	files, err := filepath.Glob(filepath.Join(x.dir, "*"+dbFileExt))
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(files))
	var failed []error
	for _, f := range files {
		seen[f] = true
		st := x.dbs[f]
		if st == nil {
			st = &dbState{schema: -1}
			x.dbs[f] = st
		}
		main, wal := stampOf(f), stampOf(f+"-wal")
		if main == st.main && wal == st.wal {
			continue
		}
		if err := x.syncDB(ctx, f, st); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", filepath.Base(f), err))
			continue
		}
		// Stamped after the look: a change made during it is looked at
		// again next time.
		st.main, st.wal = main, wal
	}
	for f := range x.dbs {
		if !seen[f] {
			delete(x.dbs, f) // dropped database
		}
	}
	return errors.Join(failed...)
}

func (x *idIndexer) syncDB(ctx context.Context, file string, st *dbState) (err error) {
	// mode=rw: never create a database file FerretDB did not create.
	db, err := sql.Open("sqlite", "file:"+file+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	db.SetMaxOpenConns(1)

	var schema int64
	if err := db.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&schema); err != nil {
		return err
	}
	if schema == st.schema {
		return nil
	}
	tables, err := unindexedTables(ctx, db)
	if err != nil {
		return err
	}
	for _, t := range tables {
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (%s)`, t+idIndexSuffix, t, idPathExpr)
		if _, err := db.ExecContext(ctx, q); err != nil {
			// A table dropped since the query above: the next look
			// finds the metadata without it.
			return fmt.Errorf("index %s: %w", t, err)
		}
		x.log.Debug("embedded ferretdb: _id path index created", "database", strings.TrimSuffix(filepath.Base(file), dbFileExt), "table", t)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&st.schema); err != nil {
		return err
	}
	return nil
}

// unindexedTables lists FerretDB's collection tables that lack the extra
// index. A database FerretDB is still setting up has no metadata table yet:
// nothing to do.
func unindexedTables(ctx context.Context, db *sql.DB) ([]string, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, metadataTable).Scan(&n)
	if err != nil || n == 0 {
		return nil, err
	}
	q := fmt.Sprintf(`SELECT c.table_name FROM %q c
		JOIN sqlite_master t ON t.type = 'table' AND t.name = c.table_name
		WHERE NOT EXISTS (SELECT 1 FROM sqlite_master i WHERE i.type = 'index' AND i.name = c.table_name || '%s')`,
		metadataTable, idIndexSuffix)
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
