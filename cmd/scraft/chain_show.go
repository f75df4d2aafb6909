package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// chainABIView is a channel's ABI record as chain show prints it: there
// or not, and its hash, never the JSON itself.
type chainABIView struct {
	Present bool   `json:"present"`
	Hash    string `json:"hash,omitempty"`
	Bytes   int    `json:"bytes,omitempty"`
}

// chainChannelView is what `scraft chain show` prints.
type chainChannelView struct {
	Channel  protocol.ChannelID `json:"channel"`
	Contract string             `json:"contract"`
	CodeHash string             `json:"code_hash"`
	// ABI says whether the channel's creator recorded the contract's ABI
	// with its code, and its hash; scraft call and subscribe read it.
	ABI           chainABIView      `json:"abi"`
	Creator       protocol.Address  `json:"creator"`
	Labels        map[string]string `json:"labels"` // encoding/json sorts the keys
	TickInterval  string            `json:"tick_interval"`
	GasLimit      uint64            `json:"gas_limit"`
	VMVersion     uint32            `json:"vm_version"`
	GasTable      uint32            `json:"gas_table_version"`
	MinStake      uint64            `json:"min_stake"`
	Fine          uint64            `json:"fine"`
	Closed        bool              `json:"closed"`
	Leader        *protocol.Address `json:"leader"`
	Epoch         uint64            `json:"epoch"`
	SettledHeight uint64            `json:"settled_height"`
	SettledDigest string            `json:"settled_digest"`
	ChainTimeMs   int64             `json:"chain_time_ms"`
	Members       []chainMemberView `json:"members"`
	// Epochs are the latest epochs and who led each, as the chain keeps
	// them; Departures the latest ended memberships.
	Epochs     []chainEpochView     `json:"epochs"`
	Departures []chainDepartureView `json:"departures"`
	Proposals  []chainProposalView  `json:"proposals"`
	// Complaints, Punishments and Bans are read from the proposals shown:
	// censorship complaints, punish cases, and the bans of executed
	// punishments that have not ended at ChainTimeMs.
	Complaints   []chainComplaintView  `json:"complaints"`
	Punishments  []chainPunishmentView `json:"punishments"`
	Bans         []chainBanView        `json:"bans"`
	SettledState []chainStateEntry     `json:"settled_state"`
}

type chainEpochView struct {
	Epoch  uint64            `json:"epoch"`
	Leader *protocol.Address `json:"leader"` // null: no leader in that epoch
	Height uint64            `json:"height"` // block that began it
}

type chainDepartureView struct {
	JoinSeq uint64           `json:"join_seq"`
	Address protocol.Address `json:"address"`
	Height  uint64           `json:"height"` // block that ended it
	Epoch   uint64           `json:"epoch"`  // the channel's epoch then
}

type chainMemberView struct {
	Address         protocol.Address  `json:"address"`
	JoinSeq         uint64            `json:"join_seq"`
	LastHeartbeatMs int64             `json:"last_heartbeat_ms"`
	Valid           bool              `json:"valid"`
	Collateral      string            `json:"collateral"`
	Locked          uint64            `json:"locked"`
	Leaving         bool              `json:"leaving"`
	DelegatedTo     *protocol.Address `json:"delegated_to,omitempty"`
	Delegators      uint32            `json:"delegators"`
	// Candidate says the member is one of the channel's candidates (a
	// channel of more than 5 members), as the chain's record holds them.
	Candidate bool `json:"candidate"`
	// NodeAddress is where the member's node serves the channel, as the
	// member published it ("" when it has not).
	NodeAddress string `json:"node_address"`
}

