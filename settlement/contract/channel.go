package contract

import (
	"fmt"
	"time"

	"github.com/scraft/scraft/protocol"
)

// createChannel stores the code once per hash and creates the channel with
// its initial state as the settled state at height 0.
func (x *exec) createChannel(c *CreateChannel) error {
	if c.Contract == "" || len(c.Contract) > MaxContractName {
		return fmt.Errorf("%w: contract name length %d", ErrMalformed, len(c.Contract))
	}
	if err := checkLabels(c.Labels); err != nil {
		return err
	}
	if err := checkConfig(&c.Config); err != nil {
		return err
	}
	hash := c.CodeHash
	switch {
	case len(c.Code) > MaxCodeLen:
		return fmt.Errorf("%w: code of %d bytes (max %d)", ErrTooLarge, len(c.Code), MaxCodeLen)
	case len(c.Code) > 0:
		hash = CodeHashOf(c.Code)
		if !c.CodeHash.IsZero() && c.CodeHash != hash {
			return fmt.Errorf("%w: code hash %s does not match the code", ErrMalformed, c.CodeHash)
		}
		if x.st.Get(codeKey(hash)) == nil {
			x.st.Put(codeKey(hash), c.Code)
		}
	case hash.IsZero():
		return fmt.Errorf("%w: no code and no code hash", ErrMalformed)
	case x.st.Get(codeKey(hash)) == nil:
		return fmt.Errorf("%w: no code stored under %s", ErrMalformed, hash)
	}
	for _, k := range c.InitialState.Keys() {
		if k.Type == "" || len(k.Type) > protocol.MaxTypeLen || len(c.InitialState[k]) > protocol.MaxValueLen {
			return fmt.Errorf("%w: initial state entry %s", ErrMalformed, k)
		}
	}
	if n := stateSize(c.InitialState); n > MaxInitialStateBytes {
		return fmt.Errorf("%w: initial state of %d bytes (max %d)", ErrTooLarge, n, MaxInitialStateBytes)
	}
	if len(c.ABI) > 0 {
		if err := checkABI(c.ABI); err != nil {
			return err
		}
	}

	e := protocol.NewEncoder(48)
	e.Fixed(x.env.Sender[:])
	e.Fixed(x.env.TxHash[:])
	h := protocol.HashOf("scraft/channel/v1", e.Out())
	var id protocol.ChannelID
	copy(id[:], h[:])
	if x.st.Get(channelKey(id)) != nil {
		return fmt.Errorf("%w: channel %s exists", ErrMalformed, id)
	}
	ch := &Channel{
		ID:            id,
		Creator:       x.env.Sender,
		Contract:      c.Contract,
		CodeHash:      hash,
		Labels:        append([]Label(nil), c.Labels...),
		Config:        c.Config,
		CreatedHeight: x.env.Height,
		CreatedAtMs:   x.env.TimeMs,
	}
	x.putChannel(ch)
	if len(c.ABI) > 0 {
		x.putABI(id, c.ABI)
	}
	st := c.InitialState
	if st == nil {
		st = protocol.State{}
	}
	put(x.st, initialKey(id), st)
	put(x.st, stateKey(id), st)
	x.rc.Channel = id
	x.emit(Event{Kind: EventChannelCreated, Channel: id, Member: x.env.Sender})
	return nil
}

// checkConfig bounds the settings a creator chooses freely: each ends up
// in every member's machine or loops.
func checkConfig(c *ChannelConfig) error {
	switch {
	case c.TickInterval < 0 || c.SettleInterval < 0 || c.CensorshipWindow < 0:
		return fmt.Errorf("%w: negative duration", ErrMalformed)
	case c.TickInterval != 0 && (c.TickInterval < MinTickInterval || c.TickInterval > MaxTickInterval):
		return fmt.Errorf("%w: tick interval %s outside [%s, %s]", ErrMalformed, c.TickInterval, MinTickInterval, MaxTickInterval)
	case c.TickInterval%time.Millisecond != 0:
		return fmt.Errorf("%w: tick interval %s is not a whole number of milliseconds", ErrMalformed, c.TickInterval)
	case c.SettleInterval > MaxPolicyInterval:
		return fmt.Errorf("%w: settle interval %s (max %s)", ErrTooLarge, c.SettleInterval, MaxPolicyInterval)
	case c.CensorshipWindow > MaxPolicyInterval:
		return fmt.Errorf("%w: censorship window %s (max %s)", ErrTooLarge, c.CensorshipWindow, MaxPolicyInterval)
	case c.GasLimit > MaxGasLimit:
		return fmt.Errorf("%w: gas limit %d (max %d)", ErrTooLarge, c.GasLimit, MaxGasLimit)
	case c.Fine > c.MinStake:
		// Every member's collateral is at least MinStake, so a fine no
		// larger is always paid in full; a larger one would be capped at
		// the collateral and the configured fine would be a promise the
		// chain cannot keep.
		return fmt.Errorf("%w: fine (%d) cannot be larger than the minimum stake (%d)", ErrMalformed, c.Fine, c.MinStake)
	}
	return nil
}

// stateSize returns the size of st's canonical encoding.
func stateSize(st protocol.State) int {
	e := protocol.NewEncoder(0)
	st.Encode(e)
	return len(e.Out())
}

func checkLabels(ls []Label) error {
	if len(ls) > MaxLabels {
		return fmt.Errorf("%w: %d labels (max %d)", ErrTooLarge, len(ls), MaxLabels)
	}
	for i, l := range ls {
		if l.Key == "" || len(l.Key) > MaxLabelKeyLen || len(l.Value) > MaxLabelValueLen {
			return fmt.Errorf("%w: label %q", ErrMalformed, l.Key)
		}
		if i > 0 && ls[i-1].Key >= l.Key {
			return fmt.Errorf("%w: labels unsorted or repeated at %q", ErrMalformed, l.Key)
		}
	}
	return nil
}

// close closes the channel. Its creator or any member may close it; members
// then leave at once, without waiting for a settlement.
func (x *exec) close(c *Close) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	if ch.Creator != x.env.Sender {
		if _, err := x.member(ch.ID, x.env.Sender); err != nil {
			return fmt.Errorf("%w: only the creator or a member may close", ErrNotMember)
		}
	}
	x.closeChannel(ch, x.env.Sender, 0)
	return nil
}

func (x *exec) closeChannel(ch *Channel, by protocol.Address, proposal uint64) {
	ch.Closed = true
	x.putChannel(ch)
	x.emit(Event{Kind: EventChannelClosed, Channel: ch.ID, Member: by, Proposal: proposal})
}
