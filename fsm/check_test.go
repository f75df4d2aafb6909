package fsm

import (
	"errors"
	"testing"

	"github.com/scraft/scraft/protocol"
)

func TestCheckCall(t *testing.T) {
	alice, bob, carol := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	m := newMachine(t, testConfig(alice, bob))
	if _, _, err := m.Propose([]protocol.Entry{call(alice, 1, "put", "x=1"), call(alice, 2, "put", "x=2")}, 1, alice, 1); err != nil {
		t.Fatal(err)
	}
	forged := call(bob, 1, "put", "x=1").Call
	forged.Tx.Args = []byte("x=9")
	other := protocol.SignTx(alice, protocol.Tx{Channel: protocol.ChannelID{7}, Nonce: 3, Function: "t::put"})
	tests := []struct {
		name string
		tx   *protocol.SignedTx
		err  error
	}{
		{"next nonce after the pending batch", call(alice, 3, "put", "x=3").Call, nil},
		{"a later nonce may wait", call(alice, 9, "put", "x=3").Call, nil},
		{"first tx of another member", call(bob, 1, "put", "x=1").Call, nil},
		{"nonce used by a pending batch", call(alice, 2, "put", "x=3").Call, ErrTxNonce},
		{"forged", forged, ErrTxSignature},
		{"non-member", call(carol, 1, "put", "x=1").Call, ErrTxNotMember},
		{"other channel", other, ErrTxChannel},
		{"other contract", txEntry(alice, 3, "u::put").Call, ErrTxFunction},
		{"reserved", txEntry(alice, 3, "t::on_join").Call, ErrTxFunction},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.CheckCall(tc.tx); !errors.Is(err, tc.err) {
				t.Fatalf("CheckCall: %v, want %v", err, tc.err)
			}
		})
	}
	if n := m.PendingNonce(alice.Address()); n != 2 || m.Nonce(alice.Address()) != 0 {
		t.Fatalf("pending nonce %d, applied %d", n, m.Nonce(alice.Address()))
	}
}
