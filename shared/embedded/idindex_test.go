package embedded_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	_ "modernc.org/sqlite"

	"github.com/stuffmart/stuffmart/shared/embedded"
)

// sqlLog records the SQL statements FerretDB runs: its SQLite layer logs
// each one at debug level (">>> SELECT ...") with its arguments.
type sqlLog struct {
	mu    sync.Mutex
	stmts []stmt
}

type stmt struct {
	query string
	args  []any
}

func (l *sqlLog) handler() slog.Handler { return &sqlLogHandler{log: l} }

func (l *sqlLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stmts = nil
}

// on returns the statements that touch table and filter rows.
func (l *sqlLog) on(table string) []stmt {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []stmt
	for _, s := range l.stmts {
		if strings.Contains(s.query, fmt.Sprintf("%q", table)) && strings.Contains(s.query, "WHERE") {
			out = append(out, s)
		}
	}
	return out
}

type sqlLogHandler struct {
	log   *sqlLog
	attrs []slog.Attr
}

func (h *sqlLogHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *sqlLogHandler) Handle(_ context.Context, r slog.Record) error {
	q, ok := strings.CutPrefix(r.Message, ">>> ")
	if !ok {
		return nil
	}
	s := stmt{query: q}
	for _, a := range h.attrs {
		if a.Key == "args" {
			s.args, _ = a.Value.Any().([]any)
		}
	}
	h.log.mu.Lock()
	h.log.stmts = append(h.log.stmts, s)
	h.log.mu.Unlock()
	return nil
}

func (h *sqlLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &sqlLogHandler{log: h.log, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h *sqlLogHandler) WithGroup(string) slog.Handler { return h }

// tableOf returns the SQLite table FerretDB keeps collection coll of
// database dbName in.
func tableOf(t *testing.T, db *sql.DB, coll string) string {
	t.Helper()
	var table string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, coll).Scan(&table); err != nil {
		t.Fatalf("table of %s: %v", coll, err)
	}
	return table
}

func openSQLite(t *testing.T, dir, dbName string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, dbName+".sqlite")+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close sqlite: %v", err)
		}
	})
	return db
}

// plan returns SQLite's query plan of s, one line per step.
func plan(t *testing.T, db *sql.DB, s stmt) []string {
	t.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+s.query, s.args...)
	if err != nil {
		t.Fatalf("explain %s: %v", s.query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func waitIndexed(t *testing.T, db *sql.DB, table string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql LIKE '%''$._id''%'`, table).Scan(&n)
		if err == nil && n == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("table %s never got the _id path index (last: %d, %v)", table, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Every lookup by _id FerretDB runs (find, update, delete; ObjectID and
// string ids) must be served by an index, for a collection created while
// FerretDB runs. The statements checked are the ones FerretDB really ran,
// read from its own debug log, so a FerretDB upgrade that changes its SQL is
// caught here.
func TestIDLookupsUseAnIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var log sqlLog
	f, err := embedded.StartFerret(dir, "127.0.0.1:0", slog.New(log.handler()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := collection(t, ctx, f.URI) // database "stuff", collection "stuff", created below

	oids := make([]any, 200)
	for i := range oids {
		oids[i] = bson.D{{Key: "_id", Value: primitive.NewObjectID()}, {Key: "n", Value: i}}
	}
	oids = append(oids, bson.D{{Key: "_id", Value: "claim-1"}, {Key: "n", Value: -1}})
	if _, err := c.InsertMany(ctx, oids); err != nil {
		t.Fatal(err)
	}
	sqlDB := openSQLite(t, dir, "stuff")
	table := tableOf(t, sqlDB, "stuff")
	waitIndexed(t, sqlDB, table)

	target := oids[100].(bson.D)[0].Value
	ops := []struct {
		name string
		run  func() error
	}{
		{"find by ObjectID", func() error { return c.FindOne(ctx, bson.D{{Key: "_id", Value: target}}).Err() }},
		{"find by string", func() error { return c.FindOne(ctx, bson.D{{Key: "_id", Value: "claim-1"}}).Err() }},
		{"update by ObjectID", func() error {
			_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: target}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: 7}}}})
			return err
		}},
		{"pullAll by ObjectID", func() error {
			_, err := c.UpdateOne(ctx, bson.D{{Key: "_id", Value: target}}, bson.D{{Key: "$pullAll", Value: bson.D{{Key: "outbox", Value: bson.A{"x"}}}}})
			return err
		}},
		{"delete by string", func() error {
			_, err := c.DeleteOne(ctx, bson.D{{Key: "_id", Value: "claim-1"}})
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			log.reset()
			if err := op.run(); err != nil {
				t.Fatal(err)
			}
			stmts := log.on(table)
			if len(stmts) == 0 {
				t.Fatalf("FerretDB ran no filtered statement on %s (is its debug log still the way to see its SQL?)", table)
			}
			for _, s := range stmts {
				steps := plan(t, sqlDB, s)
				joined := strings.Join(steps, "; ")
				if strings.Contains(joined, "SCAN "+table) || !strings.Contains(joined, "USING INDEX") {
					t.Errorf("%s\n  args %v\n  plan: %s\nwant a search using the _id path index", s.query, s.args, joined)
				}
			}
		})
	}
}

// Tables that exist when FerretDB starts are indexed before StartFerret
// returns: a restarted local stack is fast from its first request.
func TestIDIndexOnExistingTablesAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	f, err := embedded.StartFerret(dir, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collection(t, ctx, f.URI).InsertOne(ctx, bson.D{{Key: "_id", Value: "s1"}}); err != nil {
		f.Stop()
		t.Fatal(err)
	}
	f.Stop()

	// As if the data folder came from before this index existed.
	func() {
		db := openSQLite(t, dir, "stuff")
		table := tableOf(t, db, "stuff")
		if _, err := db.Exec(fmt.Sprintf(`DROP INDEX IF EXISTS %q`, table+"__id_path")); err != nil {
			t.Fatal(err)
		}
	}()

	f, err = embedded.StartFerret(dir, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	db := openSQLite(t, dir, "stuff")
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, tableOf(t, db, "stuff")+"__id_path").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("after StartFerret returned, the existing table has %d _id path indexes; want 1", n)
	}
	var doc bson.M
	if err := collection(t, ctx, f.URI).FindOne(ctx, bson.D{{Key: "_id", Value: "s1"}}).Decode(&doc); err != nil {
		t.Fatalf("the document saved before the restart: %v", err)
	}
}

// The extra index is invisible to clients: listIndexes shows FerretDB's own
// _id index only, and a duplicate _id is still refused as one.
func TestIDIndexIsInvisibleToClients(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f, err := embedded.StartFerret(dir, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := collection(t, ctx, f.URI)
	if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}}); err != nil {
		t.Fatal(err)
	}
	db := openSQLite(t, dir, "stuff")
	waitIndexed(t, db, tableOf(t, db, "stuff"))

	cur, err := c.Indexes().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var idx []bson.M
	if err := cur.All(ctx, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx) != 1 || idx[0]["name"] != "_id_" {
		t.Fatalf("listIndexes = %v; want only _id_", idx)
	}
	_, err = c.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("second insert of _id a: %v; want a duplicate key error", err)
	}
}
