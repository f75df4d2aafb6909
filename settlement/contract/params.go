package contract

import (
	"errors"
	"fmt"
	"time"

	"github.com/scraft/scraft/protocol"
)

// Params are a chain's settings, fixed at its genesis: the money an
// account starts with and the chain-time windows of the rules. Genesis
// (InitGenesis) stores them in the chain state, where every call reads them,
// so they are covered by the state hash like any record: a validator
// started with other settings computes another state and is outvoted.
//
// The windows are in chain time (block time) and whole milliseconds.
// Production chains keep the defaults; a test chain whose time cannot be
// jumped (a chain of validators keeps the validators' clocks) sets short
// ones.
type Params struct {
	// InitialBalance is what an account holds when it is first used. A dev
	// chain has no mint or transfers: this is where money comes from.
	// Default 1,000,000.
	InitialBalance uint64
	// HeartbeatTTL is how long a keep_alive keeps a member valid; a leader
	// whose heartbeat is older may be replaced. Default 15 s.
	HeartbeatTTL time.Duration
	// BanDuration is how long a punished member may not rejoin. Default
	// 5 min; at least HeartbeatTTL.
	BanDuration time.Duration
	// VoteWindow is how long, in chain time from its creation, a punish
	// or election proposal takes votes. One without the votes in favour
	// it needs by then has failed: a case nobody can settle does not hang
	// over the target for good. Default 10 min; at least HeartbeatTTL.
	VoteWindow time.Duration
	// CensorshipWindow is how long a leader has to answer a censorship
	// complaint in a channel that does not set its own window
	// (ChannelConfig.CensorshipWindow). Default 30 s.
	CensorshipWindow time.Duration
	// ReportCooldown is how long, in chain time from the vote that failed
	// it, a member whose punish case was voted down may not file another
	// in that channel (DESIGN §7: what a false report costs). Default 1 h.
	ReportCooldown time.Duration
}

// The production values of the chain-time windows (DESIGN §5–§7), which
// DefaultParams holds. The rules never read these: they read the chain's
// Params from its state.
const (
	DefaultHeartbeatTTL     = 15 * time.Second
	DefaultBanDuration      = 5 * time.Minute
	DefaultVoteWindow       = 10 * time.Minute
	DefaultCensorshipWindow = 30 * time.Second
	DefaultReportCooldown   = time.Hour
)

// MinHeartbeatTTL bounds HeartbeatTTL from below: a node beats a third of
// it apart, and a chain tx takes a block or two to land.
const MinHeartbeatTTL = time.Second

// DefaultParams returns the production settings: every account starts with
// 1,000,000 units; heartbeats last 15 s, bans 5 min, votes 10 min, a
// censorship complaint's answer window 30 s and a false reporter's
// cooldown 1 h.
func DefaultParams() Params {
	return Params{
		InitialBalance:   1_000_000,
		HeartbeatTTL:     DefaultHeartbeatTTL,
		BanDuration:      DefaultBanDuration,
		VoteWindow:       DefaultVoteWindow,
		CensorshipWindow: DefaultCensorshipWindow,
		ReportCooldown:   DefaultReportCooldown,
	}
}

// ErrBadParams is returned for chain settings that make no sense.
var ErrBadParams = errors.New("contract: bad chain settings")

// Validate checks the settings against their bounds and each other.
func (p *Params) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadParams}, args...)...)
	}
	windows := []struct {
		name string
		d    time.Duration
	}{
		{"HeartbeatTTL", p.HeartbeatTTL},
		{"BanDuration", p.BanDuration},
		{"VoteWindow", p.VoteWindow},
		{"CensorshipWindow", p.CensorshipWindow},
		{"ReportCooldown", p.ReportCooldown},
	}
	for _, w := range windows {
		switch {
		case w.d <= 0:
			return bad("%s (%s) must be positive", w.name, w.d)
		case w.d%time.Millisecond != 0:
			return bad("%s (%s) must be a whole number of milliseconds", w.name, w.d)
		case w.d > MaxPolicyInterval:
			return bad("%s (%s) cannot be larger than %s", w.name, w.d, MaxPolicyInterval)
		}
	}
	switch {
	case p.HeartbeatTTL < MinHeartbeatTTL:
		return bad("HeartbeatTTL (%s) cannot be smaller than %s", p.HeartbeatTTL, MinHeartbeatTTL)
	case p.BanDuration < p.HeartbeatTTL:
		// A ban shorter than a heartbeat would let the punished member back
		// while its old heartbeat still made it valid.
		return bad("BanDuration (%s) cannot be smaller than HeartbeatTTL (%s)", p.BanDuration, p.HeartbeatTTL)
	case p.VoteWindow < p.HeartbeatTTL:
		// Members must have time to see a proposal and vote on it.
		return bad("VoteWindow (%s) cannot be smaller than HeartbeatTTL (%s)", p.VoteWindow, p.HeartbeatTTL)
	}
	return nil
}

// paramsVersion leads the encoding of Params.
const paramsVersion = 1

// Encode writes the canonical encoding.
func (p *Params) Encode(e *protocol.Encoder) {
	e.U8(paramsVersion)
	e.U64(p.InitialBalance)
	e.I64(int64(p.HeartbeatTTL))
	e.I64(int64(p.BanDuration))
	e.I64(int64(p.VoteWindow))
	e.I64(int64(p.CensorshipWindow))
	e.I64(int64(p.ReportCooldown))
}

// Decode reads p; settings that do not Validate fail the decoder.
func (p *Params) Decode(d *protocol.Decoder) {
	if v := d.U8(); d.Err() == nil && v != paramsVersion {
		d.Fail(fmt.Errorf("%w: settings version %d", ErrMalformed, v))
		return
	}
	p.InitialBalance = d.U64()
	p.HeartbeatTTL = time.Duration(d.I64())
	p.BanDuration = time.Duration(d.I64())
	p.VoteWindow = time.Duration(d.I64())
	p.CensorshipWindow = time.Duration(d.I64())
	p.ReportCooldown = time.Duration(d.I64())
	if d.Err() == nil {
		if err := p.Validate(); err != nil {
			d.Fail(err)
		}
	}
}

// Bytes returns the canonical encoding.
func (p Params) Bytes() []byte {
	e := protocol.NewEncoder(48)
	p.Encode(e)
	return e.Out()
}

// DecodeParams reads settings written by Bytes.
func DecodeParams(b []byte) (Params, error) {
	var p Params
	d := protocol.NewDecoder(b)
	p.Decode(d)
	return p, d.Finish()
}

// paramsKey holds the chain's Params.
var paramsKey = []byte{prefixParams}

// InitGenesis stores p, which must Validate, as the settings of the new
// chain whose state st is. A chain calls it once, before its first block.
func InitGenesis(st Store, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if st.Get(paramsKey) != nil {
		return fmt.Errorf("%w: the chain has its settings already", ErrBadParams)
	}
	put(st, paramsKey, &p)
	return nil
}

// GetParams returns the settings stored in st, and false when st holds
// none (a chain from before they were stored).
func GetParams(st Store) (Params, bool) {
	var p Params
	ok := get(st, paramsKey, &p)
	return p, ok
}

// GenesisHash is the state hash of a new chain with settings p: the hash the
// first block's writes chain on, so that every later state hash covers the
// settings.
func GenesisHash(p Params) protocol.Hash {
	return protocol.HashOf("scraft/genesis/v1", p.Bytes())
}