type chainProposalView struct {
	ID       uint64           `json:"id"`
	Kind     string           `json:"kind"`
	Proposer protocol.Address `json:"proposer"`
	// Status is the record's; State where the proposal stands at the
	// chain time shown: open, passed (waiting for execution), executed,
	// failed (cannot pass, or its voting closed without the votes),
	// refuted.
	Status  string `json:"status"`
	State   string `json:"state"`
	For     uint32 `json:"for"`
	Against uint32 `json:"against"`
	Abstain uint32 `json:"abstain"`
	// Needed votes in favour of Voters, the members who may vote.
	Needed     uint32 `json:"needed"`
	Voters     uint32 `json:"voters"`
	Electorate uint32 `json:"electorate"` // members when it was filed
	// DeadlineMs is a complaint's answer deadline or the end of voting on
	// a punishment or election (chain time; 0: none).
	DeadlineMs     int64  `json:"deadline_ms"`
	ExecutedHeight uint64 `json:"executed_height,omitempty"`
}

type chainComplaintView struct {
	Proposal   uint64           `json:"proposal"`
	Complainer protocol.Address `json:"complainer"`
	Accused    protocol.Address `json:"accused"`
	Tx         string           `json:"tx"`
	DeadlineMs int64            `json:"deadline_ms"`
	State      string           `json:"state"` // open, passed (unanswered), executed (closed the channel), refuted
}

type chainPunishmentView struct {
	Proposal uint64           `json:"proposal"`
	Target   protocol.Address `json:"target"`
	Reporter protocol.Address `json:"reporter"`
	// Epoch and Height name the offence: one case each.
	Epoch  uint64 `json:"epoch"`
	Height uint64 `json:"height"`
	Reason string `json:"reason"`
	State  string `json:"state"`
	// Fine is what an executed punishment took for the reporter (none
	// in a channel of 2); BanUntilMs when its ban ends.
	Fine       uint64 `json:"fine"`
	BanUntilMs int64  `json:"ban_until_ms,omitempty"`
}

type chainBanView struct {
	Address  protocol.Address `json:"address"`
	UntilMs  int64            `json:"until_ms"`
	Proposal uint64           `json:"proposal"`
}

func chainShowCmd() *cobra.Command {
	var (
		cc     chainClient
		asJSON bool
		lim    chainShowLimits
	)
	cmd := &cobra.Command{
		Use:   "show CHANNEL",
		Short: "Show a channel: members, leader, epochs, departures, heartbeats, settlement, proposals, complaints, punishments, bans",
		Args:  cc.channelArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = cc.withChannel(args)
			id, err := protocol.ParseChannelID(args[0])
			if err != nil {
				return err
			}
			return cc.run(cmd, false, func(ctx context.Context, c *devchain.Client) error {
				v, err := chainLoadChannelView(ctx, c, id, lim)
				if err != nil {
					return err
				}
				if asJSON {
					enc := json.NewEncoder(cmd.OutOrStdout())
					enc.SetIndent("", "  ")
					return enc.Encode(v)
				}
				return chainPrintChannel(cmd.OutOrStdout(), v)
			})
		},
	}
	cc.queryFlags(cmd)
	cc.channelFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of tables")
	cmd.Flags().Uint64Var(&lim.proposals, "proposals", 20, "show at most this many of the latest proposals")
	cmd.Flags().Uint64Var(&lim.epochs, "epochs", 10, "show who led at most this many of the latest epochs")
	cmd.Flags().Uint64Var(&lim.departures, "departures", 20, "show at most this many of the latest ended memberships")
	return cmd
}

// chainShowLimits bounds the history `scraft chain show` reads: one query
// per proposal, epoch and departure.
type chainShowLimits struct{ proposals, epochs, departures uint64 }

