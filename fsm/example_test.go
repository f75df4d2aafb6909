package fsm_test

import (
	"bytes"
	"fmt"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// counter is a one-function contract: "inc" adds one to a counter.
type counter struct{}

func (counter) Has(string) bool { return false }

func (counter) Execute(c protocol.Call, st protocol.StateReader) protocol.CallResult {
	if c.Function != "inc" {
		return protocol.CallResult{Status: protocol.StatusBadInput}
	}
	k := protocol.ResourceKey{Account: c.Sender, Type: "counter::Count"}
	old, ok := st.Get(k)
	ch := protocol.Change{Key: k, Kind: protocol.OpNew, New: []byte{1}}
	if ok {
		ch = protocol.Change{Key: k, Kind: protocol.OpModify, Old: old, New: []byte{old[0] + 1}}
	}
	return protocol.CallResult{Status: protocol.StatusOK, GasUsed: 1, ChangeSet: protocol.ChangeSet{Changes: []protocol.Change{ch}}}
}

// A leader proposes a batch, a follower applies it, and the leader applies
// it too, reusing what it computed when proposing.
func Example() {
	key, _ := protocol.KeyFromSeed(bytes.Repeat([]byte{7}, 32))
	cfg := fsm.DefaultConfig()
	cfg.Channel = protocol.ChannelID{1}
	cfg.Contract = "counter"
	cfg.Genesis.Members = []fsm.Member{{Address: key.Address(), PublicKey: key.Public(), JoinSeq: 1}}
	cfg.Genesis.HighestJoinSeq = 1

	leader, _ := fsm.New(cfg, counter{})
	follower, _ := fsm.New(cfg, counter{})

	var entries []protocol.Entry
	for nonce := uint64(1); nonce <= 3; nonce++ {
		tx := protocol.SignTx(key, protocol.Tx{Channel: cfg.Channel, Nonce: nonce, Function: "counter::inc"})
		entries = append(entries, protocol.Entry{Kind: protocol.EntryCall, Call: tx})
	}
	batch, _, err := leader.Propose(entries, 1, key, 1000)
	if err != nil {
		panic(err)
	}
	f, _ := follower.Apply(batch, nil)
	l, _ := leader.Apply(batch, nil)
	v, _ := follower.Get(protocol.ResourceKey{Account: key.Address(), Type: "counter::Count"})
	fmt.Println("height", follower.Height(), "count", v[0], "same digest", f.Digest == l.Digest, "reused", l.Reused)
	// Output: height 3 count 3 same digest true reused true
}
