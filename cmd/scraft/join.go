package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/protocol"
)

func init() {
	rootCmd.AddCommand(nodeJoinCmd())
}

// nodeJoinCmd is `scraft join`: it asks a running node (through its admin
// listener) to become a member of a channel. The node joins on chain with
// its own key if it is not a member yet, opens the channel and asks a peer
// member node to add it; the request reaches the leader, which appends the
// join system tx and adds the node to Raft (non-voter, then voter once it
// has caught up).
func nodeJoinCmd() *cobra.Command {
	var (
		admin, channel, token string
		peers                 []string
		usePool               bool
		timeout               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "join --admin ADDR --channel ID --peer ADDR",
		Short: "Make a running node a member of a channel",
		Long: `Make the node whose admin listener is --admin a member of channel --channel.
The node joins on chain with its key if needed (backed by its channel stake,
or its shared pool deposit with --pool), then asks the member nodes named with
--peer to add it. Without --peer the node opens the channel alone: it
bootstraps it when the chain names no leader yet.

The node must run with --admin-allow-join; when it has an --admin-token,
give the same one here (--admin-token or SCRAFT_ADMIN_TOKEN).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := protocol.ParseChannelID(channel); err != nil {
				return err
			}
			q := url.Values{"channel": {channel}}
			for _, p := range peers {
				q.Add("peer", p)
			}
			if usePool {
				q.Set("pool", "true")
			}
			hc := &http.Client{Timeout: timeout}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, "http://"+admin+"/join?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				return fmt.Errorf("join: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("join: %s: %s", resp.Status, strings.TrimSpace(string(body)))
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.TrimSpace(string(body)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&admin, "admin", "127.0.0.1:7501", "admin HTTP address of the node (its --admin)")
	f.StringVar(&token, "admin-token", "", "the node's --admin-token, if it has one (prefer SCRAFT_ADMIN_TOKEN)")
	f.StringVar(&channel, "channel", "", "channel id, 0x + 32 hex digits (required)")
	f.StringSliceVar(&peers, "peer", nil, "gRPC address of a member node (repeatable)")
	f.BoolVar(&usePool, "pool", false, "back the membership with the shared pool deposit instead of the channel stake")
	f.DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the node")
	cmd.MarkFlagRequired("channel")
	return cmd
}
