package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scraft/scraft/protocol"
)

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
	common := []string{"--node", strings.Join(nodes, ","), "--key", keyFile, "--channel", pc.id.String()}
	scraft := func(wantExit int, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(scraftBin, append(args, common...)...)
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

	// Subscribing from just before the send shows it; from 0, a snapshot
	// with the chat group comes first.
	out := scraft(0, "subscribe", "--from", "0", "--count", "1")
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
	out = scraft(0, "subscribe", "--from", itoa(sent-1), "--count", "1")
	if !strings.Contains(string(out), `"height":`+itoa(sent)) || strings.Contains(string(out), "snapshot") {
		t.Fatalf("subscribe from %d:\n%s", sent-1, out)
	}
}

func itoa(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
