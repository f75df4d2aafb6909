package integration

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/settlement/devchain"
)

// TestNodeRefusesImpostorChain: a node pins the chain's key in its data
// folder on first contact. When another `scraft chain`, with another key,
// answers at the chain's address, the restarted node exits with an error
// that names the pinned and the presented key, and serves nothing.
func TestNodeRefusesImpostorChain(t *testing.T) {
	chainAddr := testutil.FreePort(t)
	chain, chainKey := startChain(t, chainAddr)
	pc := newUnstartedProcCluster(t, chainAddr, chainKey, 1)
	nd := pc.nodes[0]
	pc.startNode(nd, nil)
	pc.rebindIfTaken(nd, nil)
	pc.waitLeader(30 * time.Second)
	pin := filepath.Join(nd.dir, "data", "chain.pin")
	if b, err := os.ReadFile(pin); err != nil || !bytes.Contains(b, []byte(chainKey.String())) {
		t.Fatalf("node's pin file: %v:\n%s", err, b)
	}

	nd.p.kill()
	chain.kill()
	_, impostorKey := startChain(t, chainAddr)
	// The node starts once the impostor answers: a node that finds no
	// chain at start restarts its channels from their data, and refuses
	// the chain's calls later (the same error, in its log).
	impostor, err := devchain.Dial(chainAddr, mustKey(t), devchain.WithChainKeys(impostorKey))
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	testutil.WaitFor(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := impostor.Head(ctx)
		return err
	})
	pc.restart(nd)
	select {
	case <-nd.p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the node did not stop on an impostor chain")
	}
	if nd.p.cmd.ProcessState.Success() {
		t.Fatal("the node exited 0 on an impostor chain")
	}
	log, _ := os.ReadFile(nd.p.log.Name())
	i := bytes.Index(log, []byte("not a pinned one"))
	if i < 0 {
		t.Fatalf("the node's log has no chain key error:\n%s", log)
	}
	line := log[bytes.LastIndexByte(log[:i], '\n')+1:]
	line, _, _ = bytes.Cut(line, []byte("\n"))
	for _, want := range []string{impostorKey.String(), chainKey.String(), pin} {
		if !bytes.Contains(line, []byte(want)) {
			t.Fatalf("the node's error does not name %q: %s", want, line)
		}
	}
	if c, err := net.DialTimeout("tcp", nd.addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("a node refused by the chain link serves on %s", nd.addr)
	}
}