func chainLoadChannelView(ctx context.Context, c *devchain.Client, id protocol.ChannelID, lim chainShowLimits) (*chainChannelView, error) {
	info, err := c.Channel(ctx, id)
	if err != nil {
		return nil, err
	}
	st, err := c.SettledState(ctx, id)
	if err != nil {
		return nil, err
	}
	v := &chainChannelView{
		Channel: info.ID, Contract: info.Contract, CodeHash: info.CodeHash.String(), Creator: info.Creator,
		Labels: map[string]string{}, TickInterval: info.Config.TickInterval.String(), GasLimit: info.Config.GasLimit,
		VMVersion: info.Config.VM(), GasTable: info.Config.GasTable(),
		MinStake: info.Config.MinStake, Fine: info.Config.Fine, Closed: info.Closed, Epoch: info.Epoch,
		SettledHeight: info.SettledHeight, SettledDigest: info.SettledDigest.String(), ChainTimeMs: info.AtMs,
		Members: []chainMemberView{}, Epochs: []chainEpochView{}, Departures: []chainDepartureView{},
		Proposals: []chainProposalView{}, Complaints: []chainComplaintView{}, Punishments: []chainPunishmentView{},
		Bans: []chainBanView{}, SettledState: []chainStateEntry{},
	}
	for _, l := range info.Labels {
		v.Labels[l.Key] = l.Value
	}
	switch abi, err := c.ABI(ctx, id); {
	case err == nil:
		v.ABI = chainABIView{Present: true, Hash: abi.Hash.String(), Bytes: len(abi.JSON)}
	case !errors.Is(err, contract.ErrNoABI):
		return nil, fmt.Errorf("read the channel's ABI: %w", err)
	}
	if !info.Leader.IsZero() {
		leader := info.Leader
		v.Leader = &leader
	}
	for _, m := range info.Members {
		mv := chainMemberView{Address: m.Address, JoinSeq: m.JoinSeq, LastHeartbeatMs: m.LastHeartbeat, Valid: m.Valid,
			Collateral: m.Collateral.String(), Locked: m.Locked, Leaving: m.Leaving(), Delegators: m.Delegators,
			Candidate: slices.Contains(info.Candidates, m.Address), NodeAddress: m.NodeAddress}
		if !m.DelegatedTo.IsZero() {
			d := m.DelegatedTo
			mv.DelegatedTo = &d
		}
		v.Members = append(v.Members, mv)
	}
	for e := info.Epoch - min(info.Epoch, lim.epochs-1); e <= info.Epoch && lim.epochs > 0; e++ {
		el, err := c.EpochLeader(ctx, id, e)
		if errors.Is(err, contract.ErrNoEpochLeader) {
			continue // begun before the chain kept these records
		}
		if err != nil {
			return nil, err
		}
		ev := chainEpochView{Epoch: el.Epoch, Height: el.Height}
		if !el.Leader.IsZero() {
			a := el.Leader
			ev.Leader = &a
		}
		v.Epochs = append(v.Epochs, ev)
	}
	current := make(map[uint64]bool, len(info.Members))
	for _, m := range info.Members {
		current[m.JoinSeq] = true
	}
	for seq := info.LastJoinSeq; seq > 0 && uint64(len(v.Departures)) < lim.departures; seq-- {
		if current[seq] {
			continue
		}
		dp, err := c.Departure(ctx, id, seq)
		if errors.Is(err, contract.ErrNoDeparture) {
			continue // ended before the chain kept these records
		}
		if err != nil {
			return nil, err
		}
		v.Departures = append(v.Departures, chainDepartureView{JoinSeq: dp.JoinSeq, Address: dp.Address, Height: dp.Height, Epoch: dp.Epoch})
	}
	slices.Reverse(v.Departures)
	first := uint64(1)
	if info.LastProposal > lim.proposals {
		first = info.LastProposal - lim.proposals + 1
	}
	var params contract.Params // the chain's ban duration, read once there is a proposal to show
	for pid := first; pid <= info.LastProposal && lim.proposals > 0; pid++ {
		p, err := c.Proposal(ctx, id, pid)
		if err != nil {
			return nil, err
		}
		if params.BanDuration == 0 {
			if params, err = c.Params(ctx); err != nil {
				return nil, err
			}
		}
		chainAddProposal(v, &info.Channel, &p.Proposal, params.BanDuration)
	}
	for _, k := range st.Keys() {
		v.SettledState = append(v.SettledState, chainStateEntry{Account: k.Account, Type: k.Type, Value: hex.EncodeToString(st[k])})
	}
	return v, nil
}

