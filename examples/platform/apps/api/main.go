// Command api is the Alpenrose booking API of socle's demo platform: a
// small HTTP service that keeps its bookings in the PostgreSQL database
// socle provisions for the db resource of its score.yaml, and finds it
// through DATABASE_URL.
//
// It starts serving at once and creates its table when the database
// answers, retrying with backoff: the database may come up after the app.
// Until then, and whenever the database is unreachable, GET /readyz
// answers 503 with the reason, so that socle keeps traffic away.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

var version = "dev"

const schema = `CREATE TABLE IF NOT EXISTS bookings (
	id bigserial PRIMARY KEY,
	guest text NOT NULL,
	room text NOT NULL,
	nights int NOT NULL,
	created_at timestamptz DEFAULT now()
)`

// Budgets of a request: how long a query may take, how large a body may
// be, how many bookings a list shows.
const (
	readyTimeout = time.Second
	queryTimeout = 5 * time.Second
	maxBody      = 4 << 10
	listLimit    = 100
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("api stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	cfg, err := pgx.ParseConfig(os.Getenv("DATABASE_URL"))
	if err != nil {
		// pgx's error quotes the connection string, password and all
		// when it cannot tell where the password is: say only what is wrong.
		return errors.New("DATABASE_URL is not a PostgreSQL connection string (postgres://user:password@host:port/database)")
	}
	a := &api{db: newDB(cfg, 4), host: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), log: log}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { a.prepare(ctx) })
	err = serve(ctx, &http.Server{Addr: ":" + port, Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}, log)
	stop()
	wg.Wait()
	a.db.close()
	return err
}

// serve serves until ctx ends, then lets the requests in flight finish.
func serve(ctx context.Context, srv *http.Server, log *slog.Logger) error {
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	log.Info("api listening on "+srv.Addr, "version", version)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	// socle stops a replica after it took it out of its routes: what is
	// still in flight is brief.
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// api serves the bookings.
type api struct {
	db *db
	// host is the database's host:port, what the API says about where its
	// data is: never the user nor the password.
	host string
	log  *slog.Logger

	mu sync.Mutex
	// waiting is why the table is not there yet; empty once it is.
	waiting string
}

func (a *api) routes() http.Handler {
	mux := http.NewServeMux()
	// The root says where the API is, so that the address socle up prints
	// for this app answers something other than 404.
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Alpenrose bookings API (version %s): GET /bookings lists the latest %d bookings, POST /bookings {\"guest\", \"room\", \"nights\"} adds one\n", version, listLimit)
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("GET /bookings", a.list)
	mux.HandleFunc("POST /bookings", a.create)
	return mux
}

// prepare creates the table, retrying until the database answers or ctx
// ends. The delay doubles up to 30 s, so that an app whose database never
// comes cannot hammer it nor fill its log.
func (a *api) prepare(ctx context.Context) {
	a.setWaiting("connecting")
	delay := 500 * time.Millisecond
	for {
		attempt, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := a.db.with(attempt, func(c *pgx.Conn) error {
			_, err := c.Exec(attempt, schema)
			return err
		})
		cancel()
		if err == nil {
			a.setWaiting("")
			a.log.Info("database ready", "database", a.host)
			return
		}
		if ctx.Err() != nil {
			return
		}
		a.setWaiting(reason(err))
		a.log.Warn("database not ready, retrying", "database", a.host, "in", delay, "err", reason(err))
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return
		}
		delay = min(2*delay, 30*time.Second)
	}
}

func (a *api) setWaiting(why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.waiting = why
}

