package comet

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/scraft/scraft/settlement/contract"
)

// AppState is the application's part of a chain's genesis (genesis.json's
// app_state): the chain's settings. Every validator of a chain holds the
// same genesis; its settings are stored in the contract's state at
// InitChain and the state hash chains on them (contract.GenesisHash), so a
// validator with other settings computes other app hashes from block 1 on
// and cannot take part.
type AppState struct {
	Params GenesisParams `json:"params"`
}

// GenesisParams are contract.Params as genesis.json writes them: durations
// as Go duration strings ("15s"), so that the file reads as it means.
type GenesisParams struct {
	InitialBalance   uint64 `json:"initial_balance,string"`
	HeartbeatTTL     string `json:"heartbeat_ttl"`
	BanDuration      string `json:"ban_duration"`
	VoteWindow       string `json:"vote_window"`
	CensorshipWindow string `json:"censorship_window"`
	ReportCooldown   string `json:"report_cooldown"`
}

// NewAppState returns the app_state of a chain with settings p.
func NewAppState(p contract.Params) AppState {
	return AppState{Params: GenesisParams{
		InitialBalance:   p.InitialBalance,
		HeartbeatTTL:     p.HeartbeatTTL.String(),
		BanDuration:      p.BanDuration.String(),
		VoteWindow:       p.VoteWindow.String(),
		CensorshipWindow: p.CensorshipWindow.String(),
		ReportCooldown:   p.ReportCooldown.String(),
	}}
}

// ParseAppState reads a genesis app_state. An empty one (a chain written
// before its settings were part of genesis) stands for the defaults.
// Unknown fields and settings that do not validate are refused.
func ParseAppState(raw []byte) (contract.Params, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) || bytes.Equal(raw, []byte("{}")) {
		return contract.DefaultParams(), nil
	}
	var st AppState
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&st); err != nil {
		return contract.Params{}, fmt.Errorf("comet: genesis app_state: %w", err)
	}
	if d.More() {
		return contract.Params{}, fmt.Errorf("comet: genesis app_state: data after the object")
	}
	p := contract.Params{InitialBalance: st.Params.InitialBalance}
	for _, f := range []struct {
		name string
		s    string
		d    *time.Duration
	}{
		{"heartbeat_ttl", st.Params.HeartbeatTTL, &p.HeartbeatTTL},
		{"ban_duration", st.Params.BanDuration, &p.BanDuration},
		{"vote_window", st.Params.VoteWindow, &p.VoteWindow},
		{"censorship_window", st.Params.CensorshipWindow, &p.CensorshipWindow},
		{"report_cooldown", st.Params.ReportCooldown, &p.ReportCooldown},
	} {
		d, err := time.ParseDuration(f.s)
		if err != nil {
			return contract.Params{}, fmt.Errorf("comet: genesis app_state: params.%s: %w", f.name, err)
		}
		*f.d = d
	}
	if err := p.Validate(); err != nil {
		return contract.Params{}, fmt.Errorf("comet: genesis app_state: %w", err)
	}
	return p, nil
}
