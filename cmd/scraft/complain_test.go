package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// runComplain runs the command with the complain and call commands'
// flags reset first (cobra keeps them, --help included, between runs).
func runComplain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	rootCmd.SetContext(nil) //nolint:staticcheck // the next Execute sets it
	for _, c := range rootCmd.Commands() {
		if c.Name() != "complain" && c.Name() != "call" {
			continue
		}
		c.SetContext(nil) //nolint:staticcheck // the next Execute sets it
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				sv.Replace(nil)
			} else {
				f.Value.Set(f.DefValue)
			}
			f.Changed = false
		})
	}
	return run(t, args...)
}

func TestComplainHelp(t *testing.T) {
	out, err := runComplain(t, "complain", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"censorship complaint", "--tx", "--function", "--nonce", "--accused", "censorship window", "scraft chain execute"} {
		if !strings.Contains(out, want) {
			t.Fatalf("complain --help lacks %q:\n%s", want, out)
		}
	}
	if out, err := runComplain(t, "call", "--help"); err != nil || !strings.Contains(out, "--complain-after") {
		t.Fatalf("call --help lacks --complain-after (%v):\n%s", err, out)
	}
}

// TestComplainFiles files complaints against a real devchain's leader,
// with a tx the command signs and with one signed elsewhere.
func TestComplainFiles(t *testing.T) {
	addr := startTestChain(t)
	ctx := context.Background()
	dial := func(k *protocol.Key) *devchain.Client {
		c, err := devchain.Dial(addr, k, devchain.WithChainKeys(testChainKey.Address()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	leader, _ := protocol.GenerateKey(nil)
	bobFile, bob := newChainKeyFile(t, "bob")
	lc := dial(leader)
	id, err := lc.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"), InitialState: protocol.State{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lc.Join(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(bob).Join(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := lc.ClaimLeader(ctx, id, 0, nil); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--chain", addr, "--chain-key", testChainKey.Address().String(), "--key", bobFile, "--channel", id.String()}

	signed := protocol.SignTx(bob, protocol.Tx{Channel: id, Nonce: 2, Function: "chat::send", Args: []byte{1}})
	for _, tc := range []struct {
		name  string
		args  []string
		nonce uint64
		tx    protocol.Hash
	}{
		{"new tx", []string{"--function", "chat::send", "--args", `{"text":"let me in"}`, "--nonce", "1"}, 1, protocol.Hash{}},
		{"signed tx", []string{"--tx", hex.EncodeToString(signed.Bytes())}, 2, signed.Hash()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runComplain(t, append([]string{"complain"}, append(tc.args, conn...)...)...)
			if err != nil {
				t.Fatal(err, out)
			}
			var v struct {
				Proposal   uint64 `json:"proposal"`
				Accused    string `json:"accused"`
				Tx         string `json:"tx"`
				Nonce      uint64 `json:"nonce"`
				DeadlineMs int64  `json:"deadline_ms"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			if v.Accused != leader.Address().String() || v.Nonce != tc.nonce || v.DeadlineMs == 0 || (tc.tx != protocol.Hash{} && v.Tx != tc.tx.String()) {
				t.Fatalf("complaint %+v", v)
			}
			p, err := lc.Proposal(ctx, id, v.Proposal)
			if err != nil {
				t.Fatal(err)
			}
			var cs protocol.Censorship
			if err := protocol.Unmarshal(p.Data, &cs); err != nil {
				t.Fatal(err)
			}
			if p.Kind != protocol.ProposalCensorship || p.Status != contract.ProposalOpen || p.Proposer != bob.Address() ||
				cs.Accused != leader.Address() || cs.Tx.Hash().String() != v.Tx {
				t.Fatalf("proposal on chain %+v, complaint %+v", p.Proposal, cs)
			}
		})
	}
	for _, bad := range [][]string{
		{"--function", "chat::send"},
		{"--tx", hex.EncodeToString(signed.Bytes()), "--nonce", "3"},
		{"--accused", bob.Address().String(), "--function", "chat::send", "--nonce", "3"},
	} {
		if out, err := runComplain(t, append([]string{"complain"}, append(bad, conn...)...)...); err == nil {
			t.Fatalf("complain %v filed:\n%s", bad, out)
		}
	}
}
