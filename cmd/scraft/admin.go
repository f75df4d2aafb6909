package main

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// minAdminToken is the shortest --admin-token accepted: the token is all
// that guards an admin listener reachable from other hosts.
const minAdminToken = 16

// adminAddr resolves --admin: a port alone or ":port" means 127.0.0.1:port.
// It reports whether the address is on loopback.
func adminAddr(s string) (addr string, loopback bool, err error) {
	if _, err := strconv.ParseUint(s, 10, 16); err == nil {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", false, fmt.Errorf("--admin %q: want PORT, :PORT or HOST:PORT: %w", s, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	loopback = host == "localhost" || (ip != nil && ip.IsLoopback())
	return net.JoinHostPort(host, port), loopback, nil
}

// checkAdmin resolves the admin address and refuses one reachable from
// other hosts without a token: /status, /debug/pprof and the rest would be
// open to anyone who reaches it.
func checkAdmin(admin, token string) (string, error) {
	addr, loopback, err := adminAddr(admin)
	if err != nil {
		return "", err
	}
	if token != "" && len(token) < minAdminToken {
		return "", fmt.Errorf("--admin-token has %d characters, at least %d needed", len(token), minAdminToken)
	}
	if !loopback && token == "" {
		return "", fmt.Errorf("admin listener %s is not on loopback: set --admin-token (or SCRAFT_ADMIN_TOKEN), or bind it to 127.0.0.1", addr)
	}
	return addr, nil
}

// adminOpen are the admin paths served without the token: orchestrators'
// probes, which tell nothing but up or ready.
var adminOpen = map[string]bool{"/healthz": true, "/readyz": true}

// requireToken answers 401 to a request outside adminOpen that does not
// carry "Authorization: Bearer <token>". An empty token lets everything
// through (a loopback listener without --admin-token).
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !adminOpen[req.URL.Path] && subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="scraft admin"`)
			http.Error(w, "admin token missing or wrong (Authorization: Bearer TOKEN)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// joinOff answers POST /join on a node started without --admin-allow-join.
func joinOff(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "POST /join is off on this node: start it with --admin-allow-join", http.StatusForbidden)
}
