package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

func init() {
	rootCmd.AddCommand(leaveCmd())
}

func leaveCmd() *cobra.Command {
	var api apiClient
	cmd := &cobra.Command{
		Use:   "leave --node ADDR[,ADDR] --key FILE --channel ID",
		Short: "Ask to take the key's member out of a channel",
		Long: `Ask a node to take the member of --key out of the channel. The channel
settles first; the member's stake is released once the settlement executes
on the settlement chain. Prints "ok" once the node has accepted the request.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return api.run(cmd, func(ctx context.Context, c *client.Client, ch protocol.ChannelID) error {
				if err := c.Leave(ctx, ch); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "ok")
				return nil
			})
		},
	}
	api.flags(cmd)
	return cmd
}
