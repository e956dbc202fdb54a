// Command testserver is the workload of the runtime conformance suite: an
// HTTP server on $PORT whose readiness, health, exit and output the suite
// controls, through flags and through requests.
//
//	GET  /readyz /healthz     200, or 503 when made unready or sick
//	GET  /id                  an identifier of this process, new at each start
//	GET  /env?name=N          the value of variable N
//	POST /ready?v=true|false  readiness from now on
//	POST /sick                /healthz fails from now on
//	POST /exit?code=N         exit with status N
//	POST /log?line=L&stream=stdout|stderr   print L
//
// With -check PATH it is instead a probe: it exits 0 if GET PATH on
// 127.0.0.1:$PORT answers 2xx.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	var (
		ready      = flag.Bool("ready", true, "ready at start")
		exitCode   = flag.Int("exit", -1, "exit at once with this status (with a message on stderr)")
		ignoreTerm = flag.Bool("ignore-term", false, "ignore SIGTERM (and so does the -child)")
		termDelay  = flag.Duration("term-delay", 0, "on SIGTERM, wait this long, then shut down cleanly")
		child      = flag.Bool("child", false, "start a child process in the same process group")
		spam       = flag.Int("spam", 0, "print numbered lines of this many bytes, one per millisecond")
		check      = flag.String("check", "", "probe mode: GET this path of 127.0.0.1:$PORT")
		sleeper    = flag.Bool("sleeper", false, "child mode: sleep until killed")
	)
	flag.Parse()
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	switch {
	case *check != "":
		os.Exit(probe(*check))
	case *sleeper:
		time.Sleep(time.Hour)
		os.Exit(0)
	case *exitCode >= 0:
		fmt.Fprintf(os.Stderr, "testserver: exiting with code %d as asked\n", *exitCode)
		os.Exit(*exitCode)
	}

	id := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	var isReady, sick atomic.Bool
	isReady.Store(*ready)
	mux := http.NewServeMux()
	status := func(ok bool) int {
		if ok {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status(isReady.Load())) })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status(!sick.Load())) })
	mux.HandleFunc("GET /id", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, id) })
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getenv(r.FormValue("name"))) })
	mux.HandleFunc("POST /ready", func(w http.ResponseWriter, r *http.Request) { isReady.Store(r.FormValue("v") == "true") })
	mux.HandleFunc("POST /sick", func(w http.ResponseWriter, r *http.Request) { sick.Store(true) })
	mux.HandleFunc("POST /exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.FormValue("code"))
		fmt.Fprintf(os.Stderr, "testserver: exiting with code %d as asked\n", code)
		os.Exit(code)
	})
	mux.HandleFunc("POST /log", func(w http.ResponseWriter, r *http.Request) {
		out := os.Stdout
		if r.FormValue("stream") == "stderr" {
			out = os.Stderr
		}
		fmt.Fprintln(out, r.FormValue("line"))
	})
	srv := &http.Server{Addr: ":" + os.Getenv("PORT"), Handler: mux}

	if *child {
		args := []string{"-sleeper"}
		if *ignoreTerm {
			args = append(args, "-ignore-term")
		}
		self, err := os.Executable() // os.Args[0] is the name in the image
		if err != nil {
			fmt.Fprintln(os.Stderr, "testserver:", err)
			os.Exit(1)
		}
		cmd := exec.Command(self, args...)
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "testserver:", err)
			os.Exit(1)
		}
		fmt.Printf("testserver: child pid=%d\n", cmd.Process.Pid)
	}
	if *spam > 0 {
		go func() {
			pad := strings.Repeat("x", max(0, *spam-13))
			for i := 0; ; i++ {
				fmt.Printf("line %06d %s\n", i, pad)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	if !*ignoreTerm {
		terms := make(chan os.Signal, 1)
		signal.Notify(terms, syscall.SIGTERM)
		go func() {
			<-terms
			fmt.Println("testserver: SIGTERM, shutting down")
			time.Sleep(*termDelay)
			_ = srv.Shutdown(context.Background())
		}()
	}

	fmt.Printf("testserver: pid=%d listening on %s\n", os.Getpid(), srv.Addr)
	fmt.Fprintln(os.Stderr, "testserver: this line is on stderr")
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
	fmt.Println("testserver: clean shutdown")
}

// probe is the -check mode.
func probe(path string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://127.0.0.1:" + os.Getenv("PORT") + path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}
