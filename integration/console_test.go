package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// The browser tests drive the console in headless Chromium (make ui-test;
// scripts/install-chromium.sh installs it). They read what the page drew
// from the DOM: the canvas itself cannot be asserted on. With
// SCRAFT_UI_SHOTS=DIR they save their screenshots there (make ui-test:
// docs/img).

// chromium returns the path of a Chromium or Chrome, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium tab and the errors its pages logged.
type browser struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	// errs are console errors, uncaught exceptions and failed loads.
	errs []string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: not in -short (make ui-test runs it; TestConsoleBrowserQuick is the short one)")
	}
	return startBrowser(t)
}

// startBrowser is newBrowser in -short too.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("browser test skipped: no chromium on PATH; install it with scripts/install-chromium.sh (make ui-test does)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	err := chromedp.Listen(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				parts = append(parts, string(a.Value)+a.Description)
			}
			msg = "console.error: " + strings.Join(parts, " ")
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level != cdplog.EntryLevelError {
				return
			}
			msg = "log: " + ev.Entry.Text + " " + ev.Entry.URL
		default:
			return
		}
		b.mu.Lock()
		b.errs = append(b.errs, msg)
		b.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cdplog.Enable, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression and decodes its JSON value into v.
func (b *browser) eval(expr string, v any) error {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[json.RawMessage]("JSON.stringify("+expr+")"))
	if err != nil {
		return err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), v)
}

// noErrors fails the test if a page logged an error.
func (b *browser) noErrors() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		b.t.Fatalf("the page logged errors:\n%s", strings.Join(b.errs, "\n"))
	}
}

