package cluster

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/protocol"
)

// FuzzPeerRequest feeds arbitrary bytes to the peer API's request decoding
// as a member's node would receive them: each request message, its
// caller's signature check and the signed txs a ForwardTxs carries. None
// may panic, and nothing a random caller signs verifies.
func FuzzPeerRequest(f *testing.F) {
	k, _ := protocol.GenerateKey(nil)
	ch := protocol.ChannelID{7}
	tx := protocol.SignTx(k, protocol.Tx{Channel: ch, Function: "chat::send", Nonce: 1})
	fwd, _ := proto.Marshal(&peerpb.ForwardTxsRequest{Channel: ch[:], Txs: [][]byte{tx.Bytes()},
		Caller: signCaller(k, "ForwardTxs", forwardAuth(ch[:], 0, [][]byte{tx.Bytes()})...)})
	att, _ := proto.Marshal(&peerpb.AttestRequest{Channel: ch[:], Epoch: 3, Caller: signCaller(k, "Attest", ch[:], u64bytes(3))})
	f.Add(fwd)
	f.Add(att)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var fr peerpb.ForwardTxsRequest
		if proto.Unmarshal(raw, &fr) == nil {
			_, _, _ = verifyCaller(fr.Caller, "ForwardTxs", forwardAuth(fr.Channel, fr.Hops, fr.Txs)...)
			for _, b := range fr.Txs {
				if st, err := protocol.DecodeSignedTx(b); err == nil && !bytes.Equal(st.Bytes(), b) {
					t.Fatalf("a forwarded tx does not re-encode to its bytes")
				}
			}
		}
		var ar peerpb.AttestRequest
		if proto.Unmarshal(raw, &ar) == nil {
			_, _, _ = verifyCaller(ar.Caller, "Attest", ar.Channel, u64bytes(ar.Epoch))
		}
		var jr peerpb.JoinRequest
		if proto.Unmarshal(raw, &jr) == nil {
			_, _, _ = verifyCaller(jr.Caller, "Join", jr.Channel, []byte(jr.Address))
		}
		var sr peerpb.StatusRequest
		if proto.Unmarshal(raw, &sr) == nil {
			_, _, _ = verifyCaller(sr.Caller, "Status", sr.Channel)
		}
	})
}

// FuzzPeerAnswer feeds arbitrary bytes to what a node decodes of another
// node's answers: a forwarded tx's outcome and an attestation. None may
// panic; an outcome that decodes encodes back to what it said.
func FuzzPeerAnswer(f *testing.F) {
	k, _ := protocol.GenerateKey(nil)
	tx := protocol.SignTx(k, protocol.Tx{Channel: protocol.ChannelID{7}, Function: "chat::send", Nonce: 1})
	out := &protocol.Outcome{Height: 4, Kind: protocol.EntryCall, Hash: tx.Hash(), Result: protocol.Result{GasUsed: 9}}
	seed, _ := proto.Marshal(outcomeToPB(out))
	f.Add(seed)
	f.Add(protocol.Marshal(&protocol.Attestation{Epoch: 2}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r peerpb.TxOutcome
		if proto.Unmarshal(raw, &r) == nil {
			if o, err := outcomeFromPB(tx, &r); err == nil {
				again, err := outcomeFromPB(tx, outcomeToPB(o))
				if err != nil || again.Height != o.Height || again.Digest != o.Digest || again.Result != o.Result {
					t.Fatalf("an outcome does not survive re-encoding: %v", err)
				}
			}
		}
		var a protocol.Attestation
		_ = protocol.Unmarshal(raw, &a)
	})
}
