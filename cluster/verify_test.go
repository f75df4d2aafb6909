package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
)

// TestForgedTxRefused checks the leader verifies every tx before it orders
// it, whether submitted to it or forwarded by a follower: a forged tx is
// refused as a bad tx and takes no nonce.
func TestForgedTxRefused(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.waitVoters(3, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, other := tc.users[0], tc.users[1]
	forgeries := []struct {
		name  string
		forge func(tx *protocol.SignedTx)
	}{
		{"bad signature", func(tx *protocol.SignedTx) { tx.Signature[0] ^= 1 }},
		{"other key", func(tx *protocol.SignedTx) { tx.PublicKey = other.Public() }},
	}
	for i, nd := range tc.nodes {
		for _, f := range forgeries {
			t.Run(fmt.Sprintf("node%d/%s", i, f.name), func(t *testing.T) {
				tc.mu.Lock()
				n := tc.nonces[u.Address()] + 1
				tc.mu.Unlock()
				forged := protocol.SignTx(u, protocol.Tx{Channel: tc.id, Nonce: n, Function: "chat::send", Args: []byte("forged;")})
				f.forge(forged)
				if _, err := tc.channel(nd).Submit(ctx, forged); !errors.Is(err, ErrBadTx) || !errors.Is(err, ErrBadSignature) {
					t.Fatalf("forged tx: %v, want ErrBadTx and ErrBadSignature", err)
				}
				out, err := tc.channel(nd).Submit(ctx, tc.tx(u, "genuine;"))
				if err != nil {
					t.Fatalf("genuine tx with the same nonce: %v", err)
				}
				if out.Result.Status != protocol.StatusOK {
					t.Fatalf("genuine tx: status %s: %s", out.Result.Status, out.Message)
				}
			})
		}
	}
}
