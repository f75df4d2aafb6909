package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
)

func init() {
	rootCmd.AddCommand(statusCmd())
}

func statusCmd() *cobra.Command {
	var (
		api    apiClient
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status --node ADDR[,ADDR] --key FILE --channel ID [--json]",
		Short: "Show a channel as a node sees it",
		Long: `Ask a node for a channel's status: leader, epoch, applied height and digest,
settled height, and each member's lag behind the node and the age of its
last heartbeat on the settlement chain. Prints a table, or JSON with --json.
The key must be a member's.

A channel closed on chain is shown as closed, with the chain's last leader
and epoch and its final settled height and digest, as scraft chain show
has them; the node's applied height and digest are printed when a node
still answers (it keeps a closed channel read-only), else the final ones.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			print := func(v *apiStatusView) error {
				if asJSON {
					return printJSON(cmd.OutOrStdout(), v)
				}
				return printStatus(cmd.OutOrStdout(), v)
			}
			closed, err := api.closedOnChain(cmd)
			if err != nil {
				return err
			}
			if closed != nil {
				return print(closedStatus(cmd, &api, closed))
			}
			return api.run(cmd, func(ctx context.Context, c *client.Client, ch protocol.ChannelID) error {
				st, err := c.Status(ctx, ch)
				if err != nil {
					return err
				}
				return print(statusView(c.Node(), st))
			})
		},
	}
	api.flags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

type apiStatusView struct {
	Node    string             `json:"node"`
	Channel protocol.ChannelID `json:"channel"`
	// Closed is the chain's word: the channel is closed for good.
	Closed bool `json:"closed"`
	// Leader is null when there is none (as in scraft chain show).
	Leader        *protocol.Address `json:"leader"`
	Epoch         uint64            `json:"epoch"`
	Height        uint64            `json:"height"`
	SettledHeight uint64            `json:"settled_height"`
	Digest        protocol.Hash     `json:"digest"`
	Ready         bool              `json:"ready"`
	Members       []apiMemberView   `json:"members"`
}

type apiMemberView struct {
	Address protocol.Address `json:"address"`
	Leader  bool             `json:"leader"`
	// Lag is -1 when unknown (no node, or it did not answer).
	Lag int64 `json:"lag"`
	// HeartbeatAgeMs is -1 when unknown.
	HeartbeatAgeMs int64 `json:"heartbeat_age_ms"`
}

func statusView(node string, st *protocol.ChannelStatus) *apiStatusView {
	v := &apiStatusView{
		Node: node, Channel: st.Channel, Leader: leaderOrNil(st.Leader), Epoch: st.Epoch, Height: st.Height,
		SettledHeight: st.SettledHeight, Digest: st.Digest, Ready: st.Ready, Members: []apiMemberView{},
	}
	for _, m := range st.Members {
		age := int64(-1)
		if m.HeartbeatAge >= 0 {
			age = m.HeartbeatAge.Milliseconds()
		}
		v.Members = append(v.Members, apiMemberView{Address: m.Address, Leader: m.Leader, Lag: m.Lag, HeartbeatAgeMs: age})
	}
	return v
}

// closedOnChain returns the channel's record when the chain (read as
// the commands do to pin the nodes' keys; not with --node-key unless
// --chain is given too) says it is closed, else nil.
func (a *apiClient) closedOnChain(cmd *cobra.Command) (*settlement.ChannelInfo, error) {
	if len(a.nodeKeys) > 0 && !cmd.Flags().Changed("chain") {
		return nil, nil
	}
	ch, err := protocol.ParseChannelID(a.channel)
	if err != nil {
		return nil, err
	}
	key, err := protocol.LoadKey(a.keyFile)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	cl, err := a.dialChain(key)
	if err != nil {
		if len(a.nodeKeys) > 0 {
			return nil, nil // the nodes can still answer
		}
		return nil, fmt.Errorf("chain %s (to check the nodes' keys; or give --node-key): %w", a.chainAddr, err)
	}
	defer cl.Close()
	info, err := cl.Channel(ctx, ch)
	if err != nil {
		if len(a.nodeKeys) > 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("read channel %s from chain %s: %w", ch, a.chainAddr, err)
	}
	if !info.Closed {
		return nil, nil
	}
	return info, nil
}

// closedStatus is the status of a channel closed on chain: the chain's
// leader, epoch and final settlement, with a node's applied height and
// digest when one of the channel's last members' nodes answers.
func closedStatus(cmd *cobra.Command, a *apiClient, info *settlement.ChannelInfo) *apiStatusView {
	v := &apiStatusView{
		Channel: info.ID, Closed: true, Leader: leaderOrNil(info.Leader), Epoch: info.Epoch,
		Height: info.SettledHeight, SettledHeight: info.SettledHeight, Digest: info.SettledDigest,
		Ready: true, Members: []apiMemberView{},
	}
	for _, m := range info.Members {
		v.Members = append(v.Members, apiMemberView{Address: m.Address, Leader: m.Address == info.Leader, Lag: -1, HeartbeatAgeMs: -1})
	}
	if len(a.nodeKeys) == 0 {
		for _, m := range info.Members {
			a.nodeKeys = append(a.nodeKeys, m.Address.String())
		}
	}
	if len(a.nodeKeys) == 0 {
		return v
	}
	_ = a.run(cmd, func(ctx context.Context, c *client.Client, ch protocol.ChannelID) error {
		st, err := c.Status(ctx, ch)
		if err != nil {
			return err
		}
		v.Node, v.Height, v.Digest = c.Node(), st.Height, st.Digest
		return nil
	})
	return v
}

func leaderOrNil(a protocol.Address) *protocol.Address {
	if a == (protocol.Address{}) {
		return nil
	}
	return &a
}

func printStatus(w io.Writer, v *apiStatusView) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	closed := ""
	if v.Closed {
		closed = " (closed)"
	}
	fmt.Fprintf(tw, "channel\t%s%s\n", v.Channel, closed)
	node, leader := v.Node, "none"
	if node == "" {
		node = "- (no node answered; the final state is the chain's)"
	}
	if v.Leader != nil {
		leader = v.Leader.String()
	}
	fmt.Fprintf(tw, "node\t%s\n", node)
	fmt.Fprintf(tw, "leader\t%s\n", leader)
	fmt.Fprintf(tw, "epoch\t%d\n", v.Epoch)
	fmt.Fprintf(tw, "height\t%d\n", v.Height)
	fmt.Fprintf(tw, "settled height\t%d\n", v.SettledHeight)
	fmt.Fprintf(tw, "digest\t%s\n", v.Digest)
	fmt.Fprintf(tw, "ready\t%v\n", v.Ready)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tLEADER\tLAG\tHEARTBEAT")
	for _, m := range v.Members {
		lead := ""
		if m.Leader {
			lead = "*"
		}
		hb := "-"
		if m.HeartbeatAgeMs >= 0 {
			hb = (time.Duration(m.HeartbeatAgeMs) * time.Millisecond).String() + " ago"
		}
		lag := "-"
		if m.Lag >= 0 {
			lag = strconv.FormatInt(m.Lag, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Address, lead, lag, hb)
	}
	return tw.Flush()
}
