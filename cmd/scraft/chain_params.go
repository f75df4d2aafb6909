package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/scraft/scraft/settlement/contract"
)

// chainParamsHelp says what the chain setting flags mean, for the help of
// the commands that create a chain.
const chainParamsHelp = `

A new chain's settings (--heartbeat-ttl, --ban, --vote-window,
--complaint-window, --report-cooldown, --initial-balance) are fixed at its
genesis and kept in its state: nodes read them from the chain. Leave them at
their defaults for anything but tests. A ban or a vote window shorter than
the heartbeat TTL, a TTL under 1s, or a window of zero is refused.`

// chainParamsFlags are the flags of a new chain's settings
// (contract.Params); they map 1:1 to its fields.
type chainParamsFlags struct {
	p contract.Params
	f *pflag.FlagSet
}

func newChainParamsFlags(f *pflag.FlagSet) *chainParamsFlags {
	pf := &chainParamsFlags{p: contract.DefaultParams(), f: f}
	d := contract.DefaultParams()
	f.DurationVar(&pf.p.HeartbeatTTL, "heartbeat-ttl", d.HeartbeatTTL, "new chain: how long a member's keep_alive keeps it valid (a leader whose heartbeat is older may be replaced); at least 1s")
	f.DurationVar(&pf.p.BanDuration, "ban", d.BanDuration, "new chain: how long a punished member may not rejoin; at least --heartbeat-ttl")
	f.DurationVar(&pf.p.VoteWindow, "vote-window", d.VoteWindow, "new chain: how long a punish or election proposal takes votes; at least --heartbeat-ttl")
	f.DurationVar(&pf.p.CensorshipWindow, "complaint-window", d.CensorshipWindow, "new chain: how long a leader has to answer a censorship complaint, in a channel that sets no --censorship-window of its own")
	f.DurationVar(&pf.p.ReportCooldown, "report-cooldown", d.ReportCooldown, "new chain: how long a member whose punish case was voted down may not report again in that channel")
	f.Uint64Var(&pf.p.InitialBalance, "initial-balance", d.InitialBalance, "new chain: what an account holds when first used")
	return pf
}

var chainParamsFlagNames = []string{"heartbeat-ttl", "ban", "vote-window", "complaint-window", "report-cooldown", "initial-balance"}

// given reports whether any setting was given on the command line.
func (pf *chainParamsFlags) given() bool {
	for _, n := range chainParamsFlagNames {
		if pf.f.Changed(n) {
			return true
		}
	}
	return false
}

// params returns the settings given, checked: the defaults with the flags
// given over them, or the zero Params when none was given (an existing
// chain keeps its own; a new one takes the defaults).
func (pf *chainParamsFlags) params() (contract.Params, error) {
	if !pf.given() {
		return contract.Params{}, nil
	}
	if err := pf.p.Validate(); err != nil {
		return contract.Params{}, fmt.Errorf("chain settings (%s): %w", "--"+strings.Join(chainParamsFlagNames, ", --"), err)
	}
	return pf.p, nil
}

// chainParamsLog are a chain's settings as log key/values.
func chainParamsLog(p contract.Params) []any {
	return []any{"heartbeat_ttl", p.HeartbeatTTL, "ban", p.BanDuration, "vote_window", p.VoteWindow,
		"complaint_window", p.CensorshipWindow, "report_cooldown", p.ReportCooldown, "initial_balance", p.InitialBalance}
}
