package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/rpcerr"
)

func TestAdminAddr(t *testing.T) {
	for _, tc := range []struct {
		in, addr string
		loopback bool
		err      bool
	}{
		{in: "7501", addr: "127.0.0.1:7501", loopback: true},
		{in: ":7501", addr: "127.0.0.1:7501", loopback: true},
		{in: "127.0.0.1:7501", addr: "127.0.0.1:7501", loopback: true},
		{in: "localhost:7501", addr: "localhost:7501", loopback: true},
		{in: "[::1]:7501", addr: "[::1]:7501", loopback: true},
		{in: "0.0.0.0:7501", addr: "0.0.0.0:7501"},
		{in: "[::]:7501", addr: "[::]:7501"},
		{in: "10.1.2.3:7501", addr: "10.1.2.3:7501"},
		{in: "admin.example:7501", addr: "admin.example:7501"},
		{in: "127.0.0.1", err: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			addr, loopback, err := adminAddr(tc.in)
			if (err != nil) != tc.err || addr != tc.addr || loopback != tc.loopback {
				t.Fatalf("adminAddr(%q) = %q, %v, %v; want %q, %v, error %v", tc.in, addr, loopback, err, tc.addr, tc.loopback, tc.err)
			}
		})
	}
}

// TestNodeAdminOffLoopbackNeedsToken: `scraft node --admin 0.0.0.0:PORT`
// without a token does not start, and says what to do; nor does one with a
// token too short to guard anything.
func TestNodeAdminOffLoopbackNeedsToken(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "node.key")
	k, _ := protocol.GenerateKey(nil)
	if err := protocol.SaveKey(keyFile, k); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, want string
	}{
		{"no token", "", "--admin-token"},
		{"short token", "hunter2", "at least 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run(t, "node", "--data", filepath.Join(dir, "data"), "--key", keyFile, "--chain", "127.0.0.1:1",
				"--listen", "127.0.0.1:0", "--admin", "0.0.0.0:0", "--admin-token", tc.token)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("node with --admin 0.0.0.0:0 --admin-token %q: %v, want an error naming %q", tc.token, err, tc.want)
			}
		})
	}
}

// adminDo makes a request to a node's admin listener and returns the
// status code.
func adminDo(t *testing.T, method, url, token string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminLoopbackDefaults: on loopback without a token /metrics and the
// probes answer anyone on the host, and POST /join is off.
func TestAdminLoopbackDefaults(t *testing.T) {
	r, _, id := startAPINodeWith(t, 16, func(o *nodeOptions) { o.Admin = "127.0.0.1:0" })
	base := "http://" + r.adminAddr()
	for _, path := range []string{"/metrics", "/healthz", "/readyz", "/status"} {
		if got := adminDo(t, http.MethodGet, base+path, ""); got != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, got)
		}
	}
	if got := adminDo(t, http.MethodPost, base+"/join?channel="+id.String(), ""); got != http.StatusForbidden {
		t.Errorf("POST /join without --admin-allow-join: %d, want 403", got)
	}

	// /status speaks the names of scraft status --json and the console.
	resp, err := http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sts []map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&sts); err != nil || len(sts) != 1 {
		t.Fatalf("/status: %v, %d channels", err, len(sts))
	}
	for _, name := range []string{"channel", "height", "digest", "leader", "epoch", "settled_height", "leading", "raft_state", "ready"} {
		if _, ok := sts[0][name]; !ok {
			t.Errorf("/status has no %q: %v", name, sts[0])
		}
	}
	var ch protocol.ChannelID
	if err := json.Unmarshal(sts[0]["channel"], &ch); err != nil || ch != id {
		t.Errorf("/status names channel %s (%v), want %s", sts[0]["channel"], err, id)
	}
}

// TestAdminToken: an admin listener on every interface with a token
// answers the probes to anyone and everything else only with the token;
// POST /join, allowed, needs it too.
func TestAdminToken(t *testing.T) {
	const token = "0123456789abcdef-admin"
	r, _, id := startAPINodeWith(t, 16, func(o *nodeOptions) {
		o.Admin, o.AdminToken, o.AdminAllowJoin = "0.0.0.0:0", token, true
	})
	_, port, err := net.SplitHostPort(r.adminAddr())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + port
	for _, path := range []string{"/healthz", "/readyz"} {
		if got := adminDo(t, http.MethodGet, base+path, ""); got != http.StatusOK {
			t.Errorf("GET %s without token: %d, want 200", path, got)
		}
	}
	for _, path := range []string{"/metrics", "/status", "/debug/pprof/", "/digest?channel=" + id.String() + "&height=1", "/nothing"} {
		for _, bad := range []string{"", "wrong-token-of-enough-length"} {
			if got := adminDo(t, http.MethodGet, base+path, bad); got != http.StatusUnauthorized {
				t.Errorf("GET %s with token %q: %d, want 401", path, bad, got)
			}
		}
	}
	if got := adminDo(t, http.MethodGet, base+"/metrics", token); got != http.StatusOK {
		t.Errorf("GET /metrics with the token: %d, want 200", got)
	}
	join := base + "/join?channel=" + id.String()
	if got := adminDo(t, http.MethodPost, join, ""); got != http.StatusUnauthorized {
		t.Errorf("POST /join without token: %d, want 401", got)
	}
	if got := adminDo(t, http.MethodPost, join, token); got != http.StatusOK {
		t.Errorf("POST /join with the token, channel hosted already: %d, want 200", got)
	}
}

// TestNodeClientStreamsCapped: with room for one client stream, a second
// client is refused busy and counted, and the first keeps being served.
func TestNodeClientStreamsCapped(t *testing.T) {
	r, key, id := startAPINodeWith(t, 16, func(o *nodeOptions) {
		o.TuneClient = func(c *clientapi.Config) { c.MaxStreams = 1 }
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := client.Dial(ctx, key, []protocol.Address{key.Address()}, r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Call(ctx, id, "chat::send", []byte("a;")); err != nil {
		t.Fatal(err)
	}
	other, _ := protocol.GenerateKey(nil)
	if b, err := client.Dial(ctx, other, []protocol.Address{key.Address()}, r.srv.Addr()); !errors.Is(err, protocol.ErrBusy) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("second client: %v, want busy", err)
	}
	if got := r.client.Stats().StreamsRefused; got != 1 {
		t.Fatalf("StreamsRefused %d, want 1", got)
	}
	if _, err := a.Call(ctx, id, "chat::send", []byte("b;")); err != nil {
		t.Fatalf("first client after the refusal: %v", err)
	}
}

// TestNodeUnboundTooLarge: a stream that sends 1 MiB before binding is cut
// off with too_large; the node keeps serving clients.
func TestNodeUnboundTooLarge(t *testing.T) {
	r, key, id := startAPINode(t, 16)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := dialNodeTLS(t, r.srv.Addr(), key.Address())
	st, err := clientpb.NewClientClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.GetChallenge() == nil {
		t.Fatalf("challenge: %v %v", m, err)
	}
	big := &clientpb.ClientMessage{Id: 1, Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: make([]byte, 1<<20)}}}
	if err := st.Send(big); err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = st.Recv()
	}
	if pe, ok := rpcerr.Coded(err); !ok || pe.Code != protocol.CodeTooLarge {
		t.Fatalf("unbound 1 MiB message: %v, want too_large", err)
	}

	cl, err := client.Dial(ctx, key, []protocol.Address{key.Address()}, r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Call(ctx, id, "chat::send", []byte("still here;")); err != nil {
		t.Fatal(err)
	}
}
