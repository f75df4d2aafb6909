package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// TestClientAPI drives a real 3-node cluster (node processes, chain
// process) through the client SDK: calls through a follower, a subscriber
// on the leader, the error codes, idempotent resubmission, then SIGKILL of
// the leader: calls go on (the same signed tx is retried), the subscriber
// resumes on another node, and it sees every height once, in order, with
// results equal to what the caller got.
func TestClientAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a chain and three node processes")
	}
	pc := newProcCluster(t, 3, 2)
	alice, bob := pc.users[0], pc.users[1]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	leader := pc.waitLeader(10 * time.Second)
	var addrs []string
	for _, nd := range pc.others(leader) {
		addrs = append(addrs, nd.addr)
	}
	addrs = append(addrs, leader.addr) // calls start on a follower

	ca, err := client.Dial(ctx, alice, pc.nodeAddrs(), addrs...)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := client.Dial(ctx, bob, pc.nodeAddrs(), rotate(addrs, len(addrs)-1)...) // the leader first
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	subNode := cb.Node()

	sub, err := cb.Subscribe(ctx, pc.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// The subscriber records every outcome it sees, in order.
	var mu sync.Mutex
	seen := map[uint64]*protocol.Outcome{}
	var last uint64
	subDone := make(chan error, 1)
	go func() {
		for {
			u, err := sub.Next(ctx)
			if err != nil {
				subDone <- err
				return
			}
			mu.Lock()
			switch {
			case u.Snapshot != nil:
				last = u.Snapshot.Height
			case u.Outcome.Height != last+1:
				mu.Unlock()
				subDone <- fmt.Errorf("outcome at %d after %d", u.Outcome.Height, last)
				return
			default:
				last = u.Outcome.Height
				seen[last] = u.Outcome
			}
			mu.Unlock()
		}
	}()

	call := func(fn, args string) *client.Result {
		t.Helper()
		b, err := pc.abi.EncodeArgs(fn, []byte(args))
		if err != nil {
			t.Fatal(err)
		}
		res, err := ca.Call(ctx, pc.id, "chat::"+fn, b)
		if err != nil {
			t.Fatalf("%s %s: %v", fn, args, err)
		}
		return res
	}
	var results []*client.Result
	results = append(results, call("join", `{"nick":"alice"}`))
	for i := 0; i < 10; i++ {
		results = append(results, call("send", fmt.Sprintf(`{"text":"before %d"}`, i)))
	}

	// Codes through the real node.
	empty, _ := pc.abi.EncodeArgs("send", []byte(`{"text":""}`))
	if r, err := ca.Call(ctx, pc.id, "chat::send", empty); !errors.Is(err, protocol.ErrAbort) || r == nil || r.Status != protocol.StatusAbort {
		t.Fatalf("empty message: %v", err)
	} else {
		results = append(results, r)
	}
	if _, err := ca.Call(ctx, protocol.ChannelID{9}, "chat::send", empty); protocol.CodeOf(err) != protocol.CodeNoChannel {
		t.Fatalf("unknown channel: %v", err)
	}
	// A forged signature, sent through a follower: the leader's batch
	// verification refuses it and the code comes back through both nodes.
	forged := protocol.SignTx(alice, protocol.Tx{Channel: pc.id, Nonce: 1 << 40, Function: "chat::send", Args: empty})
	forged.Signature[5] ^= 1
	if _, err := ca.CallTx(ctx, forged); protocol.CodeOf(err) != protocol.CodeBadSignature {
		t.Fatalf("forged signature: %v", err)
	}
	outsider, _ := protocol.GenerateKey(nil)
	co, err := client.Dial(ctx, outsider, pc.nodeAddrs(), addrs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := co.Status(ctx, pc.id); protocol.CodeOf(err) != protocol.CodeNotMember {
		t.Fatalf("outsider status: %v", err)
	}
	co.Close()

	// Idempotent: a signed tx submitted twice has one outcome.
	hello, _ := pc.abi.EncodeArgs("send", []byte(`{"text":"once"}`))
	tx := protocol.SignTx(alice, protocol.Tx{Channel: pc.id, Nonce: uint64(len(results) + 1), Function: "chat::send", Args: hello})
	r1, err := ca.CallTx(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ca.CallTx(ctx, tx)
	if err != nil || r2.Height != r1.Height || r2.Digest != r1.Digest {
		t.Fatalf("resubmitted tx: %+v, %v; first at %d", r2, err, r1.Height)
	}
	results = append(results, r1)

	// Kill the leader, which is also the subscriber's node, while alice
	// calls through a follower: her calls go on after the failover (the
	// same signed tx is retried) and bob resumes on another node.
	var killed sync.WaitGroup
	killed.Add(1)
	go func() {
		defer killed.Done()
		leader.p.kill()
	}()
	for i := 0; i < 10; i++ {
		results = append(results, call("send", fmt.Sprintf(`{"text":"after %d"}`, i)))
	}
	killed.Wait()

	// Every call has its own height, the nonces were used in order, and the
	// subscriber saw each result as the caller got it.
	heights := map[uint64]bool{}
	for _, r := range results {
		if heights[r.Height] {
			t.Fatalf("two calls at height %d", r.Height)
		}
		heights[r.Height] = true
	}
	want := uint64(len(results) + 1)
	testutil.WaitFor(t, 30*time.Second, func() error { // the node may apply a moment after the commit
		info, err := ca.Join(ctx, pc.id)
		if err != nil {
			return err
		}
		if info.NextNonce != want {
			return fmt.Errorf("next nonce %d, want %d", info.NextNonce, want)
		}
		return nil
	})
	top := results[len(results)-1].Height
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		l := last
		mu.Unlock()
		if l >= top {
			break
		}
		select {
		case err := <-subDone:
			t.Fatalf("subscription ended at %d: %v", l, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber at height %d, calls reached %d", l, top)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range results {
		o := seen[r.Height]
		if o == nil || o.Hash != r.TxHash || o.Digest != r.Digest || o.Result.Status != r.Status {
			t.Fatalf("height %d: subscriber saw %+v, caller got %+v", r.Height, o, r)
		}
	}
	t.Logf("%d calls, subscriber on %s then %s, heights up to %d", len(results), subNode, cb.Node(), top)
}

// TestClientCLI runs scraft call, subscribe and status against a 3-node
// cluster, as an operator would.
func TestClientCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a chain and three node processes")
	}
	pc := newProcCluster(t, 3, 1)
	keyFile := filepath.Join(t.TempDir(), "alice.key")
	if err := protocol.SaveKey(keyFile, pc.users[0]); err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, nd := range pc.nodes {
		nodes = append(nodes, nd.addr)
	}
	common := []string{"--node", strings.Join(nodes, ","), "--key", keyFile, "--channel", pc.id.String(), "--chain", pc.chainAddr}
	scraft := func(wantExit int, args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, scraftBin, append(args, common...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantExit {
			t.Fatalf("scraft %v: exit %d, want %d\n%s%s", args, code, wantExit, out, stderr.String())
		}
		return out
	}

	var res struct {
		Height uint64          `json:"height"`
		Status string          `json:"status"`
		Output json.RawMessage `json:"output"`
		Events []struct {
			Type string          `json:"type"`
			Data json.RawMessage `json:"data"`
		} `json:"events"`
	}
	if err := json.Unmarshal(scraft(0, "call", "--function", "chat::join", "--args", `{"nick":"alice"}`), &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != "ok" || res.Height == 0 || len(res.Events) == 0 || res.Events[0].Type != "chat::Joined" {
		t.Fatalf("join result %+v", res)
	}
	if err := json.Unmarshal(scraft(0, "call", "--function", "chat::send", "--args", `{"text":"hello from the CLI"}`), &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != "ok" || string(res.Output) != "0" {
		t.Fatalf("send result %+v, output %s", res, res.Output)
	}
	sent := res.Height
	// A contract abort prints the committed result and exits 2.
	if err := json.Unmarshal(scraft(2, "call", "--function", "chat::send", "--args", `{"text":""}`), &res); err != nil || res.Status != "abort" {
		t.Fatalf("abort: %+v, %v", res, err)
	}

	var st struct {
		Channel protocol.ChannelID `json:"channel"`
		Height  uint64             `json:"height"`
		Ready   bool               `json:"ready"`
	}
	if err := json.Unmarshal(scraft(0, "status", "--json"), &st); err != nil || st.Channel != pc.id || st.Height < sent {
		t.Fatalf("status %+v, %v", st, err)
	}
	if table := string(scraft(0, "status")); !strings.Contains(table, "leader") || !strings.Contains(table, pc.id.String()) {
		t.Fatalf("status table:\n%s", table)
	}

	// Subscribing from 0 prints a snapshot with the chat group, then the
	// next outcome: start it, then send.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub := exec.CommandContext(ctx, scraftBin, append([]string{"subscribe", "--from", "0", "--count", "1"}, common...)...)
	var subOut, subErr lockedBuffer
	sub.Stdout, sub.Stderr = &subOut, &subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "snapshot printed", func() bool {
		return bytes.Contains(subOut.Bytes(), []byte("snapshot"))
	})
	scraft(0, "call", "--function", "chat::send", "--args", `{"text":"second"}`)
	if err := sub.Wait(); err != nil {
		t.Fatalf("subscribe: %v\n%s", err, subErr.String())
	}
	out := subOut.Bytes()
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var lines []map[string]json.RawMessage
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 2 || lines[0]["snapshot"] == nil || !strings.Contains(string(lines[0]["snapshot"]), "chat::ChatGroup") {
		t.Fatalf("subscribe output:\n%s", out)
	}
}

// lockedBuffer is a bytes.Buffer a process writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

func (l *lockedBuffer) String() string { return string(l.Bytes()) }

// TestClientFailsOverFromHungNode stops (SIGSTOP) the node a client is
// bound to, once a follower and once the leader: its connection stays
// open, so only the SDK's keepalive finds it, and the call in flight
// completes through another node, once.
func TestClientFailsOverFromHungNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a chain and three node processes")
	}
	pc := newProcCluster(t, 3, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	msg := func(text string) []byte {
		b, err := pc.abi.EncodeArgs("send", []byte(fmt.Sprintf(`{"text":%q}`, text)))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	join, _ := pc.abi.EncodeArgs("join", []byte(`{"nick":"patient"}`))
	for _, victimIsLeader := range []bool{false, true} {
		leader := pc.waitLeader(30 * time.Second)
		victim := pc.others(leader)[0]
		if victimIsLeader {
			victim = leader
		}
		var addrs []string
		addrs = append(addrs, victim.addr)
		for _, nd := range pc.others(victim) {
			addrs = append(addrs, nd.addr)
		}
		cl, err := client.Dial(ctx, pc.users[0], pc.nodeAddrs(), addrs...)
		if err != nil {
			t.Fatal(err)
		}
		fn, args := "chat::send", msg("bound")
		if !victimIsLeader {
			fn, args = "chat::join", join
		}
		first, err := cl.Call(ctx, pc.id, fn, args)
		if err != nil {
			t.Fatal(err)
		}
		if cl.Node() != victim.addr {
			t.Fatalf("bound to %s, want %s", cl.Node(), victim.addr)
		}
		victim.p.signal(syscall.SIGSTOP)
		start := time.Now()
		res, err := cl.Call(ctx, pc.id, "chat::send", msg(fmt.Sprintf("after the stop (leader %v)", victimIsLeader)))
		took := time.Since(start)
		victim.p.signal(syscall.SIGCONT)
		if err != nil {
			t.Fatalf("call while the bound node hangs: %v", err)
		}
		if res.Status != protocol.StatusOK || cl.Node() == victim.addr {
			t.Fatalf("call: status %s through %s", res.Status, cl.Node())
		}
		// Only this client writes: the resent call took one height.
		if res.Height != first.Height+1 {
			t.Fatalf("call at height %d after %d", res.Height, first.Height)
		}
		t.Logf("node hung (leader %v): the call committed at height %d through %s after %s", victimIsLeader, res.Height, cl.Node(), took.Round(time.Millisecond))
		cl.Close()
		pc.waitVoters(3, 60*time.Second)
	}
}