// chainAddProposal adds p to the view, and to its complaints,
// punishments and bans (of the chain's ban duration) by kind.
func chainAddProposal(v *chainChannelView, ch *contract.Channel, p *contract.Proposal, ban time.Duration) {
	state := p.Standing(v.ChainTimeMs).String()
	voters := p.ElectorateSize()
	if p.Kind == protocol.ProposalCensorship {
		voters = 0 // decided by the deadline, not by votes
	}
	v.Proposals = append(v.Proposals, chainProposalView{ID: p.ID, Kind: p.Kind.String(), Proposer: p.Proposer,
		Status: p.Status.String(), State: state, For: p.For, Against: p.Against, Abstain: p.Abstain,
		Needed: p.VotesNeeded(), Voters: voters, Electorate: p.Electorate,
		DeadlineMs: p.DeadlineMs, ExecutedHeight: p.ExecutedHeight})
	switch p.Kind {
	case protocol.ProposalCensorship:
		var c protocol.Censorship
		if protocol.Unmarshal(p.Data, &c) != nil {
			return
		}
		v.Complaints = append(v.Complaints, chainComplaintView{Proposal: p.ID, Complainer: p.Proposer, Accused: c.Accused,
			Tx: c.Tx.Hash().String(), DeadlineMs: p.DeadlineMs, State: state})
	case protocol.ProposalPunish:
		var pu protocol.Punish
		if protocol.Unmarshal(p.Data, &pu) != nil {
			return
		}
		pv := chainPunishmentView{Proposal: p.ID, Target: pu.Target, Reporter: p.Proposer, Height: pu.Height, Reason: pu.Reason, State: state}
		if b, err := protocol.DecodeBatch(pu.Batch); err == nil {
			pv.Epoch = b.Epoch
		}
		if p.Status == contract.ProposalExecuted {
			if p.Electorate >= 3 {
				pv.Fine = ch.Config.Fine // at most the minimum stake: paid in full
			}
			if p.ExecutedAtMs != 0 {
				pv.BanUntilMs = p.ExecutedAtMs + ban.Milliseconds()
			}
			if pv.BanUntilMs > v.ChainTimeMs {
				v.Bans = append(v.Bans, chainBanView{Address: pu.Target, UntilMs: pv.BanUntilMs, Proposal: p.ID})
			}
		}
		v.Punishments = append(v.Punishments, pv)
	}
}

// chainIn says how far chain time at is from now: "in 9m30s", "3s ago",
// "-" for none.
func chainIn(nowMs, atMs int64) string {
	if atMs == 0 {
		return "-"
	}
	d := time.Duration(atMs-nowMs) * time.Millisecond
	if d < 0 {
		return (-d).String() + " ago"
	}
	return "in " + d.String()
}

// chainDeadline shows a deadline while it still matters: for an open
// proposal.
func chainDeadline(nowMs int64, state string, atMs int64) string {
	if state != contract.ProposalOpen.String() {
		return "-"
	}
	return chainIn(nowMs, atMs)
}

// chainPrintable makes a reporter's free text safe for a terminal: no
// control characters or escape sequences, at most max runes.
func chainPrintable(s string, max int) string {
	out := make([]rune, 0, min(len(s), max))
	for _, r := range s {
		if len(out) == max {
			return string(out) + "…"
		}
		if !unicode.IsPrint(r) {
			r = '?'
		}
		out = append(out, r)
	}
	return string(out)
}

