package integration

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// TestStatusAfterClose: once a member closed the channel, `scraft status`
// says so and agrees with `scraft chain show` on the leader, the epoch and
// the final settled height and digest, which is where the node's applied
// height stands; in JSON and in the table, with the node keys taken from
// the chain or given with --node-key.
func TestStatusAfterClose(t *testing.T) {
	pc := newProcCluster(t, 3, 0)
	key := filepath.Join(pc.nodes[0].dir, "node.key")
	chainArgs := []string{"--chain", pc.chainAddr, "--chain-key", pc.chainKey.String()}
	scraft := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(scraftBin, append(args, chainArgs...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("scraft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	scraft("call", "--node", pc.nodes[1].addr, "--key", key, "--channel", pc.id.String(),
		"--function", "chat::join", "--args", `{"nick":"first"}`)
	if out := strings.TrimSpace(scraft("close", "--node", pc.nodes[1].addr, "--key", key, "--channel", pc.id.String())); out != "closed" {
		t.Fatalf("close printed %q", out)
	}

	var show struct {
		Closed        bool              `json:"closed"`
		Leader        *protocol.Address `json:"leader"`
		Epoch         uint64            `json:"epoch"`
		SettledHeight uint64            `json:"settled_height"`
		SettledDigest string            `json:"settled_digest"`
	}
	if err := json.Unmarshal([]byte(scraft("chain", "show", "--json", pc.id.String())), &show); err != nil {
		t.Fatal(err)
	}
	if !show.Closed || show.SettledHeight == 0 {
		t.Fatalf("chain show after close: %+v", show)
	}

	type statusJSON struct {
		Closed        bool              `json:"closed"`
		Leader        *protocol.Address `json:"leader"`
		Epoch         uint64            `json:"epoch"`
		Height        uint64            `json:"height"`
		SettledHeight uint64            `json:"settled_height"`
		Digest        string            `json:"digest"`
	}
	var nodeKeys []string
	for _, nd := range pc.nodes {
		nodeKeys = append(nodeKeys, nd.key.Address().String())
	}
	for _, pin := range [][]string{nil, {"--node-key", strings.Join(nodeKeys, ",")}} {
		base := append([]string{"status", "--node", pc.nodes[2].addr, "--key", key, "--channel", pc.id.String()}, pin...)
		// The node applies the close a moment after the chain records it.
		var st statusJSON
		testutil.WaitFor(t, 30*time.Second, func() error {
			out, err := exec.Command(scraftBin, append(append(base, "--json"), chainArgs...)...).CombinedOutput()
			if err != nil {
				return errorf("scraft status: %v: %s", err, out)
			}
			st = statusJSON{}
			if err := json.Unmarshal(out, &st); err != nil {
				return errorf("%v: %s", err, out)
			}
			if st.Height != show.SettledHeight {
				return errorf("node at height %d, the channel closed at %d", st.Height, show.SettledHeight)
			}
			return nil
		})
		if !st.Closed || st.SettledHeight != show.SettledHeight || st.Epoch != show.Epoch ||
			strings.TrimPrefix(st.Digest, "0x") != strings.TrimPrefix(show.SettledDigest, "0x") {
			t.Errorf("status %v: %+v; chain show: %+v", pin, st, show)
		}
		if (show.Leader == nil) != (st.Leader == nil) || show.Leader != nil && *st.Leader != *show.Leader {
			t.Errorf("status %v: leader %v, chain show %v", pin, st.Leader, show.Leader)
		}
		table := scraft(base...)
		if !strings.Contains(table, "closed") {
			t.Errorf("status table does not say closed:\n%s", table)
		}
	}
}
