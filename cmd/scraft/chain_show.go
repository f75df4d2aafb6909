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

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// chainChannelView is what `scraft chain show` prints.
type chainChannelView struct {
	Channel       protocol.ChannelID `json:"channel"`
	Contract      string             `json:"contract"`
	CodeHash      string             `json:"code_hash"`
	Creator       protocol.Address   `json:"creator"`
	Labels        map[string]string  `json:"labels"` // encoding/json sorts the keys
	TickInterval  string             `json:"tick_interval"`
	GasLimit      uint64             `json:"gas_limit"`
	VMVersion     uint32             `json:"vm_version"`
	GasTable      uint32             `json:"gas_table_version"`
	MinStake      uint64             `json:"min_stake"`
	Fine          uint64             `json:"fine"`
	Closed        bool               `json:"closed"`
	Leader        *protocol.Address  `json:"leader"`
	Epoch         uint64             `json:"epoch"`
	SettledHeight uint64             `json:"settled_height"`
	SettledDigest string             `json:"settled_digest"`
	ChainTimeMs   int64              `json:"chain_time_ms"`
	Members       []chainMemberView  `json:"members"`
	// Epochs are the latest epochs and who led each, as the chain keeps
	// them; Departures the latest ended memberships.
	Epochs       []chainEpochView     `json:"epochs"`
	Departures   []chainDepartureView `json:"departures"`
	Proposals    []chainProposalView  `json:"proposals"`
	SettledState []chainStateEntry    `json:"settled_state"`
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
	// NodeAddress is where the member's node serves the channel, as the
	// member published it ("" when it has not).
	NodeAddress string `json:"node_address"`
}

type chainProposalView struct {
	ID         uint64           `json:"id"`
	Kind       string           `json:"kind"`
	Proposer   protocol.Address `json:"proposer"`
	Status     string           `json:"status"`
	For        uint32           `json:"for"`
	Against    uint32           `json:"against"`
	Abstain    uint32           `json:"abstain"`
	Electorate uint32           `json:"electorate"`
}

func chainShowCmd() *cobra.Command {
	var (
		cc     chainClient
		asJSON bool
		lim    chainShowLimits
	)
	cmd := &cobra.Command{
		Use:   "show CHANNEL",
		Short: "Show a channel: members, leader, epochs, departures, heartbeats, settlement, proposals",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
	cc.flags(cmd)
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
		Proposals: []chainProposalView{}, SettledState: []chainStateEntry{},
	}
	for _, l := range info.Labels {
		v.Labels[l.Key] = l.Value
	}
	if !info.Leader.IsZero() {
		leader := info.Leader
		v.Leader = &leader
	}
	for _, m := range info.Members {
		mv := chainMemberView{Address: m.Address, JoinSeq: m.JoinSeq, LastHeartbeatMs: m.LastHeartbeat, Valid: m.Valid,
			Collateral: m.Collateral.String(), Locked: m.Locked, Leaving: m.Leaving(), Delegators: m.Delegators,
			NodeAddress: m.NodeAddress}
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
	for pid := first; pid <= info.LastProposal && lim.proposals > 0; pid++ {
		p, err := c.Proposal(ctx, id, pid)
		if err != nil {
			return nil, err
		}
		v.Proposals = append(v.Proposals, chainProposalView{ID: p.ID, Kind: p.Kind.String(), Proposer: p.Proposer, Status: p.Status.String(),
			For: p.For, Against: p.Against, Abstain: p.Abstain, Electorate: p.Electorate})
	}
	for _, k := range st.Keys() {
		v.SettledState = append(v.SettledState, chainStateEntry{Account: k.Account, Type: k.Type, Value: hex.EncodeToString(st[k])})
	}
	return v, nil
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
		case m.Delegators > 0:
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
	fmt.Fprintln(tw, "ID\tKIND\tSTATUS\tFOR\tAGAINST\tABSTAIN\tOF\tPROPOSER")
	for _, p := range v.Proposals {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", p.ID, p.Kind, p.Status, p.For, p.Against, p.Abstain, p.Electorate, p.Proposer)
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
