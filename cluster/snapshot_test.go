package cluster

import (
	"fmt"
	"testing"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// batchedMachine returns a machine of one member that applied batches of
// the given sizes (chat calls).
func batchedMachine(t *testing.T, sizes ...int) *fsm.Machine {
	t.Helper()
	k, _ := protocol.GenerateKey(nil)
	var id protocol.ChannelID
	id[0] = 7
	cfg := fsm.DefaultConfig()
	cfg.Channel, cfg.Contract = id, "chat"
	cfg.Genesis = fsm.Genesis{State: protocol.State{}, Members: []fsm.Member{{Address: k.Address(), PublicKey: k.Public(), JoinSeq: 1}}, HighestJoinSeq: 1}
	m, err := fsm.New(cfg, counterExec{})
	if err != nil {
		t.Fatal(err)
	}
	var nonce uint64
	for i, n := range sizes {
		var entries []protocol.Entry
		for range n {
			nonce++
			tx := protocol.SignTx(k, protocol.Tx{Channel: id, Nonce: nonce, Function: "chat::send", Args: []byte(fmt.Sprintf("m%d;", nonce))})
			entries = append(entries, protocol.Entry{Kind: protocol.EntryCall, Call: tx})
		}
		b, _, err := m.Propose(entries, 1, k, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Apply(b, nil); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestSettlementEndsAtBatchEnd: the leader's settlement ends at a batch
// end whatever the cap, and a member votes against one that does not.
func TestSettlementEndsAtBatchEnd(t *testing.T) {
	// Batches end at heights 3, 4, 9, 10.
	m := batchedMachine(t, 3, 1, 5, 1)
	tests := []struct {
		name            string
		from, to, limit uint64
		want            uint64
	}{
		{"whole", 1, 10, 100, 10},
		{"capped inside a batch", 1, 10, 7, 4},
		{"capped at an end", 1, 10, 4, 4},
		{"first batch longer than the cap", 1, 10, 2, 3},
		{"to inside a batch", 5, 8, 100, 4 + 5}, // 5..8 is inside 5..9: the batch goes whole
		{"from mid range", 4, 10, 6, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := buildSettlement(m, tc.from, tc.to, tc.limit, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if s.From != tc.from || s.To != tc.want {
				t.Fatalf("settlement %d..%d, want %d..%d", s.From, s.To, tc.from, tc.want)
			}
			if m.InsideBatch(s.To) {
				t.Fatalf("settlement ends inside a batch at %d", s.To)
			}
		})
	}
	for h, inside := range map[uint64]bool{1: true, 3: false, 4: false, 5: true, 8: true, 9: false, 10: false} {
		if got := m.InsideBatch(h); got != inside {
			t.Errorf("InsideBatch(%d) = %v, want %v", h, got, inside)
		}
	}
}
