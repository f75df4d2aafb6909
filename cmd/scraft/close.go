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
	var api apiClient
	cmd := &cobra.Command{
		Use:   "close --node ADDR[,ADDR] --key FILE --channel ID",
		Short: "Ask to close a channel",
		Long: `Ask a node to close the channel at the request of the member of --key. The
channel settles first; then every member's node takes it offline. Prints
"ok" once the node has accepted the request.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return api.run(cmd, func(ctx context.Context, c *client.Client, ch protocol.ChannelID) error {
				if err := c.CloseChannel(ctx, ch); err != nil {
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