// shot saves a screenshot of the element sel as name in SCRAFT_UI_SHOTS,
// when set.
func (b *browser) shot(sel, name string) {
	b.t.Helper()
	dir := os.Getenv("SCRAFT_UI_SHOTS")
	if dir == "" {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// pagePlayer is a player as the page lists it.
type pagePlayer struct {
	Name string `json:"name"`
	X    int    `json:"x,string"`
	Y    int    `json:"y,string"`
}

const jsPlayers = `[...document.querySelectorAll("#players li")].map(e => ({name: e.dataset.name, x: e.dataset.x, y: e.dataset.y}))`

// TestConsoleBrowserDev opens the console of `scraft dev` in Chromium:
// the page loads without errors, the cluster view names the leader (one
// of the dev nodes, marked leader among the members), the MoveCraft map
// shows every player by name and follows them as they move, and a click
// on a cell shows its column.
func TestConsoleBrowserDev(t *testing.T) {
	b := newBrowser(t)
	p := startProc(t, "dev", "dev", "--players", "4", "--members", "8")
	url, nodes := devConsole(t, p, 8)
	b.do(chromedp.Navigate(url))
	// A channel of twelve members (eight nodes, four players) runs
	// through five candidates: the leader is one, four more are
	// candidates, the others are delegators, and each node among them
	// delegates to a candidate.
	testutil.WaitFor(t, 90*time.Second, func() error {
		ms, err := pageRoles(b, nodes)
		if err != nil {
			return err
		}
		roles := countRoles(ms)
		if len(ms) != 12 || roles["leader"] != 1 || roles["candidate"] != 4 || roles["delegator"] != 7 {
			return fmt.Errorf("cluster view: roles %v of %d members, want 1 leader, 4 candidates, 7 delegators", roles, len(ms))
		}
		for a, m := range ms {
			if to := ms[m.DelegatedTo].Role; nodes[a] && m.Role == "delegator" && to != "candidate" && to != "leader" {
				return fmt.Errorf("node %s, a delegator, delegated to %q, a %q", a, m.DelegatedTo, to)
			}
		}
		return nil
	})
	first := pagePlayersNamed(t, b, 4)
	var contract string
	if err := b.eval(`document.querySelector("#channel").dataset.contract`, &contract); err != nil || contract != "movecraft" {
		t.Fatalf("channel view %q, %v", contract, err)
	}
	testutil.WaitFor(t, 60*time.Second, func() error {
		var now []pagePlayer
		if err := b.eval(jsPlayers, &now); err != nil {
			return err
		}
		moved := 0
		for _, p := range now {
			for _, q := range first {
				if p.Name == q.Name && (p.X != q.X || p.Y != q.Y) {
					moved++
				}
			}
		}
		if moved < 2 {
			return fmt.Errorf("%d players moved: %+v then %+v", moved, first, now)
		}
		return nil
	})
	var drawn struct {
		Cells   string `json:"cells"`
		Updates string `json:"updates"`
	}
	if err := b.eval(`document.querySelector("#world").dataset`, &drawn); err != nil || drawn.Cells != "16384" || drawn.Updates == "0" {
		t.Fatalf("map drew %+v (%v): want every one of the 128×128 cells and updates", drawn, err)
	}

	// A click on a cell shows its column, bedrock at the bottom.
	var rect struct{ X, Y, W, H float64 }
	if err := b.eval(`(() => { const r = document.querySelector("#world").getBoundingClientRect(); return {x: r.left, y: r.top, w: r.width, h: r.height}; })()`, &rect); err != nil {
		t.Fatal(err)
	}
	b.do(chromedp.MouseClickXY(rect.X+rect.W*64.5/128, rect.Y+rect.H*40.5/128))
	var column struct {
		X      string `json:"x"`
		Y      string `json:"y"`
		Bottom string `json:"bottom"`
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		err := b.eval(`(() => { const c = document.querySelector("#column"); const l = c.querySelector("li:last-child");
			return {x: c.dataset.x, y: c.dataset.y, bottom: l ? l.dataset.block : ""}; })()`, &column)
		if err != nil {
			return err
		}
		if column.X != "64" || column.Y != "40" || column.Bottom != "1" {
			return fmt.Errorf("column after a click on 64,40: %+v", column)
		}
		return nil
	})
	// The players build as they walk: blocks placed show on the map. For
	// the pictures, let them lay a few trails first.
	want := 4
	if os.Getenv("SCRAFT_UI_SHOTS") != "" {
		want = 16
	}
	testutil.WaitFor(t, 60*time.Second, func() error {
		var n int
		if err := b.eval(`document.querySelectorAll("#blocks li").length`, &n); err != nil {
			return err
		}
		if n < want {
			return fmt.Errorf("%d blocks laid, want %d", n, want)
		}
		return nil
	})
	b.shot("#cluster", "console-cluster.png")
	b.shot("#channel", "console-world.png")
	b.noErrors()
}

// TestConsoleBrowserQuick is the browser test make test runs (in -short
// too, when Chromium is installed): the console of `scraft dev` loads
// without errors, its cluster view names the leader, one of the dev
// nodes, with the other members as followers, and the map shows the
// players.
func TestConsoleBrowserQuick(t *testing.T) {
	if chromium() == "" {
		t.Skip("browser test skipped: no chromium on PATH; install it with scripts/install-chromium.sh")
	}
	p := startProc(t, "dev", "dev", "--players", "2")
	url, nodes := devConsole(t, p, 3)
	b := startBrowser(t)
	b.do(chromedp.Navigate(url))
	testutil.WaitFor(t, 30*time.Second, func() error {
		ms, err := pageRoles(b, nodes)
		if err != nil {
			return err
		}
		// Three nodes and two players: a leader and four followers.
		if roles := countRoles(ms); len(ms) != 5 || roles["leader"] != 1 || roles["follower"] != 4 {
			return fmt.Errorf("cluster view: roles %v of %d members, want a leader and 4 followers", roles, len(ms))
		}
		return nil
	})
	pagePlayersNamed(t, b, 2)
	b.noErrors()
}

// devConsole waits for `scraft dev` to print its console's URL and its
// n nodes' member addresses, and returns them.
func devConsole(t *testing.T, p *proc, n int) (url string, nodes map[string]bool) {
	t.Helper()
	out := func() string {
		data, _ := os.ReadFile(p.log.Name())
		return string(data)
	}
	testutil.WaitFor(t, 60*time.Second, func() error {
		m := regexp.MustCompile(`(?m)^console\s+(http://\S+/)`).FindStringSubmatch(out())
		if m == nil {
			return errors.New("scraft dev has not printed the console's URL yet")
		}
		url = m[1]
		return nil
	})
	nodes = map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^node\d+\s+(0x[0-9a-f]{32})`).FindAllStringSubmatch(out(), -1) {
		nodes[m[1]] = true
	}
	if len(nodes) != n {
		t.Fatalf("scraft dev printed %d node addresses, want %d:\n%s", len(nodes), n, out())
	}
	return url, nodes
}

// pageMember is a member row of the page's first channel card.
type pageMember struct {
	Address     string `json:"address"`
	Role        string `json:"role"`
	DelegatedTo string `json:"delegatedTo"`
}

// pageRoles returns the members of the page's first channel card by
// address. It fails unless the card names a leader that is one of nodes
// and shows it with the leader role.
func pageRoles(b *browser, nodes map[string]bool) (map[string]pageMember, error) {
	var page struct {
		Leader  string       `json:"leader"`
		Members []pageMember `json:"members"`
	}
	err := b.eval(`(() => { const c = document.querySelector("#channels .card"); if (!c) return {members: []};
		return {leader: c.dataset.leader, members: [...c.querySelectorAll("tr[data-address]")].map(r => ({
			address: r.dataset.address, role: r.dataset.role, delegatedTo: r.dataset.delegatedTo}))}; })()`, &page)
	if err != nil {
		return nil, err
	}
	byAddr := map[string]pageMember{}
	for _, m := range page.Members {
		byAddr[m.Address] = m
	}
	if !nodes[page.Leader] || byAddr[page.Leader].Role != "leader" {
		return byAddr, fmt.Errorf("cluster view: leader %q, its role %q", page.Leader, byAddr[page.Leader].Role)
	}
	return byAddr, nil
}

// countRoles counts members by role.
func countRoles(ms map[string]pageMember) map[string]int {
	n := map[string]int{}
	for _, m := range ms {
		n[m.Role]++
	}
	return n
}

// pagePlayersNamed waits for the map to list players player1…playerN by
// name, and returns them.
func pagePlayersNamed(t *testing.T, b *browser, n int) []pagePlayer {
	t.Helper()
	var players []pagePlayer
	testutil.WaitFor(t, 60*time.Second, func() error {
		if err := b.eval(jsPlayers, &players); err != nil {
			return err
		}
		names := map[string]bool{}
		for _, p := range players {
			names[p.Name] = true
		}
		for i := 1; i <= n; i++ {
			if !names[fmt.Sprintf("player%d", i)] {
				return fmt.Errorf("players on the map: %+v", players)
			}
		}
		return nil
	})
	return players
}

// TestConsoleBrowserFailover watches a chat channel on three node
// processes from a follower's console: it names the leader, shows the
// room's messages, and when the leader is killed shows the new leader and
// the leader change among its events.
func TestConsoleBrowserFailover(t *testing.T) {
	b := newBrowser(t)
	pc := newProcCluster(t, 3, 0)
	old := pc.waitLeader(30 * time.Second)
	var watch *procNode
	for _, nd := range pc.nodes {
		if nd != old {
			watch = nd
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := client.Dial(ctx, watch.key, pc.nodeAddrs(), watch.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	say := func(fn, args string) {
		t.Helper()
		in, err := pc.abi.EncodeArgs(fn, []byte(args))
		if err != nil {
			t.Fatal(err)
		}
		res, err := cl.Call(ctx, pc.id, "chat::"+fn, in)
		if err != nil || res.Status != protocol.StatusOK {
			t.Fatalf("chat::%s: %v %+v", fn, err, res)
		}
	}
	say("join", `{"nick":"watcher"}`)
	say("send", `{"text":"hello from the console test"}`)

	b.do(chromedp.Navigate("http://" + watch.admin + "/"))
	leaderOnPage := func() (string, error) {
		var l string
		err := b.eval(`(() => { const c = document.querySelector("#channels .card"); return c ? c.dataset.leader : ""; })()`, &l)
		return l, err
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		l, err := leaderOnPage()
		if err != nil {
			return err
		}
		if l != old.key.Address().String() {
			return fmt.Errorf("page names leader %q, want %s", l, old.key.Address())
		}
		return nil
	})
	testutil.WaitFor(t, 30*time.Second, func() error {
		var texts []string
		if err := b.eval(`[...document.querySelectorAll("#messages li")].map(e => e.textContent)`, &texts); err != nil {
			return err
		}
		if len(texts) != 1 || !strings.Contains(texts[0], "watcher") || !strings.Contains(texts[0], "hello from the console test") {
			return fmt.Errorf("chat view shows %q", texts)
		}
		return nil
	})

	old.p.kill()
	nw := pc.waitOtherLeader(old, 60*time.Second)
	testutil.WaitFor(t, 30*time.Second, func() error {
		l, err := leaderOnPage()
		if err != nil {
			return err
		}
		if l != nw.key.Address().String() {
			return fmt.Errorf("page names leader %q, want the new leader %s", l, nw.key.Address())
		}
		var changes []string
		if err := b.eval(`[...document.querySelectorAll("#events li[data-kind=leader]")].map(e => e.dataset.leader)`, &changes); err != nil {
			return err
		}
		if !slicesContains(changes, nw.key.Address().String()) {
			return fmt.Errorf("no leader event for the new leader among %q", changes)
		}
		return nil
	})
	b.shot("body", "console-failover.png")
	b.noErrors()
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