// unready says why the API cannot serve bookings now, or "" when it can.
func (a *api) unready(ctx context.Context) string {
	if why := a.notPrepared(); why != "" {
		return why
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	err := a.db.with(ctx, func(c *pgx.Conn) error {
		var one int
		return c.QueryRow(ctx, "SELECT 1").Scan(&one)
	})
	if err != nil {
		return "database at " + a.host + ": " + reason(err)
	}
	return ""
}

func (a *api) readyz(w http.ResponseWriter, r *http.Request) {
	if why := a.unready(r.Context()); why != "" {
		http.Error(w, why, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Booking is a row of the bookings table.
type Booking struct {
	ID        int64     `json:"id"`
	Guest     string    `json:"guest"`
	Room      string    `json:"room"`
	Nights    int       `json:"nights"`
	CreatedAt time.Time `json:"createdAt"`
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	if why := a.notPrepared(); why != "" {
		a.fail(w, http.StatusServiceUnavailable, why)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	var bookings []Booking
	err := a.db.with(ctx, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT id, guest, room, nights, created_at FROM bookings ORDER BY id DESC LIMIT $1`, listLimit)
		if err != nil {
			return err
		}
		bookings, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Booking])
		return err
	})
	if err != nil {
		a.dbFailed(w, "listing bookings", err)
		return
	}
	if bookings == nil {
		bookings = []Booking{}
	}
	a.reply(w, http.StatusOK, map[string]any{"version": version, "database": a.host, "bookings": bookings})
}

func (a *api) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Guest  string `json:"guest"`
		Room   string `json:"room"`
		Nights int    `json:"nights"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			a.fail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("a booking is at most %d bytes of JSON", maxBody))
			return
		}
		a.fail(w, http.StatusBadRequest, "a booking is JSON {\"guest\": string, \"room\": string, \"nights\": number}: "+err.Error())
		return
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		a.fail(w, http.StatusBadRequest, "a booking is one JSON object, with nothing after it")
		return
	}
	if why := validate(in.Guest, in.Room, in.Nights); why != "" {
		a.fail(w, http.StatusBadRequest, why)
		return
	}
	if why := a.notPrepared(); why != "" {
		a.fail(w, http.StatusServiceUnavailable, why)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), queryTimeout)
	defer cancel()
	var b Booking
	err := a.db.with(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `INSERT INTO bookings (guest, room, nights) VALUES ($1, $2, $3)
			RETURNING id, guest, room, nights, created_at`, in.Guest, in.Room, in.Nights).
			Scan(&b.ID, &b.Guest, &b.Room, &b.Nights, &b.CreatedAt)
	})
	if err != nil {
		a.dbFailed(w, "adding a booking", err)
		return
	}
	a.log.Info("booking added", "id", b.ID)
	a.reply(w, http.StatusCreated, b)
}

// validate says what is wrong with a booking, or "".
func validate(guest, room string, nights int) string {
	switch {
	case guest == "" || utf8.RuneCountInString(guest) > 100:
		return "guest: a name of 1 to 100 characters"
	case room == "" || utf8.RuneCountInString(room) > 20:
		return "room: a room of 1 to 20 characters, such as \"204\""
	case nights < 1 || nights > 365:
		return "nights: from 1 to 365"
	}
	return ""
}

// notPrepared says why nothing can be served before the table exists,
// or "".
func (a *api) notPrepared() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.waiting != "" {
		return "waiting for the database at " + a.host + ": " + a.waiting
	}
	return ""
}

func (a *api) dbFailed(w http.ResponseWriter, doing string, err error) {
	a.log.Warn(doing+" failed", "database", a.host, "err", reason(err))
	a.fail(w, http.StatusServiceUnavailable, doing+": database at "+a.host+": "+reason(err))
}

func (a *api) fail(w http.ResponseWriter, code int, msg string) {
	a.reply(w, code, map[string]string{"error": msg})
}

func (a *api) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// reason is err as told in a response or the log: pgx names the user and
// the database of a connection that failed, which is more than a client
// needs to know; the cause below that is what matters.
func reason(err error) string {
	var connect *pgconn.ConnectError
	if errors.As(err, &connect) {
		if cause := connect.Unwrap(); cause != nil {
			err = cause
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "no answer in time"
	}
	return err.Error()
}

// db is a few connections to the database, each opened when first needed
// and opened again after the server closed it, so that the API recovers
// by itself when PostgreSQL restarts. pgxpool would do the same, but it
// needs a module socle itself does not build with, and the demo builds
// offline from the modules that building socle fetched.
type db struct {
	cfg *pgx.ConnConfig
	// conns holds a slot per connection, nil until it is opened: taking
	// one from the channel is holding it.
	conns chan *pgx.Conn
}

func newDB(cfg *pgx.ConnConfig, size int) *db {
	d := &db{cfg: cfg, conns: make(chan *pgx.Conn, size)}
	for range size {
		d.conns <- nil
	}
	return d
}

// with runs f on a connection, waiting for a free one until ctx ends.
func (d *db) with(ctx context.Context, f func(*pgx.Conn) error) error {
	var c *pgx.Conn
	select {
	case c = <-d.conns:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { d.conns <- c }()
	if c == nil || c.IsClosed() {
		conn, err := pgx.ConnectConfig(ctx, d.cfg)
		if err != nil {
			c = nil
			return err
		}
		c = conn
	}
	// A query that failed for the connection's sake (the server went
	// away, a timeout) leaves it closed, and the next caller opens a new one.
	return f(c)
}

// close closes the open connections, waiting for those in use.
func (d *db) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range cap(d.conns) {
		select {
		case c := <-d.conns:
			if c != nil {
				c.Close(ctx)
			}
		case <-ctx.Done():
			return
		}
	}
}
