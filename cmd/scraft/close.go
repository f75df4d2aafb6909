package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

func init() {
	rootCmd.AddCommand(closeCmd())
}

func closeCmd() *cobra.Command {
	var (
		api     apiClient
		onChain bool
	)
	cmd := &cobra.Command{
		Use:   "close --node ADDR[,ADDR] --key FILE --channel ID [--chain ADDR --on-chain]",
		Short: "Close a channel",
		Long: `Close the channel at the request of the member of --key. The command signs
a scraft::close call; from its height the channel's state is final (later
calls are refused), the leader settles it and closes the channel on the
settlement chain, and every node stops hosting it: calls answer
"channel_closed", subscriptions end, status still reads the final state.
Prints "closed" once the channel is closed on chain.

Nodes take their own stakes out of a closed channel. With --on-chain
the command does the same for --key (a member without a node).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return api.run(cmd, func(ctx context.Context, c *client.Client, ch protocol.ChannelID) error {
				if err := c.CloseChannel(ctx, ch); err != nil {
					return err
				}
				if onChain {
					if err := chainLeave(ctx, &api, ch); err != nil {
						return err
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), "closed")
				return nil
			})
		},
	}
	api.flags(cmd)
	cmd.Flags().BoolVar(&onChain, "on-chain", false, "take --key's stake out of the closed channel on the chain (--chain) too")
	return cmd
}
