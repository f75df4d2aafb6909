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
The key must be a member's.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return api.run(cmd, func(ctx context.Context, c *client.Client, ch protocol.ChannelID) error {
				st, err := c.Status(ctx, ch)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), statusView(c.Node(), st))
				}
				return printStatus(cmd.OutOrStdout(), c.Node(), st)
			})
		},
	}
	api.flags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

type apiStatusView struct {
	Node          string             `json:"node"`
	Channel       protocol.ChannelID `json:"channel"`
	Leader        protocol.Address   `json:"leader"`
	Epoch         uint64             `json:"epoch"`
	Height        uint64             `json:"height"`
	SettledHeight uint64             `json:"settled_height"`
	Digest        protocol.Hash      `json:"digest"`
	Ready         bool               `json:"ready"`
	Members       []apiMemberView    `json:"members"`
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
		Node: node, Channel: st.Channel, Leader: st.Leader, Epoch: st.Epoch, Height: st.Height,
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

func printStatus(w io.Writer, node string, st *protocol.ChannelStatus) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "channel\t%s\n", st.Channel)
	fmt.Fprintf(tw, "node\t%s\n", node)
	fmt.Fprintf(tw, "leader\t%s\n", st.Leader)
	fmt.Fprintf(tw, "epoch\t%d\n", st.Epoch)
	fmt.Fprintf(tw, "height\t%d\n", st.Height)
	fmt.Fprintf(tw, "settled height\t%d\n", st.SettledHeight)
	fmt.Fprintf(tw, "digest\t%s\n", st.Digest)
	fmt.Fprintf(tw, "ready\t%v\n", st.Ready)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tLEADER\tLAG\tHEARTBEAT")
	for _, m := range st.Members {
		lead := ""
		if m.Leader {
			lead = "*"
		}
		hb := "-"
		if m.HeartbeatAge >= 0 {
			hb = m.HeartbeatAge.Round(time.Millisecond).String() + " ago"
		}
		lag := "-"
		if m.Lag >= 0 {
			lag = strconv.FormatInt(m.Lag, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Address, lead, lag, hb)
	}
	return tw.Flush()
}
