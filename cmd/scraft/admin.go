package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"html"
	"net"
	"net/http"
	"strconv"
	"strings"
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
// probes, which tell nothing but up or ready, and the console's login form.
var adminOpen = map[string]bool{"/healthz": true, "/readyz": true, consoleLoginPath: true}

// consoleCookie is the cookie the console's login form sets. A browser
// cannot add the bearer header to a page load or an EventSource, so the
// console's user gives the token once to the form (POST, never in a URL
// that browsers and proxies log) and the browser then carries this
// HttpOnly, SameSite=Strict cookie. It holds a hash of the token, not the
// token, and it opens only GET and HEAD: POST /join and /drill/crash still
// need the header, so a page on another site cannot make a logged-in
// browser call them.
const (
	consoleCookie    = "scraft_admin"
	consoleLoginPath = "/console/login"
)

// consoleCookieValue is the cookie value for token.
func consoleCookieValue(token string) string {
	sum := sha256.Sum256([]byte("scraft/console-cookie/v1\x00" + token))
	return hex.EncodeToString(sum[:])
}

// adminAuthorized says whether req carries the token: the bearer header,
// or for GET and HEAD the console's cookie.
func adminAuthorized(req *http.Request, token string) bool {
	if subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), []byte("Bearer "+token)) == 1 {
		return true
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	c, err := req.Cookie(consoleCookie)
	return err == nil && subtle.ConstantTimeCompare([]byte(c.Value), []byte(consoleCookieValue(token))) == 1
}

// requireToken answers 401 to a request outside adminOpen that does not
// carry the token (adminAuthorized); a browser asking for the console's
// page is sent to the login form instead. An empty token lets everything
// through (a loopback listener without --admin-token).
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !adminOpen[req.URL.Path] && !adminAuthorized(req, token) {
			if req.URL.Path == "/" && req.Method == http.MethodGet && strings.Contains(req.Header.Get("Accept"), "text/html") {
				http.Redirect(w, req, consoleLoginPath, http.StatusSeeOther)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="scraft admin"`)
			http.Error(w, "admin token missing or wrong (Authorization: Bearer TOKEN, or log in to the console at "+consoleLoginPath+")", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// consoleLogin serves the console's login form (GET) and checks the token
// it posts (POST): right, it sets the console cookie and sends the browser
// to the console; wrong, 401 and the form again. Without a token there is
// nothing to log in to.
func consoleLogin(token string) http.HandlerFunc {
	form := func(w http.ResponseWriter, code int, msg string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>scraft console: log in</title>
<link rel="icon" href="data:,"></head><body style="font:15px system-ui;background:#12151a;color:#d8dee9;padding:3em">
<h1 style="font-size:1.2em">scraft console</h1><p>%s</p>
<form method="post" action="%s"><label>admin token <input type="password" name="token" autocomplete="current-password" autofocus></label>
<button type="submit">log in</button></form></body></html>`, html.EscapeString(msg), consoleLoginPath)
	}
	return func(w http.ResponseWriter, req *http.Request) {
		if token == "" {
			http.Redirect(w, req, "/", http.StatusSeeOther)
			return
		}
		switch req.Method {
		case http.MethodGet, http.MethodHead:
			form(w, http.StatusOK, "This admin listener needs its token (--admin-token).")
		case http.MethodPost:
			req.Body = http.MaxBytesReader(w, req.Body, 4096)
			if err := req.ParseForm(); err != nil {
				form(w, http.StatusBadRequest, "The form could not be read.")
				return
			}
			if subtle.ConstantTimeCompare([]byte(req.PostForm.Get("token")), []byte(token)) != 1 {
				form(w, http.StatusUnauthorized, "Wrong token.")
				return
			}
			http.SetCookie(w, &http.Cookie{Name: consoleCookie, Value: consoleCookieValue(token), Path: "/",
				HttpOnly: true, SameSite: http.SameSiteStrictMode})
			http.Redirect(w, req, "/", http.StatusSeeOther)
		default:
			http.Error(w, "GET or POST only", http.StatusMethodNotAllowed)
		}
	}
}

// joinOff answers POST /join on a node started without --admin-allow-join.
func joinOff(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "POST /join is off on this node: start it with --admin-allow-join", http.StatusForbidden)
}

// loopbackHost guards a loopback admin listener without a token against
// DNS rebinding: a page from another site whose name its DNS points at
// 127.0.0.1 would otherwise read the console (channel state, read as the
// node's member) from the operator's browser as its own origin. The
// console's paths are answered only to requests naming the listener by
// an IP address or localhost, as a browser does that was pointed at it.
func loopbackHost(token string, next http.Handler) http.Handler {
	if token != "" {
		return next // the token guards it; a rebound page has neither it nor the cookie
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/" || strings.HasPrefix(req.URL.Path, "/console/") {
			host := req.Host
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
			if net.ParseIP(host) == nil && !strings.EqualFold(host, "localhost") {
				http.Error(w, fmt.Sprintf("the console answers only to http://127.0.0.1:PORT or http://localhost:PORT, not to host %q", truncateHost(req.Host)), http.StatusMisdirectedRequest)
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}

func truncateHost(h string) string {
	if len(h) > 64 {
		return h[:64] + "…"
	}
	return h
}
