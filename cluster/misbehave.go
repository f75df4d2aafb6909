package cluster

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/scraft/scraft/protocol"
)

// tamperFunc changes a batch this leader signed before it reaches Raft and
// reports whether it did (the batch is then signed again). It exists to
// test the followers' side of accountability: only tests and binaries
// built with the scraft_misbehave tag (misbehave_tag.go) ever set it.
type tamperFunc func(self protocol.Address, b *protocol.Batch) bool

// tamperHook is nil in every ordinary build: the leader signs what it
// executed.
var tamperHook atomic.Pointer[tamperFunc]

// tamper applies the hook, if any, to a batch this node signed.
func (c *Channel) tamper(b *protocol.Batch) {
	if h := tamperHook.Load(); h != nil && (*h)(c.me(), b) {
		c.logger.Warn("misbehaving: signing a tampered batch", "first_height", b.FirstHeight)
		b.Sign(c.cfg.Key)
	}
}

// misbehaviour returns the tamperFunc a spec names, which acts once per
// channel, on the batch that holds HEIGHT:
//
//	tamper:HEIGHT     claim one more gas unit than the entry at HEIGHT used
//	forgejoin:HEIGHT  put in place of the entry at HEIGHT the join of a
//	                  made-up member under join seq 1, claimed to succeed
//
// Both are results a follower computes otherwise: evidence the chain can
// judge.
func misbehaviour(spec string) (tamperFunc, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	h, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || h == 0 {
		return nil, fmt.Errorf("misbehaviour %q: want KIND:HEIGHT", spec)
	}
	var change func(b *protocol.Batch, i uint64)
	switch kind {
	case "tamper":
		change = func(b *protocol.Batch, i uint64) { b.Results[i].GasUsed++ }
	case "forgejoin":
		change = func(b *protocol.Batch, i uint64) {
			k, _ := protocol.GenerateKey(nil)
			b.Entries[i] = protocol.Entry{Kind: protocol.EntryJoin,
				Join: &protocol.MemberJoin{Member: k.Address(), PublicKey: k.Public(), JoinSeq: 1}}
			b.Results[i] = protocol.Result{Status: protocol.StatusOK, ChangeSet: protocol.ChangeSet{}.Hash()}
		}
	default:
		return nil, fmt.Errorf("misbehaviour %q: unknown kind %q (tamper, forgejoin)", spec, kind)
	}
	var mu sync.Mutex
	done := map[protocol.ChannelID]bool{}
	return func(_ protocol.Address, b *protocol.Batch) bool {
		mu.Lock()
		defer mu.Unlock()
		if h < b.FirstHeight || h > b.LastHeight() || done[b.Channel] {
			return false
		}
		done[b.Channel] = true
		change(b, h-b.FirstHeight)
		return true
	}, nil
}

// onlyLeader restricts f to batches that leader self signs: in-process
// tests run every node with the one hook.
func onlyLeader(self protocol.Address, f tamperFunc) tamperFunc {
	return func(leader protocol.Address, b *protocol.Batch) bool {
		return leader == self && f(leader, b)
	}
}
