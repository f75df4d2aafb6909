package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scraft/scraft/settlement"
)

// chainStall is how long a chain may go without a new block before
// /readyz says it is not ready: a devchain makes one every block interval
// even when idle, a comet chain one every round.
const chainStall = 10 * time.Second

// serveChainAdmin serves a chain's admin HTTP listener on admin (loopback
// only: it has no token): /metrics (Go and process collectors, the
// build, the committed height and the time since it last grew), /healthz,
// and /readyz, which answers 503 while the chain has made no block for
// chainStall. It returns the listener's address and a stop function.
func serveChainAdmin(admin string, head func() settlement.Head, log hclog.Logger) (string, func(), error) {
	addr, err := checkAdmin(admin, "")
	if err != nil {
		return "", nil, fmt.Errorf("chain: --admin: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("chain: --admin: %w", err)
	}
	var mu sync.Mutex
	var last settlement.Head
	grew := time.Now()
	// sample reads the head and notes when it last grew.
	sample := func() (settlement.Head, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		h := head()
		if h.Height != last.Height {
			last, grew = h, time.Now()
		}
		return h, time.Since(grew)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo(),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "scraft", Name: "chain_height", Help: "The chain's committed block height."},
			func() float64 { h, _ := sample(); return float64(h.Height) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "scraft", Name: "chain_block_age_seconds", Help: "Time since the committed height last grew, as this process saw it."},
			func() float64 { _, age := sample(); return age.Seconds() }))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		h, age := sample()
		if h.Height == 0 || age > chainStall {
			http.Error(w, fmt.Sprintf("no new block for %s (height %d)", age.Round(time.Second), h.Height), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ready: height %d\n", h.Height)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "error", err)
		}
	}()
	log.Info("admin listener", "addr", ln.Addr().String())
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
