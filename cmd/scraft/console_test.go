package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/console"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// sseMsg is one Server-Sent Event.
type sseMsg struct {
	id    uint64
	hasID bool
	event string
	data  string
}

// sseStream reads an event stream in the background.
type sseStream struct {
	msgs   chan sseMsg
	cancel context.CancelFunc
}

// openSSE opens an event stream with the headers given (Last-Event-ID,
// Cookie) and fails the test unless it answers 200.
func openSSE(t *testing.T, u string, header map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("GET %s: Content-Type %q", u, ct)
	}
	s := &sseStream{msgs: make(chan sseMsg, 1024), cancel: cancel}
	t.Cleanup(s.close)
	go func() {
		defer resp.Body.Close()
		defer close(s.msgs)
		r := bufio.NewReader(resp.Body)
		var m sseMsg
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if m.event != "" {
					s.msgs <- m
				}
				m = sseMsg{}
			case strings.HasPrefix(line, "id: "):
				m.id, _ = strconv.ParseUint(line[4:], 10, 64)
				m.hasID = true
			case strings.HasPrefix(line, "event: "):
				m.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				m.data = line[6:]
			}
		}
	}()
	return s
}

func (s *sseStream) close() { s.cancel() }

// next returns the next message, failing the test after timeout.
func (s *sseStream) next(t *testing.T, timeout time.Duration) sseMsg {
	t.Helper()
	select {
	case m, ok := <-s.msgs:
		if !ok {
			t.Fatal("event stream ended")
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no event within %s", timeout)
	}
	return sseMsg{}
}

// until reads messages until cond holds for one, returning it.
func (s *sseStream) until(t *testing.T, timeout time.Duration, what string, cond func(sseMsg) bool) sseMsg {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %s within %s", what, timeout)
		}
		if m := s.next(t, left); cond(m) {
			return m
		}
	}
}