func chainPrintChannel(w io.Writer, v *chainChannelView) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	leader := "none"
	if v.Leader != nil {
		leader = v.Leader.String()
	}
	state := "open"
	if v.Closed {
		state = "closed"
	}
	now := time.UnixMilli(v.ChainTimeMs).UTC()
	fmt.Fprintf(tw, "channel\t%s (%s)\n", v.Channel, state)
	fmt.Fprintf(tw, "contract\t%s (code %s)\n", v.Contract, v.CodeHash)
	if v.ABI.Present {
		fmt.Fprintf(tw, "abi\t%s (%d bytes)\n", v.ABI.Hash, v.ABI.Bytes)
	} else {
		fmt.Fprintf(tw, "abi\tnone on record\n")
	}
	fmt.Fprintf(tw, "creator\t%s\n", v.Creator)
	fmt.Fprintf(tw, "leader\t%s\n", leader)
	fmt.Fprintf(tw, "epoch\t%d\n", v.Epoch)
	fmt.Fprintf(tw, "settled\theight %d, digest %s\n", v.SettledHeight, v.SettledDigest)
	fmt.Fprintf(tw, "config\ttick %s, gas %d, min stake %d, fine %d\n", v.TickInterval, v.GasLimit, v.MinStake, v.Fine)
	fmt.Fprintf(tw, "versions\tvm %d, gas table %d\n", v.VMVersion, v.GasTable)
	fmt.Fprintf(tw, "chain time\t%s\n", now.Format(time.RFC3339Nano))
	for _, k := range chainSortedKeys(v.Labels) {
		fmt.Fprintf(tw, "label\t%s=%s\n", k, v.Labels[k])
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nmembers (%d)\n", len(v.Members))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tADDRESS\tNODE\tVALID\tHEARTBEAT AGO\tCOLLATERAL\tLOCKED\tROLE")
	for _, m := range v.Members {
		role := ""
		switch {
		case v.Leader != nil && *v.Leader == m.Address:
			role = "leader"
		case m.Leaving:
			role = "leaving"
		case m.DelegatedTo != nil:
			role = "delegates to " + m.DelegatedTo.String()
		case m.Candidate:
			role = fmt.Sprintf("candidate (%d delegators)", m.Delegators)
		}
		ago := time.Duration(v.ChainTimeMs-m.LastHeartbeatMs) * time.Millisecond
		node := m.NodeAddress
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%v\t%s\t%s\t%d\t%s\n", m.JoinSeq, m.Address, node, m.Valid, ago, m.Collateral, m.Locked, role)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nepochs (%d shown)\n", len(v.Epochs))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EPOCH\tLEADER\tFROM BLOCK")
	for _, e := range v.Epochs {
		leader := "none"
		if e.Leader != nil {
			leader = e.Leader.String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\n", e.Epoch, leader, e.Height)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\ndepartures (%d shown)\n", len(v.Departures))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tADDRESS\tAT BLOCK\tIN EPOCH")
	for _, d := range v.Departures {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\n", d.JoinSeq, d.Address, d.Height, d.Epoch)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nproposals (%d shown)\n", len(v.Proposals))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTATE\tFOR\tAGAINST\tABSTAIN\tNEEDED\tOF\tDEADLINE\tPROPOSER")
	for _, p := range v.Proposals {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", p.ID, p.Kind, p.State, p.For, p.Against, p.Abstain,
			p.Needed, p.Voters, chainDeadline(v.ChainTimeMs, p.State, p.DeadlineMs), p.Proposer)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\ncomplaints (%d)\n", len(v.Complaints))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROPOSAL\tSTATE\tCOMPLAINER\tACCUSED\tDEADLINE\tTX")
	for _, c := range v.Complaints {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", c.Proposal, c.State, c.Complainer, c.Accused, chainDeadline(v.ChainTimeMs, c.State, c.DeadlineMs), c.Tx)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\npunishments (%d)\n", len(v.Punishments))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROPOSAL\tSTATE\tTARGET\tEPOCH\tHEIGHT\tREPORTER\tFINE\tREASON")
	for _, p := range v.Punishments {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%d\t%s\n", p.Proposal, p.State, p.Target, p.Epoch, p.Height, p.Reporter, p.Fine, chainPrintable(p.Reason, 80))
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nbans (%d)\n", len(v.Bans))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tENDS\tPROPOSAL")
	for _, b := range v.Bans {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", b.Address, chainIn(v.ChainTimeMs, b.UntilMs), b.Proposal)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nsettled state (%d resources)\n", len(v.SettledState))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tTYPE\tBYTES\tVALUE")
	for _, e := range v.SettledState {
		val := e.Value
		if len(val) > 64 {
			val = val[:64] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", e.Account, e.Type, len(e.Value)/2, val)
	}
	return tw.Flush()
}

func chainSortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
