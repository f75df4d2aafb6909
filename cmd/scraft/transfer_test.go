package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

// TestAdminTransferRefusals: POST /transfer needs the token, is POST
// only, refuses malformed and unknown channels and successors with what
// is wrong, and the node keeps leading and answering.
func TestAdminTransferRefusals(t *testing.T) {
	const token = "0123456789abcdef-admin"
	r, _, id := startAPINodeWith(t, 16, func(o *nodeOptions) { o.Admin, o.AdminToken = "127.0.0.1:0", token })
	base := "http://" + r.adminAddr() + "/transfer"
	stranger, _ := protocol.GenerateKey(nil)
	do := func(method, url, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		name, method, query, token string
		code                       int
		says                       string
	}{
		{"no token", http.MethodPost, "?to=" + stranger.Address().String(), "", http.StatusUnauthorized, "token"},
		{"wrong token", http.MethodPost, "", "wrong-token-of-enough-length", http.StatusUnauthorized, "token"},
		{"GET", http.MethodGet, "", token, http.StatusMethodNotAllowed, "POST only"},
		{"malformed successor", http.MethodPost, "?to=0xzz", token, http.StatusBadRequest, "to="},
		{"long successor", http.MethodPost, "?to=" + strings.Repeat("a", 5000), token, http.StatusBadRequest, "to="},
		{"malformed channel", http.MethodPost, "?channel=nope", token, http.StatusBadRequest, ""},
		{"long channel", http.MethodPost, "?channel=" + strings.Repeat("b", 5000), token, http.StatusBadRequest, ""},
		{"channel not hosted", http.MethodPost, "?channel=" + protocol.ChannelID{9}.String(), token, http.StatusNotFound, "not hosted"},
		{"successor no member", http.MethodPost, "?to=" + stranger.Address().String(), token, http.StatusNotFound, "not a server of the channel"},
		{"no successor to pick", http.MethodPost, "?channel=" + id.String(), token, http.StatusNotFound, "no other member may lead"},
	} {
		code, body := do(tc.method, base+tc.query, tc.token)
		if code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%s: %d %q, want %d saying %q", tc.name, code, body, tc.code, tc.says)
		}
		if len(body) > 600 {
			t.Errorf("%s: %d bytes of answer echo the request", tc.name, len(body))
		}
	}
	c, _ := r.node.Channel(id)
	if st := c.Status(); !st.Leading || st.Epoch != 1 {
		t.Fatalf("after the refusals: %+v", st)
	}
}

// TestTransferCommandArgs: scraft transfer says what is missing or wrong
// before it dials anything.
func TestTransferCommandArgs(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"transfer"}, "--node"},
		{[]string{"transfer", "--node", "localhost"}, "--node"},
		{[]string{"transfer", "--node", "127.0.0.1:1", "--to", "0x12"}, "--to"},
		{[]string{"transfer", "--node", "127.0.0.1:1", "--channel", "x"}, "--channel"},
	} {
		resetTransferFlags()
		_, err := run(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.says)
		}
	}
	resetTransferFlags()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rootCmd.SetContext(ctx)
	if _, err := run(t, "transfer", "--node", "127.0.0.1:1", "--timeout", "2s"); err == nil || !strings.Contains(err.Error(), "transfer") {
		t.Errorf("nobody at the admin address: %v", err)
	}
	resetTransferFlags()
}

func resetTransferFlags() {
	for _, c := range rootCmd.Commands() {
		if c.Name() == "transfer" {
			for _, n := range []string{"node", "to", "channel", "admin-token", "timeout", "json"} {
				f := c.Flags().Lookup(n)
				f.Value.Set(f.DefValue)
				f.Changed = false
			}
		}
	}
}