func httpGet(t *testing.T, u string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startWorldNode starts one node on an in-process chain hosting a new
// MoveCraft channel (the real contract, ticking every 100 ms) whose only
// member is the node, with its admin listener on loopback.
func startWorldNode(t *testing.T, tune func(*nodeOptions)) (*runningNode, *protocol.Key, protocol.ChannelID) {
	t.Helper()
	r, key, id, _ := startWorldNodeChain(t, tune)
	return r, key, id
}

// startWorldNodeChain is startWorldNode that also returns the chain.
func startWorldNodeChain(t *testing.T, tune func(*nodeOptions)) (*runningNode, *protocol.Key, protocol.ChannelID, *devchain.Chain) {
	t.Helper()
	ctx := context.Background()
	cfg := devchain.DefaultConfig(t.TempDir())
	cfg.BlockInterval = 5 * time.Millisecond
	cfg.NoSync = true
	cfg.Logger = testutil.Logger(t, "devchain")
	chain, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	mc, err := contracts.Get("movecraft")
	if err != nil {
		t.Fatal(err)
	}
	initial, err := initialState(ctx, mc.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	creator, _ := protocol.GenerateKey(nil)
	id, err := devchain.NewLocal(chain, creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "movecraft", Code: mc.Wasm,
		InitialState: initial, Config: contract.ChannelConfig{TickInterval: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := protocol.GenerateKey(nil)
	if _, err := devchain.NewLocal(chain, key).Join(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	o := nodeOptions{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Key: key, Chain: devchain.NewLocal(chain, key),
		Logger: testutil.Logger(t, "node"), Channels: []protocol.ChannelID{id},
	}
	if tune != nil {
		tune(&o)
	}
	r, err := startNode(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	testutil.WaitFor(t, 30*time.Second, func() error {
		c, ok := r.node.Channel(id)
		if !ok {
			return fmt.Errorf("channel not open")
		}
		if st := c.Status(); !st.Ready || !st.Leading {
			return fmt.Errorf("not ready or not leading: %+v", st)
		}
		return nil
	})
	return r, key, id, chain
}

// TestConsoleClusterEvents: the cluster stream starts with reset, numbers
// its messages one by one, tells of the channel and its leader before the
// first state that lists it, names the node's member the leader with its
// role, and a client that reconnects with an id still kept resumes right
// after it; one with an id it cannot have had starts over; a malformed
// id is refused.
func TestConsoleClusterEvents(t *testing.T) {
	r, key, id := startWorldNode(t, nil)
	base := "http://" + r.adminAddr()

	s := openSSE(t, base+"/console/events", nil)
	if m := s.next(t, 10*time.Second); m.event != "reset" || m.hasID {
		t.Fatalf("first message %+v, want reset without id", m)
	}
	var last uint64
	kinds := map[string]bool{}
	var state console.ClusterView
	s.until(t, 30*time.Second, "cluster state naming the leader with its role", func(m sseMsg) bool {
		if !m.hasID || (last > 0 && m.id != last+1) {
			t.Fatalf("message %+v after id %d: ids must follow one by one", m, last)
		}
		last = m.id
		switch m.event {
		case "event":
			var e console.Event
			if err := json.Unmarshal([]byte(m.data), &e); err != nil {
				t.Fatal(err)
			}
			kinds[e.Kind] = true
		case "cluster":
			state = console.ClusterView{}
			if err := json.Unmarshal([]byte(m.data), &state); err != nil {
				t.Fatal(err)
			}
			if len(state.Channels) == 1 && !kinds[console.EventChannel] {
				t.Fatalf("state lists channel %s before the event that it is hosted", id)
			}
			return len(state.Channels) == 1 && len(state.Channels[0].Members) == 1 &&
				state.Channels[0].Members[0].Role == console.RoleLeader
		default:
			t.Fatalf("unknown event %q", m.event)
		}
		return false
	})
	c := state.Channels[0]
	if state.Node != key.Address() || c.Channel != id || c.Leader != key.Address() || !c.Leading || c.Epoch == 0 ||
		!c.Members[0].Self || c.Members[0].Address != key.Address() || !kinds[console.EventLeader] {
		t.Fatalf("cluster view %+v (events %v)", state, kinds)
	}
	// The raw JSON uses the snake_case names of scraft status --json.
	code, body := httpGet(t, base+"/console/api/cluster", nil)
	for _, name := range []string{`"settled_height"`, `"heartbeat_age_ms"`, `"raft_state"`, `"commit_rate"`} {
		if code != http.StatusOK || !strings.Contains(body, name) {
			t.Fatalf("GET /console/api/cluster: %d, no %s in %s", code, name, body)
		}
	}
	s.close()

	// Resume from an id still kept: the next message is the one after it.
	from := last - 2
	s2 := openSSE(t, base+"/console/events", map[string]string{"Last-Event-ID": strconv.FormatUint(from, 10)})
	if m := s2.next(t, 10*time.Second); m.event == "reset" || m.id != from+1 {
		t.Fatalf("resumed after %d: first message %+v", from, m)
	}
	s2.close()
	// The same with the query parameter a first connection can carry.
	s3 := openSSE(t, base+"/console/events?last_event_id="+strconv.FormatUint(from, 10), nil)
	if m := s3.next(t, 10*time.Second); m.id != from+1 {
		t.Fatalf("resumed after %d by query: first message %+v", from, m)
	}
	s3.close()
	// An id from the future (an earlier run of the node): start over.
	s4 := openSSE(t, base+"/console/events", map[string]string{"Last-Event-ID": "999999999"})
	if m := s4.next(t, 10*time.Second); m.event != "reset" {
		t.Fatalf("resumed after an unknown id: first message %+v, want reset", m)
	}
	s4.close()
	for _, bad := range []string{"abc", "-1", "1e3", strings.Repeat("9", 30)} {
		req, _ := http.NewRequest(http.MethodGet, base+"/console/events", nil)
		req.Header.Set("Last-Event-ID", bad)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("Last-Event-ID %q: %d, want 400", bad, resp.StatusCode)
		}
	}
}

// TestConsoleWorldView: the channel view of a MoveCraft channel, read
// through the node's client API, shows a player who joins, follows it
// tick by tick as it walks (updates numbered by height, in order), shows
// a placed block in its cell and column, and resumes from a height.
func TestConsoleWorldView(t *testing.T) {
	r, key, id := startWorldNode(t, nil)
	base := "http://" + r.adminAddr()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := client.Dial(ctx, key, []protocol.Address{key.Address()}, r.srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	mc, _ := contracts.Get("movecraft")
	call := func(fn, args string) {
		t.Helper()
		in, err := mc.EncodeArgs(fn, []byte(args))
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Call(ctx, id, "movecraft::"+fn, in)
		if err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		if res.Status != protocol.StatusOK {
			t.Fatalf("%s(%s): %s %s", fn, args, res.Status, res.Message)
		}
	}
	call("join", `{"name":"alice"}`)

	// The cluster view must have read the channel before its view opens.
	testutil.WaitFor(t, 20*time.Second, func() error {
		if code, body := httpGet(t, base+"/console/api/channels/"+id.String(), nil); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	s := openSSE(t, base+"/console/channels/"+id.String()+"/events", nil)
	m := s.next(t, 20*time.Second)
	var snap struct {
		Channel  protocol.ChannelID
		Contract string
		Height   uint64
		View     console.WorldView
	}
	if err := json.Unmarshal([]byte(m.data), &snap); err != nil {
		t.Fatal(err)
	}
	if m.event != "snapshot" || m.id != snap.Height || snap.Contract != "movecraft" || snap.Channel != id ||
		len(snap.View.Top) != 128*128 || len(snap.View.Players) != 1 || snap.View.Players[0].Name != "alice" {
		t.Fatalf("first message %s id %d: contract %q, %d cells, players %+v", m.event, m.id, snap.Contract, len(snap.View.Top), snap.View.Players)
	}
	alice := snap.View.Players[0]
	tx, ty := alice.X+8, alice.Y-3
	call("move", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, tx, ty, alice.Z))
	last := m.id
	var steps []console.Player
	var u struct {
		Height uint64
		View   console.WorldUpdate
	}
	s.until(t, 30*time.Second, "alice at her target", func(m sseMsg) bool {
		if m.event != "update" || m.id <= last {
			t.Fatalf("message %s id %d after id %d: want updates in height order", m.event, m.id, last)
		}
		last = m.id
		u.View = console.WorldUpdate{}
		if err := json.Unmarshal([]byte(m.data), &u); err != nil {
			t.Fatal(err)
		}
		if u.Height != m.id {
			t.Fatalf("update id %d carries height %d", m.id, u.Height)
		}
		p := u.View.Players[0]
		if len(steps) == 0 || steps[len(steps)-1] != p {
			steps = append(steps, p)
		}
		return p.X == tx && p.Y == ty
	})
	// She walks a voxel per axis per tick: the page sees her on the way,
	// never off her path.
	if len(steps) < 3 {
		t.Fatalf("alice jumped to her target: positions seen %+v", steps)
	}
	for _, p := range steps {
		if p.X < alice.X || p.X > tx || p.Y < ty || p.Y > alice.Y {
			t.Fatalf("alice left her path from %d,%d to %d,%d: %+v", alice.X, alice.Y, tx, ty, steps)
		}
	}

	// A block placed in the air above her shows in its cell and column.
	bx, by, bz := tx+1, ty, alice.Z+1
	call("place", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d,"item":6}`, bx, by, bz))
	s.until(t, 20*time.Second, "the placed block", func(m sseMsg) bool {
		u.View = console.WorldUpdate{}
		json.Unmarshal([]byte(m.data), &u)
		last = max(last, m.id)
		for _, b := range u.View.Blocks {
			if b.Kind == "placed" && b.X == bx && b.Y == by && b.Z == bz && b.Name == "alice" {
				for _, c := range u.View.Cells {
					if c.X == bx && c.Y == by && c.Block == 6 && c.Z == bz {
						return true
					}
				}
				t.Fatalf("block placed but its cell did not change: %+v", u.View)
			}
		}
		return false
	})
	// The cluster view tells the leader's commit latency of the calls
	// made since its previous reading.
	testutil.WaitFor(t, 20*time.Second, func() error {
		call("move", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, tx, ty, alice.Z))
		_, body := httpGet(t, base+"/console/api/cluster", nil)
		var v struct {
			Channels []struct {
				CommitLatencyMs float64 `json:"commit_latency_ms"`
			}
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil || len(v.Channels) != 1 || v.Channels[0].CommitLatencyMs <= 0 {
			return fmt.Errorf("no commit latency in %s (%v)", body, err)
		}
		return nil
	})
	code, body := httpGet(t, fmt.Sprintf("%s/console/api/channels/%s/column?x=%d&y=%d", base, id, bx, by), nil)
	var col struct{ Blocks []int }
	if err := json.Unmarshal([]byte(body), &col); code != http.StatusOK || err != nil || len(col.Blocks) != 32 || col.Blocks[bz] != 6 || col.Blocks[0] != 1 {
		t.Fatalf("column %d,%d: %d %s", bx, by, code, body)
	}
	s.close()

	// Resume from the last height seen: updates after it, no snapshot.
	call("move", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, tx-2, ty, alice.Z))
	s2 := openSSE(t, base+"/console/channels/"+id.String()+"/events", map[string]string{"Last-Event-ID": strconv.FormatUint(last, 10)})
	if m := s2.next(t, 20*time.Second); m.event != "update" || m.id <= last {
		t.Fatalf("resumed after height %d: %s id %d", last, m.event, m.id)
	}
	s2.close()
	// A height the view never had: a snapshot.
	s3 := openSSE(t, base+"/console/channels/"+id.String()+"/events", map[string]string{"Last-Event-ID": "99999999"})
	if m := s3.next(t, 20*time.Second); m.event != "snapshot" {
		t.Fatalf("resumed after an unknown height: %s", m.event)
	}
	s3.close()
}

// TestConsoleBadRequests: what a visitor can put in a console URL gets a
// clear 4xx, and the console goes on serving.
func TestConsoleBadRequests(t *testing.T) {
	r, _, id := startWorldNode(t, nil)
	base := "http://" + r.adminAddr()
	other := protocol.ChannelID{1, 2, 3}
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/console/api/channels/nope", http.StatusBadRequest},
		{"/console/api/channels/" + other.String(), http.StatusNotFound},
		{"/console/channels/" + other.String() + "/events", http.StatusNotFound},
		{"/console/api/channels/" + id.String() + "/column?x=-1&y=0", http.StatusBadRequest},
		{"/console/api/channels/" + id.String() + "/column?x=128&y=0", http.StatusBadRequest},
		{"/console/api/channels/" + id.String() + "/column?x=1&y=" + url.QueryEscape("1;drop"), http.StatusBadRequest},
		{"/console/api/channels/" + id.String() + "/column?x=1", http.StatusBadRequest},
		{"/console/channels/" + id.String() + "/events?last_event_id=x", http.StatusBadRequest},
		// The mux cleans the path and redirects to /etc/passwd, a 404.
		{"/console/assets/../../etc/passwd", http.StatusTemporaryRedirect},
		{"/etc/passwd", http.StatusNotFound},
		{"/console/assets/%2e%2e/%2e%2e/go.mod", http.StatusNotFound},
		{"/console/assets/nothing.js", http.StatusNotFound},
		{"/nothing", http.StatusNotFound},
	} {
		// The channel is not hosted until the cluster view has read it:
		// wait for the expected answer, which must come.
		testutil.WaitFor(t, 20*time.Second, func() error {
			if code, body := httpGet(t, base+tc.path, nil); code != tc.code {
				return fmt.Errorf("GET %s: %d %s, want %d", tc.path, code, body, tc.code)
			}
			return nil
		})
	}
	if code, body := httpGet(t, base+"/", map[string]string{"Accept": "text/html"}); code != http.StatusOK || !strings.Contains(body, "app.js") {
		t.Fatalf("GET / after the bad requests: %d", code)
	}
}

// TestConsoleNeedsToken: on an admin listener off loopback the console's
// page, API and event streams answer only with the token: a browser is
// sent to the login form, which sets the console cookie for the right
// token only; the cookie opens GETs but not POST /join.
func TestConsoleNeedsToken(t *testing.T) {
	const token = "0123456789abcdef-console"
	r, _, id := startWorldNode(t, func(o *nodeOptions) {
		o.Admin, o.AdminToken, o.AdminAllowJoin = "0.0.0.0:0", token, true
	})
	_, port, err := net.SplitHostPort(r.adminAddr())
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + port
	for _, path := range []string{"/", "/console/events", "/console/api/cluster", "/console/assets/app.js",
		"/console/api/channels/" + id.String(), "/console/channels/" + id.String() + "/events"} {
		for _, h := range []map[string]string{
			nil,
			{"Authorization": "Bearer wrong-token-of-enough-length"},
			{"Cookie": consoleCookie + "=" + consoleCookieValue("wrong-token-of-enough-length")},
			{"Cookie": consoleCookie + "=" + token},
		} {
			if code, _ := httpGet(t, base+path, h); code != http.StatusUnauthorized {
				t.Errorf("GET %s with %v: %d, want 401", path, h, code)
			}
		}
	}
	// A browser is sent to the form; the form is open.
	if code, _ := httpGet(t, base+"/", map[string]string{"Accept": "text/html"}); code != http.StatusSeeOther {
		t.Errorf("GET / from a browser: %d, want 303 to the login", code)
	}
	if code, body := httpGet(t, base+consoleLoginPath, nil); code != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Errorf("GET %s: %d", consoleLoginPath, code)
	}
	login := func(tok string) *http.Response {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.PostForm(base+consoleLoginPath, url.Values{"token": {tok}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for _, bad := range []string{"", "0123456789abcdef", token + "x", strings.Repeat("a", 10000)} {
		if resp := login(bad); resp.StatusCode == http.StatusSeeOther || len(resp.Cookies()) > 0 {
			t.Errorf("login with %.20q: %d, cookies %v", bad, resp.StatusCode, resp.Cookies())
		}
	}
	resp := login(token)
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == consoleCookie {
			cookie = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode ||
		strings.Contains(cookie.Value, token) {
		t.Fatalf("login with the token: %d, cookie %+v", resp.StatusCode, cookie)
	}
	withCookie := map[string]string{"Cookie": cookie.Name + "=" + cookie.Value}
	if code, body := httpGet(t, base+"/", withCookie); code != http.StatusOK || !strings.Contains(body, "app.js") {
		t.Errorf("GET / with the cookie: %d", code)
	}
	s := openSSE(t, base+"/console/events", withCookie)
	if m := s.next(t, 10*time.Second); m.event != "reset" {
		t.Errorf("cluster stream with the cookie: %+v", m)
	}
	s.close()
	// The cookie is for looking: POST /join still needs the header.
	req, _ := http.NewRequest(http.MethodPost, base+"/join?channel="+id.String(), nil)
	req.Header.Set("Cookie", withCookie["Cookie"])
	pr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /join with the console cookie: %d, want 401", pr.StatusCode)
	}
	// The bearer header still opens everything, as before.
	if code, _ := httpGet(t, base+"/console/api/cluster", map[string]string{"Authorization": "Bearer " + token}); code != http.StatusOK {
		t.Errorf("GET /console/api/cluster with the header: %d", code)
	}
}

// TestConsoleViewIdle: a channel view nobody watches stops following its
// channel after Idle, and the next request starts it again; an open stream
// keeps it.
func TestConsoleViewIdle(t *testing.T) {
	r, _, id := startWorldNode(t, func(o *nodeOptions) {
		o.TuneConsole = func(c *console.Config) { c.Idle = 300 * time.Millisecond }
	})
	base := "http://" + r.adminAddr()
	get := func() {
		t.Helper()
		testutil.WaitFor(t, 20*time.Second, func() error {
			if code, body := httpGet(t, base+"/console/api/channels/"+id.String(), nil); code != http.StatusOK {
				return fmt.Errorf("%d %s", code, body)
			}
			return nil
		})
	}
	get()
	if n := r.console.Views(); n != 1 {
		t.Fatalf("%d views after a request", n)
	}
	testutil.Eventually(t, 20*time.Second, "the unwatched view stops", func() bool { return r.console.Views() == 0 })
	get()
	if n := r.console.Views(); n != 1 {
		t.Fatalf("%d views after a request to a stopped one", n)
	}
	s := openSSE(t, base+"/console/channels/"+id.String()+"/events", nil)
	if m := s.next(t, 10*time.Second); m.event != "snapshot" {
		t.Fatalf("first message %s", m.event)
	}
	// While the stream is open the view goes on, well past Idle: wait
	// for 20 more ticks.
	c, _ := r.node.Channel(id)
	h := c.Status().Height
	testutil.Eventually(t, 20*time.Second, "20 ticks", func() bool { return c.Status().Height > h+20 })
	if n := r.console.Views(); n != 1 || r.console.Streams() != 1 {
		t.Fatalf("%d views, %d streams with a stream open", n, r.console.Streams())
	}
	s.close()
	testutil.Eventually(t, 20*time.Second, "the view stops once the stream closed", func() bool { return r.console.Views() == 0 })
}

// TestConsoleStreamLimit: a visitor who opens event streams beyond
// MaxStreams is answered 503 at once, and a stream closed frees its place.
func TestConsoleStreamLimit(t *testing.T) {
	r, _, _ := startWorldNode(t, func(o *nodeOptions) {
		o.TuneConsole = func(c *console.Config) { c.MaxStreams = 2 }
	})
	base := "http://" + r.adminAddr()
	a := openSSE(t, base+"/console/events", nil)
	b := openSSE(t, base+"/console/events", nil)
	a.next(t, 10*time.Second)
	b.next(t, 10*time.Second)
	if code, body := httpGet(t, base+"/console/events", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("a third stream: %d %s, want 503", code, body)
	}
	a.close()
	testutil.Eventually(t, 10*time.Second, "the closed stream's place freed", func() bool { return r.console.Streams() == 1 })
	c := openSSE(t, base+"/console/events", nil)
	c.next(t, 10*time.Second)
}

// TestConsoleRebinding: a loopback console without a token answers only
// requests that name it by IP address or localhost, so that a page of
// another site rebound to 127.0.0.1 cannot read it; the other admin paths
// are as before.
func TestConsoleRebinding(t *testing.T) {
	r, _, _ := startWorldNode(t, nil)
	_, port, _ := net.SplitHostPort(r.adminAddr())
	base := "http://" + r.adminAddr()
	for _, tc := range []struct {
		host, path string
		code       int
	}{
		{"127.0.0.1:" + port, "/console/api/cluster", http.StatusOK},
		{"localhost:" + port, "/console/api/cluster", http.StatusOK},
		{"LOCALHOST", "/", http.StatusOK},
		{"[::1]:" + port, "/console/api/cluster", http.StatusOK},
		{"evil.example:" + port, "/console/api/cluster", http.StatusMisdirectedRequest},
		{"evil.example", "/", http.StatusMisdirectedRequest},
		{"evil.example", "/console/events", http.StatusMisdirectedRequest},
		{"127.0.0.1.evil.example", "/console/assets/app.js", http.StatusMisdirectedRequest},
		{"evil.example", "/healthz", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, base+tc.path, nil)
		req.Host = tc.host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("GET %s with Host %q: %d, want %d", tc.path, tc.host, resp.StatusCode, tc.code)
		}
	}
}
