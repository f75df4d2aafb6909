package integration

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// TestLeaveCloseCLI runs `scraft leave` and `scraft close` against a chain
// process and three node processes: a user member leaves (asking the chain
// too), then a node's member leaves (its node drops out of the Raft group),
// then a member closes the channel: it is closed on chain, every node stops
// hosting it, calls fail, and a restarted node keeps it closed.
func TestLeaveCloseCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a chain and three node processes")
	}
	pc := newProcCluster(t, 3, 1)
	userKey := filepath.Join(t.TempDir(), "user.key")
	if err := protocol.SaveKey(userKey, pc.users[0]); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, nd := range pc.nodes {
		addrs = append(addrs, nd.addr)
	}
	scraft := func(wantOK bool, timeout time.Duration, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
		defer cancel()
		args = append(args, "--channel", pc.id.String(), "--timeout", timeout.String(), "--chain", pc.chainAddr)
		cmd := exec.CommandContext(ctx, scraftBin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		out, err := cmd.Output()
		t.Logf("scraft %s: %s in %s", args[0], strings.TrimSpace(string(out)), time.Since(start).Round(time.Millisecond))
		if (err == nil) != wantOK {
			t.Fatalf("scraft %v: %v, want ok=%v\n%s%s", args, err, wantOK, out, stderr.String())
		}
		return strings.TrimSpace(string(out) + stderr.String())
	}
	chain := pc.dialChain(pc.users[0])
	ctx := context.Background()
	isMember := func(a protocol.Address) bool {
		info, err := chain.Channel(ctx, pc.id)
		if err != nil {
			t.Fatal(err)
		}
		_, ok := info.Member(a)
		return ok
	}

	// A user member leaves and asks the chain too: the settlement releases it.
	if out := scraft(true, time.Minute, "leave", "--node", strings.Join(addrs, ","), "--key", userKey, "--on-chain"); out != "left" {
		t.Fatalf("leave printed %q", out)
	}
	if isMember(pc.users[0].Address()) {
		t.Fatal("the user is still a member on chain")
	}

	// A follower node's member leaves, asking through another node.
	leader := pc.waitLeader(30 * time.Second)
	var gone, other *procNode
	for _, nd := range pc.nodes {
		if nd == leader {
			continue
		}
		if gone == nil {
			gone = nd
		} else {
			other = nd
		}
	}
	scraft(true, time.Minute, "leave", "--node", leader.addr, "--key", filepath.Join(gone.dir, "node.key"))
	if isMember(gone.key.Address()) {
		t.Fatal("the node's member is still a member on chain")
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		st, err := leader.status(pc.id)
		if err != nil {
			return err
		}
		if st.Voters != 2 {
			return errorf("%d voters, want 2", st.Voters)
		}
		return nil
	})

	// A key that left can no longer act in the channel: not a member.
	out := scraft(false, 10*time.Second, "leave", "--node", other.addr, "--key", filepath.Join(gone.dir, "node.key"))
	if !strings.Contains(out, "not a member") && !strings.Contains(out, "not_member") {
		t.Fatalf("second leave of the node: %s", out)
	}

	// The leader's member closes the channel.
	if out := scraft(true, time.Minute, "close", "--node", other.addr, "--key", filepath.Join(leader.dir, "node.key")); out != "closed" {
		t.Fatalf("close printed %q", out)
	}
	info, err := chain.Channel(ctx, pc.id)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Closed {
		t.Fatal("the channel is not closed on chain")
	}
	final := info.SettledHeight
	for _, nd := range []*procNode{leader, other} {
		testutil.WaitFor(t, 20*time.Second, func() error {
			st, err := nd.status(pc.id)
			if err != nil {
				return err
			}
			if st.Height != final || st.Leading {
				return errorf("node %s: height %d (settled %d), leading %v", nd.addr, st.Height, final, st.Leading)
			}
			return nil
		})
	}
	// A call no longer goes through: refused at once as channel_closed,
	// not retried until the deadline.
	start := time.Now()
	if out := scraft(false, 30*time.Second, "call", "--node", other.addr, "--key", filepath.Join(other.dir, "node.key"),
		"--function", "chat::send", "--args", `{"text":"late"}`); !strings.Contains(out, "channel_closed") && !strings.Contains(out, "100020") {
		t.Fatalf("call after close: %s, want channel_closed", out)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("call after close answered after %s: it was retried", d)
	}

	// A restarted node keeps the channel closed, with its final state.
	other.p.kill()
	pc.restart(other)
	testutil.WaitFor(t, 30*time.Second, func() error {
		st, err := other.status(pc.id)
		if err != nil {
			return err
		}
		if st.Height != final || st.Leading {
			return errorf("restarted node: height %d (final %d), leading %v", st.Height, final, st.Leading)
		}
		return nil
	})
	// A closed channel has nothing to catch up on: the node is ready.
	testutil.WaitFor(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + other.admin + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return errorf("/readyz: %s: %s", resp.Status, b)
		}
		return nil
	})
}
